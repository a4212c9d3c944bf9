"""S3's XML answers as the lean client reads them, with and without the AWS namespace."""

from __future__ import annotations

import pytest

from mastodon_s3_sync.storage.documents import error_fields, grants_public_read, list_page_fields

AWS = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"'
ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"


def policy(namespace: str, *grants: tuple[str, str]) -> bytes:
    entries = "".join(
        f'<Grant><Grantee {XSI} xsi:type="Group"><URI>{uri}</URI></Grantee>'
        f"<Permission>{permission}</Permission></Grant>"
        for uri, permission in grants
    )
    return (
        f"<AccessControlPolicy{namespace}><Owner><ID>o</ID></Owner>"
        f"<AccessControlList>{entries}</AccessControlList></AccessControlPolicy>"
    ).encode()


@pytest.mark.parametrize("namespace", [AWS, ""])
def test_public_read_whatever_the_namespace(namespace: str) -> None:
    assert grants_public_read(policy(namespace, (ALL_USERS, "READ")))
    assert grants_public_read(policy(namespace, (ALL_USERS, "FULL_CONTROL")))
    assert not grants_public_read(policy(namespace, (ALL_USERS, "WRITE")))
    assert not grants_public_read(policy(namespace, ("http://example.com/other", "READ")))
    assert not grants_public_read(policy(namespace))


def test_an_unreadable_policy_grants_nothing() -> None:
    assert not grants_public_read(b"<html>gateway error</html")
    assert not grants_public_read(b"")


def test_error_fields_with_entities_and_without_a_document() -> None:
    document = b"<Error><Code>SlowDown</Code><Message>Reduce &amp; retry</Message></Error>"
    assert error_fields(document) == {"Code": "SlowDown", "Message": "Reduce & retry"}
    assert error_fields(b"") == {}
    assert error_fields(b"Bad Gateway") == {}


def list_page(namespace: str, encoding: str | None, truncated: bool, *keys: str) -> bytes:
    contents = "".join(
        f"<Contents><Key>{key}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified>"
        f'<ETag>"{n:032x}"</ETag><Size>{n}</Size><StorageClass>STANDARD</StorageClass>'
        "</Contents>"
        for n, key in enumerate(keys)
    )
    encoding_type = f"<EncodingType>{encoding}</EncodingType>" if encoding else ""
    return (
        f"<ListBucketResult{namespace}><Name>b</Name><Prefix></Prefix>"
        f"<KeyCount>{len(keys)}</KeyCount><MaxKeys>1000</MaxKeys>{encoding_type}"
        f"<IsTruncated>{str(truncated).lower()}</IsTruncated>{contents}</ListBucketResult>"
    ).encode()


@pytest.mark.parametrize("namespace", [AWS, ""])
def test_a_list_page_decodes_keys_only_when_they_were_encoded(namespace: str) -> None:
    encoded = list_page(namespace, "url", True, "a/b+c%2Bd.png", "%C3%BC.jpg")
    assert list_page_fields(encoded) == {
        "Contents": [
            {"Key": "a/b c+d.png", "Size": 0, "ETag": f'"{0:032x}"'},
            {"Key": "ü.jpg", "Size": 1, "ETag": f'"{1:032x}"'},
        ],
        "IsTruncated": True,
    }
    plain = list_page(namespace, None, False, "a/b+c%2Bd.png")
    assert list_page_fields(plain)["Contents"][0]["Key"] == "a/b+c%2Bd.png"
    assert list_page_fields(plain)["IsTruncated"] is False


def test_a_list_answer_that_is_no_document_is_refused() -> None:
    with pytest.raises(ValueError, match="no XML document"):
        list_page_fields(b"<html>busy</html")
