"""The local S3 servers and the media seeder behave as the other integration tests assume.

Some tests pin a server's known deviation from S3 (see ``field-notes.md``, "Local
servers"), so that a server upgrade that changes it is noticed.
"""

from __future__ import annotations

import base64
import hashlib
import socket
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import botocore.exceptions
import pytest
from botocore.config import Config

from mastodon_s3_sync.demo.media import (
    CACHE_CONTROL,
    MULTIPART_PART_SIZE,
    SeedManifest,
    create_bucket,
    seed_bucket,
)
from mastodon_s3_sync.demo.s3servers import (
    LOOPBACK_HOST,
    LocalS3Server,
    MotoS3Server,
    RcloneS3Server,
    S3ServerError,
)
from mastodon_s3_sync.mastodon.layout import ObjectRef, RecordType, objects_for_row
from mastodon_s3_sync.storage.s3 import make_client
from tests.support.s3_servers import BucketNames

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

pytestmark = pytest.mark.integration

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
JPEG_MAGIC = b"\xff\xd8\xff"
PRIVATE_ACCOUNT_ID = 4242
CARD_ID = 123456789
H = "0123456789abcdef"


@pytest.fixture(params=["moto", "rclone"])
def server(request: pytest.FixtureRequest) -> LocalS3Server:
    """Provider A of each kind (servers start lazily, once per session)."""
    servers: tuple[LocalS3Server, LocalS3Server] = request.getfixturevalue(
        f"{request.param}_servers"
    )
    return servers[0]


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def md5_digest(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def status_of(error: botocore.exceptions.ClientError) -> int | None:
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def without_retries(server: LocalS3Server) -> S3Client:
    """A client that reports a 5xx at once (the product's client retries it for ~25 s)."""
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=server.access_key_id,
        aws_secret_access_key=server.secret_access_key,
        config=Config(
            retries={"total_max_attempts": 1},
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def listening_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp*) of sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                found.add(address)
    return found


def sample_refs() -> list[ObjectRef]:
    """Objects of a few typical rows, via the real layout rules (storage spec §7)."""
    rows: list[tuple[RecordType, dict[str, Any]]] = [
        (
            RecordType.MEDIA_ATTACHMENTS,
            {
                "id": 109348123456789012,
                "file_file_name": f"{H}.jpeg",
                "file_content_type": "image/jpeg",
                "file_file_size": 2_000_000,
            },
        ),
        (
            RecordType.MEDIA_ATTACHMENTS,
            {
                "id": 109348123456789013,
                "remote_url": "https://remote.example/a.mp4",
                "file_file_name": f"{H}.mp4",
                "file_content_type": "video/mp4",
                "file_file_size": 9_000_000,
                "file_storage_schema_version": 1,
            },
        ),
        (
            RecordType.MEDIA_ATTACHMENTS,
            {
                "id": 109348123456789014,
                "file_file_name": f"{H}.mp3",
                "file_content_type": "audio/mpeg",
                "file_file_size": 3_000_000,
            },
        ),
        (
            RecordType.ACCOUNTS,
            {
                "id": PRIVATE_ACCOUNT_ID,
                "avatar_file_name": f"{H}.gif",
                "avatar_content_type": "image/gif",
                "avatar_file_size": 50_000,
                "header_file_name": f"{H}.webp",
                "header_content_type": "image/webp",
            },
        ),
        (
            RecordType.PREVIEW_CARDS,
            {
                "id": CARD_ID,
                "image_file_name": f"{H}.gif",
                "image_content_type": "image/gif",
                "image_file_size": 80_000,
                "image_storage_schema_version": 1,
            },
        ),
        (
            RecordType.CUSTOM_EMOJIS,
            {"id": 987654, "image_file_name": f"{H}.png", "image_content_type": "image/png"},
        ),
    ]
    return [ref for record_type, row in rows for ref in objects_for_row(record_type, row)]


def many_refs(count: int) -> list[ObjectRef]:
    """``count`` remote audio originals (each with the other ``cache/`` placement)."""
    rows = (
        {
            "id": 110000000000000000 + n,
            "remote_url": f"https://remote.example/{n}.mp3",
            "file_file_name": f"{n:016x}.mp3",
            "file_content_type": "audio/mpeg",  # audio has an original only: one ref per row
            "file_storage_schema_version": 1,
        }
        for n in range(count)
    )
    return [ref for row in rows for ref in objects_for_row(RecordType.MEDIA_ATTACHMENTS, row)]


def exists(client: S3Client, bucket: str, key: str) -> bool:
    try:
        client.head_object(Bucket=bucket, Key=key)
    except botocore.exceptions.ClientError as error:
        if status_of(error) == 404:
            return False
        raise
    return True


def is_public(client: S3Client, bucket: str, key: str) -> bool:
    grants = client.get_object_acl(Bucket=bucket, Key=key)["Grants"]
    return any(
        grant["Grantee"].get("URI") == ALL_USERS and grant["Permission"] == "READ"
        for grant in grants
    )


# -- the servers ------------------------------------------------------------------------


def test_server_listens_on_loopback_only(server: LocalS3Server) -> None:
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp")
    assert server.endpoint_url == f"http://{LOOPBACK_HOST}:{server.port}"
    assert listening_addresses(server.port) == {"0100007F"}  # 127.0.0.1, and nothing else


def test_round_trip_keeps_body_and_headers(
    server: LocalS3Server, fresh_bucket_name: BucketNames
) -> None:
    # given
    client = server.client()
    bucket = fresh_bucket_name()
    create_bucket(client, bucket)
    body = b"\xff\xd8\xff" + bytes(range(256)) * 40
    # when
    client.put_object(
        Bucket=bucket,
        Key="media_attachments/files/000/000/001/original/a.jpeg",
        Body=body,
        ContentType="image/jpeg",
        CacheControl=CACHE_CONTROL,
        Metadata={"origin": "sandbox-test"},
    )
    answer = client.get_object(
        Bucket=bucket, Key="media_attachments/files/000/000/001/original/a.jpeg"
    )
    # then
    assert answer["Body"].read() == body
    assert answer["ContentType"] == "image/jpeg"
    assert answer["CacheControl"] == CACHE_CONTROL
    assert answer["ETag"] == f'"{md5_hex(body)}"'
    # rclone answers "Origin": user metadata keys are compared case-insensitively.
    assert {k.lower(): v for k, v in answer["Metadata"].items()} == {"origin": "sandbox-test"}


def test_moto_keeps_acls(
    moto_servers: tuple[MotoS3Server, MotoS3Server], fresh_bucket_name: BucketNames
) -> None:
    client = moto_servers[0].client()
    bucket = fresh_bucket_name()
    create_bucket(client, bucket)
    client.put_object(Bucket=bucket, Key="public.png", Body=b"p", ACL="public-read")
    client.put_object(Bucket=bucket, Key="private.png", Body=b"p", ACL="private")

    assert is_public(client, bucket, "public.png")
    assert not is_public(client, bucket, "private.png")


def test_rclone_accepts_acl_header_but_has_no_get_object_acl(
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server], fresh_bucket_name: BucketNames
) -> None:
    client = without_retries(rclone_servers[0])
    bucket = fresh_bucket_name()
    create_bucket(client, bucket)
    client.put_object(Bucket=bucket, Key="a.png", Body=b"p", ACL="private")

    with pytest.raises(botocore.exceptions.ClientError) as raised:
        client.get_object_acl(Bucket=bucket, Key="a.png")
    assert status_of(raised.value) == 500


def test_rclone_checks_credentials(
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server], fresh_bucket_name: BucketNames
) -> None:
    server = rclone_servers[0]
    bucket = fresh_bucket_name()
    create_bucket(server.client(), bucket)
    right = server.bucket_settings(bucket)
    wrong_secret = replace(right, secret_access_key="not-the-secret")
    wrong_key_id = replace(right, access_key_id="AKNOBODY")
    other_server = replace(
        right,
        access_key_id=rclone_servers[1].access_key_id,
        secret_access_key=rclone_servers[1].secret_access_key,
    )

    for settings in (wrong_secret, wrong_key_id, other_server):
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            make_client(settings, 1).head_bucket(Bucket=bucket)
        assert status_of(raised.value) == 403
    make_client(right, 1).head_bucket(Bucket=bucket)


@pytest.mark.parametrize("kind", ["moto", "rclone"])
def test_servers_of_a_pair_are_independent(
    kind: str, request: pytest.FixtureRequest, fresh_bucket_name: BucketNames
) -> None:
    provider_a, provider_b = request.getfixturevalue(f"{kind}_servers")
    bucket = fresh_bucket_name()
    create_bucket(provider_a.client(), bucket)
    provider_a.client().put_object(Bucket=bucket, Key="k", Body=b"v")

    assert provider_a.endpoint_url != provider_b.endpoint_url
    with pytest.raises(botocore.exceptions.ClientError) as raised:
        provider_b.client().head_bucket(Bucket=bucket)
    assert status_of(raised.value) == 404


@pytest.mark.parametrize("server_class", [MotoS3Server, RcloneS3Server])
def test_stop_ends_the_process_and_is_idempotent(server_class: type[LocalS3Server]) -> None:
    server = server_class().start()
    port, work_files = server.port, server.log_path.parent
    assert server.start() is server  # a no-op when running

    server.stop()
    server.stop()

    assert not server.running
    assert not work_files.exists()
    with socket.socket() as probe:
        assert probe.connect_ex((LOOPBACK_HOST, port)) != 0


def test_rclone_serves_a_given_directory_and_keeps_it(tmp_path: Path) -> None:
    with RcloneS3Server(root_dir=tmp_path) as server:
        client = server.client()
        create_bucket(client, "kept")
        client.put_object(Bucket="kept", Key="a/b/c.png", Body=b"png")

    assert (tmp_path / "kept" / "a" / "b" / "c.png").read_bytes() == b"png"


def test_start_failure_says_why() -> None:
    with socket.socket() as squatter:
        squatter.bind((LOOPBACK_HOST, 0))
        squatter.listen()
        taken = squatter.getsockname()[1]

        with pytest.raises(S3ServerError, match="address already in use"):
            RcloneS3Server(port=taken).start()


# -- server deviations the copier must live with ----------------------------------------


@pytest.mark.parametrize(("kind", "checks_md5"), [("moto", False), ("rclone", True)])
def test_wrong_content_md5(
    kind: str, checks_md5: bool, request: pytest.FixtureRequest, fresh_bucket_name: BucketNames
) -> None:
    server: LocalS3Server = request.getfixturevalue(f"{kind}_servers")[0]
    client = server.client()
    bucket = fresh_bucket_name()
    create_bucket(client, bucket)
    wrong = base64.b64encode(md5_digest(b"something else")).decode()

    if checks_md5:
        with pytest.raises(botocore.exceptions.ClientError) as raised:
            client.put_object(Bucket=bucket, Key="k", Body=b"body", ContentMD5=wrong)
        assert raised.value.response["Error"]["Code"] == "BadDigest"
        assert not exists(client, bucket, "k")
    else:
        # moto ignores Content-MD5: tests on moto cannot prove that a digest is right.
        client.put_object(Bucket=bucket, Key="k", Body=b"body", ContentMD5=wrong)
        assert exists(client, bucket, "k")


def test_rclone_multipart_etag(
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server], fresh_bucket_name: BucketNames
) -> None:
    # given two 5 MiB parts
    client = rclone_servers[0].client()
    bucket = fresh_bucket_name()
    create_bucket(client, bucket)
    parts = [b"a" * MULTIPART_PART_SIZE, b"b" * MULTIPART_PART_SIZE]
    upload_id = client.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    etags = [
        client.upload_part(Bucket=bucket, Key="big", UploadId=upload_id, PartNumber=n, Body=part)[
            "ETag"
        ]
        for n, part in enumerate(parts, start=1)
    ]
    # when
    done = client.complete_multipart_upload(
        Bucket=bucket,
        Key="big",
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"ETag": e, "PartNumber": n} for n, e in enumerate(etags, 1)]},
    )
    # then CompleteMultipartUpload answers AWS's form, but the stored object's ETag
    # (HEAD, GET, listings) is the MD5 of the whole body.
    aws_form = md5_hex(b"".join(md5_digest(p) for p in parts))
    whole_md5 = md5_hex(b"".join(parts))
    assert done["ETag"] == f'"{aws_form}-2"'
    assert client.head_object(Bucket=bucket, Key="big")["ETag"] == f'"{whole_md5}"'
    # and listings give ETags without the quotes
    listed = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert [obj["ETag"] for obj in listed] == [whole_md5]


# -- seed_bucket ------------------------------------------------------------------------


def test_seed_bucket_writes_what_its_manifest_says(
    moto_servers: tuple[MotoS3Server, MotoS3Server], fresh_bucket_name: BucketNames
) -> None:
    # given
    client = moto_servers[0].client()
    bucket = fresh_bucket_name()
    create_bucket(client, bucket)
    refs = sample_refs()
    # when
    manifest = seed_bucket(client, bucket, refs, private_record_ids={PRIVATE_ACCOUNT_ID})
    # then every ref is in the bucket, at its key, as described
    assert sorted(manifest.objects) == sorted(ref.key for ref in refs)
    assert (manifest.missing, manifest.legacy) == ([], [])
    listed = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert {obj["Key"]: obj["Size"] for obj in listed} == {
        key: seeded.size for key, seeded in manifest.objects.items()
    }
    for key, seeded in manifest.objects.items():
        answer = client.get_object(Bucket=bucket, Key=key)
        assert md5_hex(answer["Body"].read()) == seeded.md5 == seeded.etag
        assert answer["ContentType"] == seeded.content_type
        assert answer["CacheControl"] == CACHE_CONTROL
        assert is_public(client, bucket, key) == (seeded.ref.record_id != PRIVATE_ACCOUNT_ID)
        limit = 40 * 1024 if seeded.ref.style == "original" else 8 * 1024
        assert 1024 <= seeded.size <= limit

    by_suffix = {
        key.rsplit("/", 2)[-2] + "/" + key.rsplit(".", 1)[-1]: s
        for key, s in manifest.objects.items()
    }
    assert manifest.objects[refs[0].key].content_type == "image/jpeg"
    assert by_suffix["original/mp4"].content_type == "video/mp4"
    assert by_suffix["original/mp3"].content_type == "audio/mpeg"
    assert by_suffix["static/png"].content_type == "image/png"
    assert by_suffix["original/webp"].content_type == "image/webp"


def test_seed_bucket_gives_preview_card_gifs_jpeg(
    moto_servers: tuple[MotoS3Server, MotoS3Server], fresh_bucket_name: BucketNames
) -> None:
    client = moto_servers[0].client()
    bucket = fresh_bucket_name()
    create_bucket(client, bucket)
    refs = sample_refs()
    card = next(ref for ref in refs if ref.record_type is RecordType.PREVIEW_CARDS)
    avatar_gif = next(ref for ref in refs if ref.key.endswith(".gif") and ref is not card)

    seed_bucket(client, bucket, [card, avatar_gif])

    assert card.key.startswith("cache/preview_cards/")
    assert card.key.endswith(".gif")
    card_object = client.get_object(Bucket=bucket, Key=card.key)
    assert card_object["ContentType"] == "image/jpeg"
    assert card_object["Body"].read().startswith(JPEG_MAGIC)
    gif_object = client.get_object(Bucket=bucket, Key=avatar_gif.key)
    assert gif_object["ContentType"] == "image/gif"
    assert gif_object["Body"].read().startswith(b"GIF89a")


def test_seed_bucket_leaves_out_and_misplaces_as_asked(
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server], fresh_bucket_name: BucketNames
) -> None:
    # given 30 refs, each with an alternate placement
    client = rclone_servers[0].client()
    bucket = fresh_bucket_name()
    create_bucket(client, bucket)
    refs = many_refs(30)
    # when
    manifest = seed_bucket(client, bucket, refs, missing_every=5, legacy_every=4)
    # then refs 5, 10, ... are nowhere
    assert manifest.missing == refs[4::5]
    for ref in manifest.missing:
        assert not any(exists(client, bucket, key) for key in (ref.key, *ref.alternates))
    # and every 4th written ref is at its first alternate only
    written = [ref for ref in refs if ref not in manifest.missing]
    assert manifest.legacy == written[3::4]
    for ref in manifest.legacy:
        assert ref.alternates[0] in manifest.objects
        assert exists(client, bucket, ref.alternates[0])
        assert not exists(client, bucket, ref.key)
        assert manifest.for_ref(ref) == manifest.objects[ref.alternates[0]]
    listed = {obj["Key"] for obj in client.list_objects_v2(Bucket=bucket)["Contents"]}
    assert listed == set(manifest.objects)
    assert len(listed) == 24


def test_seed_bucket_is_deterministic(
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server], fresh_bucket_name: BucketNames
) -> None:
    client = rclone_servers[0].client()
    buckets = [fresh_bucket_name() for _ in range(3)]
    for bucket in buckets:
        create_bucket(client, bucket)
    refs = sample_refs()

    first = seed_bucket(client, buckets[0], refs, seed=7)
    again = seed_bucket(client, buckets[1], refs, seed=7)
    other = seed_bucket(client, buckets[2], refs, seed=8)

    def digests(manifest: SeedManifest) -> dict[str, str]:
        return {key: seeded.md5 for key, seeded in manifest.objects.items()}

    assert digests(first) == digests(again)
    assert set(digests(first).values()).isdisjoint(digests(other).values())


def test_seed_bucket_large_sizes_and_multipart(
    moto_servers: tuple[MotoS3Server, MotoS3Server], fresh_bucket_name: BucketNames
) -> None:
    # given an original the database says is 6 MiB + 1 byte, and its small style
    client = moto_servers[0].client()
    bucket = fresh_bucket_name()
    create_bucket(client, bucket)
    media_id = 109348123456789099
    row = {
        "id": media_id,
        "file_file_name": f"{H}.png",
        "file_content_type": "image/png",
        "file_file_size": 6 * 1024 * 1024 + 1,
    }
    original, small = objects_for_row(RecordType.MEDIA_ATTACHMENTS, row)
    # when
    manifest = seed_bucket(
        client,
        bucket,
        [original, small],
        large_sizes=True,
        multipart_threshold=MULTIPART_PART_SIZE,
        private_record_ids={media_id},
    )
    # then the original has the database's size and went up in 2 parts
    big = manifest.objects[original.key]
    assert big.size == 6 * 1024 * 1024 + 1
    assert big.multipart
    assert big.etag.endswith("-2")
    answer = client.get_object(Bucket=bucket, Key=original.key)
    assert md5_hex(answer["Body"].read()) == big.md5
    assert answer["ContentLength"] == big.size
    assert answer["ContentType"] == "image/png"
    assert answer["CacheControl"] == CACHE_CONTROL
    assert not is_public(client, bucket, original.key)
    # and the small style (no size in the database) stays small and single-part
    assert manifest.objects[small.key].size <= 8 * 1024
    assert not manifest.objects[small.key].multipart


def test_seed_bucket_without_acl_header(
    rclone_servers: tuple[RcloneS3Server, RcloneS3Server], fresh_bucket_name: BucketNames
) -> None:
    client = rclone_servers[0].client()
    bucket = fresh_bucket_name()
    create_bucket(client, bucket)

    manifest = seed_bucket(client, bucket, sample_refs()[:2], acl_supported=False)

    assert [seeded.acl for seeded in manifest.objects.values()] == [None, None]
    for key, seeded in manifest.objects.items():
        assert client.head_object(Bucket=bucket, Key=key)["ContentLength"] == seeded.size
