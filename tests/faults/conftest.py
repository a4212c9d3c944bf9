"""Fixtures of the fault suite: the session's local S3 servers, shared with the integration tier."""

from tests.integration.conftest import fresh_bucket_name, moto_servers, rclone_servers

__all__ = ["fresh_bucket_name", "moto_servers", "rclone_servers"]
