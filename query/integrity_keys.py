"""The Ed25519 key that signs integrity digests: load, create on first use, export.

* The private key is a PKCS#8 PEM file (unencrypted) at ``GITAUDIT_SIGNING_KEY_FILE``,
  default ``<data dir>/integrity/signing_key.pem`` (see
  :mod:`gitaudit.query.integrity_settings`). When the file is absent it is
  generated on first use, created with ``O_EXCL`` and mode 0600 (its directory
  0700), so two processes racing never end up with two keys.
* The key id is the first 16 hex characters of SHA-256 over the raw 32-byte
  public key (RFC 8032 encoding): ``sha256(raw_public_key).hexdigest()[:16]``.
* :func:`public_key_pem` exports the public key (SubjectPublicKeyInfo PEM) so an
  auditor can verify digests without our code (``docs/verify-digests.md``).

The private key never leaves this module in text form: nothing here prints or
logs it.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .integrity_settings import IntegritySettings


class SigningKeyError(RuntimeError):
    """The signing key cannot be read or created; ``str()`` names the file, never the key."""


@dataclass(frozen=True)
class SigningKey:
    """A loaded signing key: ``private_key``, ``public_key``, ``key_id`` (16 hex), ``path``."""

    private_key: Ed25519PrivateKey
    public_key: Ed25519PublicKey
    key_id: str
    path: Path

    def sign(self, message: bytes) -> str:
        """Ed25519 signature of ``message`` as 128 lowercase hex characters."""
        return self.private_key.sign(message).hex()


def raw_public_key(public_key: Ed25519PublicKey) -> bytes:
    """The 32-byte RFC 8032 encoding of ``public_key``."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_of(public_key: Ed25519PublicKey) -> str:
    """Key id: first 16 hex of SHA-256 of the raw public key."""
    return hashlib.sha256(raw_public_key(public_key)).hexdigest()[:16]


def load_signing_key(path: Path | str | None = None, *, create: bool = True) -> SigningKey:
    """Load the signing key from ``path`` (default: the settings' key path), creating it if absent.

    Args:
        path: PEM file of the Ed25519 private key; None: :meth:`IntegritySettings.key_path`.
        create: generate and write a new key when the file does not exist.

    Raises:
        SigningKeyError: the file is unreadable, not an Ed25519 PEM private key,
            or absent with ``create=False``.
    """
    key_path = Path(path) if path is not None else IntegritySettings().key_path()
    if not key_path.exists():
        if not create:
            raise SigningKeyError(f"no signing key at {key_path}")
        _create(key_path)
    try:
        loaded = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SigningKeyError(f"cannot read the signing key at {key_path}: {type(exc).__name__}") from None
    if not isinstance(loaded, Ed25519PrivateKey):
        raise SigningKeyError(f"the signing key at {key_path} is not an Ed25519 key")
    public = loaded.public_key()
    return SigningKey(loaded, public, key_id_of(public), key_path)


def _create(key_path: Path) -> None:
    key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process created it first: use theirs
    except OSError as exc:
        raise SigningKeyError(f"cannot create the signing key at {key_path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())


def public_key_pem(key: SigningKey | Ed25519PublicKey | None = None) -> str:
    """The public key as SubjectPublicKeyInfo PEM text (default: the configured signing key's)."""
    if key is None:
        key = load_signing_key()
    public = key.public_key if isinstance(key, SigningKey) else key
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def load_public_key(data: bytes | str | Ed25519PublicKey | SigningKey) -> Ed25519PublicKey:
    """Parse a public key: a PEM (SubjectPublicKeyInfo), or the raw 32 bytes as 64 hex or base64(url).

    Raises:
        ValueError: not an Ed25519 public key in one of those forms.
    """
    if isinstance(data, Ed25519PublicKey):
        return data
    if isinstance(data, SigningKey):
        return data.public_key
    raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
    text = raw.strip()
    if text.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text)
        except (ValueError, TypeError):
            raise ValueError("not a PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("the PEM public key is not an Ed25519 key")
        return key
    candidates: list[bytes] = []
    if len(text) == 64:
        try:
            candidates.append(bytes.fromhex(text.decode("ascii")))
        except ValueError:
            pass
    try:
        candidates.append(base64.urlsafe_b64decode(text.replace(b"+", b"-").replace(b"/", b"_")
                                                   + b"=" * (-len(text) % 4)))
    except (ValueError, TypeError):
        pass
    for candidate in candidates:
        if len(candidate) == 32:
            return Ed25519PublicKey.from_public_bytes(candidate)
    raise ValueError("not an Ed25519 public key: give a PEM, or the raw 32 bytes as hex or base64")


def public_keys_by_id(keys: Iterable[Ed25519PublicKey]) -> dict[str, Ed25519PublicKey]:
    """``{key_id: key}`` for a set of trusted public keys."""
    return {key_id_of(k): k for k in keys}


def signature_valid(public_key: Ed25519PublicKey, signature_hex: str, message: bytes) -> bool:
    """Whether ``signature_hex`` (128 hex) is ``public_key``'s Ed25519 signature of ``message``."""
    try:
        public_key.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True
