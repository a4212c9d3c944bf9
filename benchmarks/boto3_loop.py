"""The original tool's approach, as a peer: a plain boto3 loop, whole body read then put.

For every key of a list: ``get_object``, ``read()`` the whole body, ``put_object`` it with
its Content-Type and Cache-Control; ``--threads`` at a time. No skip check, no
streaming, no integrity check beyond what boto3 does. Run as a child of the benchmark
so its CPU time and peak RSS are its own.

    python boto3_loop.py KEYS_FILE SOURCE_URL SOURCE_BUCKET DESTINATION_URL DESTINATION_BUCKET

Credentials come from the environment: ``SOURCE_ACCESS_KEY_ID`` / ``SOURCE_SECRET_ACCESS_KEY``
and the same with ``DESTINATION_``.
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


def client(endpoint_url: str, side: str, threads: int) -> S3Client:
    """A default boto3 client, with a pool as large as the threads and path-style URLs.

    Checksums are computed only when required: boto3's default CRC32 trailers are
    refused by some S3-compatible servers, and the original tool predates them.
    """
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=os.environ[f"{side}_ACCESS_KEY_ID"],
        aws_secret_access_key=os.environ[f"{side}_SECRET_ACCESS_KEY"],
        config=Config(
            max_pool_connections=threads,
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("keys", type=Path)
    parser.add_argument("source_url")
    parser.add_argument("source_bucket")
    parser.add_argument("destination_url")
    parser.add_argument("destination_bucket")
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    source = client(args.source_url, "SOURCE", args.threads)
    destination = client(args.destination_url, "DESTINATION", args.threads)

    def copy(key: str) -> None:
        response = source.get_object(Bucket=args.source_bucket, Key=key)
        data = response["Body"].read()
        destination.put_object(
            Bucket=args.destination_bucket,
            Key=key,
            Body=data,
            ContentType=response.get("ContentType", "binary/octet-stream"),
            CacheControl=response.get("CacheControl", ""),
        )

    keys = args.keys.read_text().split()
    with ThreadPoolExecutor(args.threads) as pool:
        list(pool.map(copy, keys))


if __name__ == "__main__":
    main()
