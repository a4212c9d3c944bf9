"""Mastodon's side: its storage layout rules (pure), the catalog of its database, the connection."""
