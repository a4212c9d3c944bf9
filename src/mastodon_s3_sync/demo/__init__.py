"""The local sandbox of the ``demo`` command: PostgreSQL, S3 servers, a generated Mastodon."""
