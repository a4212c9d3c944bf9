"""The ``mastodon-s3-sync`` command: parse, call the core, print; exit codes in one place."""

from mastodon_s3_sync.cli.commands import main

__all__ = ["main"]
