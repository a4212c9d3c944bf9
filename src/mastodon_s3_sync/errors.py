"""Errors the user can act on. The CLI prints their message as one line, no traceback."""


class SyncError(Exception):
    """Base class: the message says what went wrong and how to fix it."""

    exit_code = 1


class SettingsError(SyncError):
    """A setting is missing or invalid; the message names the setting."""

    exit_code = 2


class DatabaseError(SyncError):
    """The database cannot be reached or is not a Mastodon database."""

    exit_code = 3
