"""``python -m mastodon_s3_sync`` runs the command line."""

import sys

from .cli import main

sys.exit(main())
