"""S3's XML answers as the lean client reads them, with and without the AWS namespace."""

from __future__ import annotations

import pytest

from mastodon_s3_sync.storage.documents import error_fields, grants_public_read

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
