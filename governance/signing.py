"""Ed25519 keys and signatures (the ``cryptography`` package).

Committee members sign the *proposal fingerprint* — the hex SHA-256 of the proposal's
canonical JSON — as UTF-8 bytes, prefixed with the decision so that an approval cannot be
replayed as a rejection or the reverse: ``b"approve:" + fingerprint``. Private keys are PKCS#8
PEM files (unencrypted, mode 0600); public keys travel as base64 of the 32 raw bytes.

Identities are bytes, not spellings. Base64 of 32 bytes ends in a character whose two low
bits are unused, so one key has four spellings (``…A=``, ``…B=``, ``…C=``, ``…D=``), and a
lenient decoder also skips characters outside the alphabet. Keys and signatures are accepted
only in their *canonical* form — decoded strictly, re-encoded, and compared with what was
given — and members are identified by the raw key bytes.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

Decision = Literal["approve", "reject"]


class KeyError_(ValueError):
    """A key file that cannot be read as an Ed25519 private key."""


class EncodingError(ValueError):
    """A key or signature that is not the canonical base64 of the right number of bytes."""


PUBLIC_KEY_BYTES = 32
MAX_KEY_FILE_BYTES = 64_000
SIGNATURE_BYTES = 64


def canonical_bytes(text: str, length: int, what: str) -> bytes:
    """The ``length`` bytes whose canonical base64 is exactly ``text``; anything else (another
    spelling, padding missing, characters outside the alphabet, whitespace) is refused."""
    if not isinstance(text, str) or not text.isascii():
        raise EncodingError(f"{what} must be ASCII base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise EncodingError(f"{what} is not base64") from exc
    if len(raw) != length:
        raise EncodingError(f"{what} must decode to {length} bytes, got {len(raw)}")
    if base64.b64encode(raw).decode() != text:
        raise EncodingError(
            f"{what} is not in canonical base64 (it re-encodes as {base64.b64encode(raw).decode()})"
        )
    return raw


def public_key_bytes(text: str) -> bytes:
    return canonical_bytes(text, PUBLIC_KEY_BYTES, "public_key")


def signature_bytes(text: str) -> bytes:
    return canonical_bytes(text, SIGNATURE_BYTES, "signature")


def message(decision: Decision, fingerprint: str) -> bytes:
    return f"{decision}:{fingerprint}".encode()


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def public_key_b64(key: Ed25519PrivateKey | Ed25519PublicKey) -> str:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def write_private_key(key: Ed25519PrivateKey, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # O_EXCL: never overwrite a key, nor write through a symlink planted at its path
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return path


def read_private_key(path: str | Path) -> Ed25519PrivateKey:
    path = Path(path)
    if path.is_dir():
        raise KeyError_(f"{path}: is a directory, not a key file")
    if path.exists() and not path.is_file():
        raise KeyError_(f"{path}: not a regular file")
    try:
        if path.stat().st_size > MAX_KEY_FILE_BYTES:
            raise KeyError_(f"{path}: too large for a key file")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise KeyError_(f"{path}: no such key file") from None
    except OSError as exc:
        raise KeyError_(f"{path}: cannot read ({exc.strerror})") from None
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise KeyError_(f"{path}: not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyError_(f"{path}: not an Ed25519 key")
    return key


def sign(key: Ed25519PrivateKey, decision: Decision, fingerprint: str) -> str:
    """Base64 signature of ``decision:fingerprint``."""
    return base64.b64encode(key.sign(message(decision, fingerprint))).decode()


def verify(
    public_key_b64_text: str, signature_b64: str, decision: Decision, fingerprint: str
) -> bool:
    """Whether ``signature_b64`` is the key's signature of ``decision:fingerprint``; a key or
    signature not in canonical base64 never verifies."""
    try:
        public = Ed25519PublicKey.from_public_bytes(public_key_bytes(public_key_b64_text))
        public.verify(signature_bytes(signature_b64), message(decision, fingerprint))
    except (InvalidSignature, ValueError):
        return False
    return True
