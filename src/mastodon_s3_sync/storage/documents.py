"""S3's XML answers as the lean client reads them: error documents, ACL policies and
ListObjectsV2 pages.

Parsed with ``xml.etree`` and namespace-blind (AWS qualifies its documents with the
2006-03-01 namespace, other S3-compatible servers may not), so any server's answer reads alike.
"""

from __future__ import annotations

import urllib.parse
import xml.etree.ElementTree as ElementTree
from typing import Any

from mastodon_s3_sync.storage.protocol import ALL_USERS_URI, READ_PERMISSIONS


def _parse(document: bytes) -> ElementTree.Element | None:
    """The XML answer of the configured endpoint, or None when it is none (an empty or
    HTML body). Python's expat refuses entity-expansion bombs."""
    if not document.strip():
        return None
    try:
        return ElementTree.fromstring(document)  # noqa: S314 (our endpoint; expat limits expansion)
    except ElementTree.ParseError:
        return None


def _local(tag: str) -> str:
    """A tag without its namespace: AWS qualifies ACL documents, other servers may not."""
    return tag.rpartition("}")[2]


def error_fields(document: bytes) -> dict[str, str]:
    """``Code`` and ``Message`` of an S3 error document (empty when there is none)."""
    root = _parse(document)
    if root is None:
        return {}
    return {_local(child.tag): (child.text or "") for child in root}


def grants_public_read(document: bytes) -> bool:
    """Whether an ``AccessControlPolicy`` grants AllUsers READ or FULL_CONTROL; a document
    that does not parse grants nothing (private is the safe reading)."""
    root = _parse(document)
    if root is None:
        return False
    for grant in root.iter():
        if _local(grant.tag) != "Grant":
            continue
        texts = {_local(node.tag): (node.text or "").strip() for node in grant.iter()}
        if texts.get("URI") == ALL_USERS_URI and texts.get("Permission") in READ_PERMISSIONS:
            return True
    return False


def list_page_fields(document: bytes) -> dict[str, Any]:
    """A ListObjectsV2 page in boto3's shape: ``Contents`` (Key, Size, ETag), ``IsTruncated``.

    Keys are decoded when the page says they were URL-encoded (``EncodingType`` url), as
    botocore decodes them; a document that does not parse raises ValueError."""
    root = _parse(document)
    if root is None:
        raise ValueError("the ListObjectsV2 answer is no XML document")
    contents: list[dict[str, Any]] = []
    fields: dict[str, str] = {}
    for child in root:
        tag = _local(child.tag)
        if tag != "Contents":
            fields[tag] = child.text or ""
            continue
        item = {_local(node.tag): node.text or "" for node in child}
        contents.append(
            {"Key": item["Key"], "Size": int(item["Size"]), "ETag": item.get("ETag", "")}
        )
    if fields.get("EncodingType") == "url":
        for item in contents:
            item["Key"] = urllib.parse.unquote_plus(item["Key"])
    return {"Contents": contents, "IsTruncated": fields.get("IsTruncated") == "true"}
