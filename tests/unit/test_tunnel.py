"""SSH tunnel settings: private keys, host key lines, and errors that name the setting."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from mastodon_s3_sync.config.settings import SshSettings
from mastodon_s3_sync.errors import SettingsError
from mastodon_s3_sync.mastodon.tunnel import load_private_key, open_tunnel, parse_host_key

PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

KEY_MAKERS: dict[str, Callable[[], PrivateKey]] = {
    "ssh-ed25519": ed25519.Ed25519PrivateKey.generate,
    "ecdsa-sha2-nistp256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ssh-rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
}


def private_text(
    key: PrivateKey,
    fmt: serialization.PrivateFormat = serialization.PrivateFormat.OpenSSH,
    encryption: serialization.KeySerializationEncryption | None = None,
) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, fmt, encryption or serialization.NoEncryption()
    ).decode()


def public_line(key: PrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


@pytest.mark.parametrize("name", KEY_MAKERS)
def test_loads_openssh_keys(name: str) -> None:
    key = KEY_MAKERS[name]()

    loaded = load_private_key(private_text(key))

    assert loaded.get_name() == name
    assert f"{loaded.get_name()} {loaded.get_base64()}" == public_line(key)


@pytest.mark.parametrize("name", ["ecdsa-sha2-nistp256", "ssh-rsa"])
def test_loads_pem_keys(name: str) -> None:
    key = KEY_MAKERS[name]()

    loaded = load_private_key(private_text(key, serialization.PrivateFormat.TraditionalOpenSSL))

    assert loaded.get_name() == name


def test_key_pasted_with_indentation_and_windows_line_ends() -> None:
    text = private_text(ed25519.Ed25519PrivateKey.generate())
    pasted = "\r\n" + "".join(f"    {line}\r\n" for line in text.splitlines())

    assert load_private_key(pasted).get_name() == "ssh-ed25519"


def test_encrypted_key_is_refused_with_a_hint() -> None:
    text = private_text(
        ed25519.Ed25519PrivateKey.generate(),
        encryption=serialization.BestAvailableEncryption(b"passphrase"),
    )

    with pytest.raises(SettingsError, match=r"^\[bastion\] private_key_file is encrypted"):
        load_private_key(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
        public_line(ed25519.Ed25519PrivateKey.generate()),
    ],
    ids=["empty", "words", "a truncated private key", "a public key"],
)
def test_garbage_is_not_a_key(text: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_private_key(text)

    message = str(raised.value)
    assert message.startswith("[bastion] private_key_file is not a supported private key")
    assert "AAAA" not in message


@pytest.mark.parametrize("prefix", ["", "bastion.example ", "[bastion.example]:2222 "])
@pytest.mark.parametrize("comment", ["", " root@bastion"])
def test_host_key_line_forms(prefix: str, comment: str) -> None:
    line = public_line(ed25519.Ed25519PrivateKey.generate())

    key = parse_host_key(f"{prefix}{line}{comment}")

    assert f"{key.get_name()} {key.get_base64()}" == line


@pytest.mark.parametrize(
    "line", ["", "ssh-ed25519", "ssh-ed25519 not-base64!", "ssh-dss AAAAB3NzaC1kc3M=", "AAAA"]
)
def test_bad_host_key_lines(line: str) -> None:
    with pytest.raises(SettingsError, match=r"^\[bastion\] host_key: .* not a public host key"):
        parse_host_key(line)


def test_private_key_is_not_in_repr() -> None:
    text = private_text(ed25519.Ed25519PrivateKey.generate())

    settings = SshSettings(host="bastion.example", user="mastodon", private_key=text)

    assert "PRIVATE" not in repr(settings)
    assert settings.describe() == "mastodon@bastion.example:22"


def test_host_key_is_required_unless_skipped_explicitly() -> None:
    # given: a bastion address nothing listens on, which must not even be tried
    settings = SshSettings(
        host="127.0.0.1",
        port=9,
        user="mastodon",
        private_key=private_text(ed25519.Ed25519PrivateKey.generate()),
    )

    # when / then
    with (
        pytest.raises(SettingsError, match=r"^\[bastion\] host_key is not set"),
        open_tunnel(settings, "127.0.0.1", 5432),
    ):
        pass
