"""The benchmark's delay proxy (benchmarks/delay_proxy.py) in front of ``rclone serve s3``:
bytes through unchanged both ways, every request counted by operation and delayed."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import replace

from benchmarks.delay_proxy import DelayProxy

from mastodon_s3_sync.demo.media import create_bucket
from mastodon_s3_sync.demo.s3servers import RcloneS3Server
from mastodon_s3_sync.storage.s3 import make_client
from tests.support.s3_servers import BucketNames

DELAY = 0.05


def test_bodies_pass_unchanged_and_each_request_is_counted_and_delayed(
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server], fresh_bucket_name: BucketNames
) -> None:
    # given a proxy adding 50 ms in front of a server with a bucket
    server = rclone_servers[0]
    bucket = fresh_bucket_name()
    create_bucket(server.client(), bucket)
    body = os.urandom(3 * 1024 * 1024 + 17)
    with DelayProxy(server.endpoint_url, DELAY) as proxy:
        client = make_client(replace(server.bucket_settings(bucket), endpoint_url=proxy.url), 4)
        proxy.stats(reset=True)
        # when an object goes in, its head is asked, and it comes back out
        client.put_object(Bucket=bucket, Key="a/b.bin", Body=body)
        started = time.monotonic()
        client.head_object(Bucket=bucket, Key="a/b.bin")
        head_seconds = time.monotonic() - started
        got = client.get_object(Bucket=bucket, Key="a/b.bin")["Body"].read()
        stats = proxy.stats()
    # then
    assert hashlib.sha256(got).digest() == hashlib.sha256(body).digest()
    assert stats.forwarded == {"put": 1, "head": 1, "get": 1}
    assert head_seconds >= DELAY
    assert stats.cpu_seconds > 0
