"""The ``mastodon-s3-sync`` command: parse, call the core, print; exit codes in one place.

``entry.main`` (exit codes) -> ``parser`` (flags) -> a command module (``plan_command``,
``copy_commands``, ``fanout_commands``, ``orphans_command``, ``demo_command``,
``ops_commands``, ``config_check``) -> the core; ``arguments`` and ``preflight`` turn flags
into settings and checked connections, ``progress`` and ``report`` are what the user sees.
"""

from mastodon_s3_sync.cli.entry import main

__all__ = ["main"]
