"""The functions' lock files (``make lock-lambda``) and what the assets built from them hold:
the pinned versions, nothing more, and botocore's models of the services the functions call.
"""

from __future__ import annotations

import re
from email.parser import HeaderParser

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from infra.bundling import ARCHITECTURES, BOTOCORE_SERVICES, FUNCTIONS, build_asset, lock_file
from tests.support.distributions import (
    PROJECT,
    PROJECT_NAME,
    SSH_BINARIES,
    declared_installs,
    dist_infos,
)

SHA256 = re.compile(r"--hash=sha256:[0-9a-f]{64}")
BOTOCORE_DATA_FILES = {
    "_retry.json",
    "endpoints.json",
    "partitions.json",
    "sdk-default-configuration.json",
}
"""Top-level files of botocore/data that every client reads."""


def locked(function: str) -> dict[str, tuple[str, list[str]]]:
    """The function's lock file: canonical name -> (pinned version, sha256 hashes)."""
    text = lock_file(function).read_text(encoding="utf-8").replace("\\\n", " ")
    pins: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        spec, *options = line.split()
        name, _equals, version = spec.partition("==")
        assert version, line
        assert all(SHA256.fullmatch(option) for option in options), line
        pins[canonicalize_name(name)] = (version, [option[-64:] for option in options])
    return pins


def is_binary(dist_info_wheel: str) -> bool:
    """Whether a dist-info's WHEEL file names a platform-specific wheel."""
    tags = HeaderParser().parsestr(dist_info_wheel).get_all("Tag") or []
    return not all(tag.endswith("-any") for tag in tags)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_lock_pins_what_pyproject_asks_within_its_specifiers(function: str) -> None:
    # given the function's lock file
    pins = locked(function)

    # then every distribution the function's extra names is pinned, at a version it allows
    wanted = declared_installs(function)
    extras = PROJECT["optional-dependencies"].values()
    specs = [*PROJECT["dependencies"], *(spec for specs in extras for spec in specs)]
    for requirement in map(Requirement, specs):
        name = canonicalize_name(requirement.name)
        if name in wanted:
            assert name in pins, name
            assert requirement.specifier.contains(pins[name][0], prereleases=True), name
    assert wanted <= set(pins)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("function", FUNCTIONS)
def test_the_asset_holds_the_locked_versions_and_nothing_more(
    function: str, architecture: str
) -> None:
    # when the asset is built (with --require-hashes: the lock has this architecture's hashes)
    asset = build_asset(function, architecture)

    # then it holds the project and exactly the pinned distributions, at their versions
    pins = locked(function)
    installed = dist_infos(asset)
    assert set(installed) == {PROJECT_NAME, *pins}
    versions = {
        name: path.name.removesuffix(".dist-info").rpartition("-")[2]
        for name, path in installed.items()
        if name != PROJECT_NAME
    }
    assert versions == {name: version for name, (version, _hashes) in pins.items()}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_a_binary_distribution_is_locked_with_a_hash_per_architecture(function: str) -> None:
    # given the lock, and which of its distributions the x86_64 asset got as binary wheels
    pins = locked(function)
    asset = build_asset(function, "x86_64")
    binaries = {
        name
        for name, path in dist_infos(asset).items()
        if is_binary((path / "WHEEL").read_text(encoding="utf-8"))
    }

    # then a binary distribution has one hash per architecture, a pure-Python one a single hash
    assert "pydantic-core" in binaries
    if function == "enumerator":
        assert binaries >= {*SSH_BINARIES, "cffi"}
    for name, (_version, hashes) in pins.items():
        expected = len(ARCHITECTURES) if name in binaries else 1
        assert len(set(hashes)) == expected, (name, hashes)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_botocore_keeps_the_models_of_the_services_the_functions_call(function: str) -> None:
    # when
    asset = build_asset(function, "arm64")

    # then the service models are those of the named services, beside botocore's own files
    data = asset / "botocore" / "data"
    assert {path.name for path in data.iterdir() if path.is_dir()} == set(BOTOCORE_SERVICES)
    assert {path.name for path in data.iterdir() if path.is_file()} >= BOTOCORE_DATA_FILES
    for service in BOTOCORE_SERVICES:
        assert any((data / service).glob("*/service-2.json*")), service
