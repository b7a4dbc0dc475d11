"""Signed deployments: Ed25519 keys, the signed record, and a region's trust.

A deploy signs its deployment record (id, manifest digest, configuration,
environment) with the deployer's private key; a region that trusts one or
more public keys serves only deployments whose record carries a valid
signature by one of them, and whose manifest is the one the record names. So
write access to the pointer store (or the artifact store) alone cannot make a
region run code: the attacker would also need a trusted private key.

Keys are the ``cryptography`` package's Ed25519 (imported only here, when a
key is used). Private keys are PKCS#8 PEM files (mode 0600); public keys are
one OpenSSH line (``ssh-ed25519 AAAA… comment``), so ``ssh-keygen -t ed25519``
keys work too. A key's id is ``ed25519:`` and the first 16 hex digits of the
BLAKE3 digest of its 32 raw bytes.

A local fleet's trust is the directory ``.vega/fleet/trusted/`` (one ``.pub``
per key, written by ``vega-dag keys trust``): empty or absent, its regions
serve unsigned deployments as before.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vega_dag.errors import VegaError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    from vega_dag.config import ProjectConfig
    from vega_dag.rollout.pointers import Signer

#: What a signature covers is this prefix and the canonical record: a
#: signature over anything else (another protocol's message) never verifies.
DOMAIN = b"vega-dag deployment record v1\n"
#: Where a local fleet keeps the public keys its regions trust.
TRUST_DIR = "trusted"
#: Where ``vega-dag keys generate`` writes keys unless told otherwise.
KEYS_DIR_ENV = "VEGA_DAG_KEYS_DIR"
#: The deployer's private key, overriding ``[tool.vega.signing] key``.
SIGNING_KEY_ENV = "VEGA_DAG_SIGNING_KEY"


class SigningKeyError(VegaError):
    """A key file that cannot be read, parsed or written (names the file)."""


@dataclass(frozen=True)
class Signature:
    key_id: str
    value: str  # base64


def default_keys_dir() -> Path:
    if os.environ.get(KEYS_DIR_ENV):
        return Path(os.environ[KEYS_DIR_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "vega-dag" / "keys"


def key_id(public: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from vega_dag import _core

    raw = public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "ed25519:" + _core.hash_bytes(raw).partition(":")[2][:16]


def _openssh_line(public: Ed25519PublicKey, comment: str) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    line = public.public_bytes(Encoding.OpenSSH, PublicFormat.OpenSSH).decode()
    return f"{line} {comment}\n"


def generate(directory: Path, name: str) -> tuple[Path, Path, str]:
    """Write ``NAME.key`` (private, 0600) and ``NAME.pub``; (private, public, key id).

    Refuses to overwrite either file: a lost private key is a lost identity.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
    )

    if not name or "/" in name or name.startswith("."):
        raise SigningKeyError(f"key name {name!r}: use a plain file name such as 'deploy'")
    private_path, public_path = directory / f"{name}.key", directory / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise SigningKeyError(f"{path}: already exists; remove it or choose another --name")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    kid = key_id(key.public_key())
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        public_path.write_text(_openssh_line(key.public_key(), f"vega-dag:{name} {kid}"))
    except OSError as err:
        raise SigningKeyError(f"{directory}: cannot write the key files: {err.strerror}") from None
    return private_path, public_path, kid


def load_private(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        load_pem_private_key,
        load_ssh_private_key,
    )

    try:
        data = path.read_bytes()
    except OSError as err:
        raise SigningKeyError(f"signing key {path}: {err.strerror}") from None
    try:
        if data.startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----"):
            key: Any = load_ssh_private_key(data, password=None)
        else:
            key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise SigningKeyError(f"signing key {path}: not a readable private key ({err})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(
            f"signing key {path}: an Ed25519 key is needed, not {type(key).__name__}"
        )
    return key


def load_public(path: Path) -> Ed25519PublicKey:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import (
        load_pem_public_key,
        load_ssh_public_key,
    )

    try:
        data = path.read_bytes().strip()
    except OSError as err:
        raise SigningKeyError(f"public key {path}: {err.strerror}") from None
    try:
        if data.startswith(b"-----BEGIN"):
            key: Any = load_pem_public_key(data)
        else:
            key = load_ssh_public_key(b" ".join(data.split()[:2]))
    except (ValueError, TypeError, IndexError) as err:
        raise SigningKeyError(f"public key {path}: not a readable public key ({err})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(
            f"public key {path}: an Ed25519 key is needed, not {type(key).__name__}"
        )
    return key


def record_bytes(deployment: str, manifest: str, config: Any, env: Any) -> bytes:
    """The canonical bytes a deployment's signature covers."""
    record = {"deployment": deployment, "manifest": manifest, "config": config, "env": env}
    return DOMAIN + json.dumps(
        record, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode("ascii")


def sign(key: Ed25519PrivateKey, payload: bytes) -> Signature:
    return Signature(key_id(key.public_key()), base64.b64encode(key.sign(payload)).decode())


class Trust:
    """The public keys a region trusts, read from a directory of ``.pub`` files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._stamp: int | None = None
        self.keys: dict[str, Ed25519PublicKey] = {}
        #: files that could not be read, and why (shown in a region's status)
        self.problems: list[str] = []

    def refresh(self) -> None:
        """Re-read the directory if it changed since the last read."""
        try:
            stamp = self.directory.stat().st_mtime_ns
        except OSError:
            self._stamp, self.keys, self.problems = None, {}, []
            return
        if stamp == self._stamp:
            return
        keys, problems = {}, []
        for path in sorted(self.directory.glob("*.pub")):
            try:
                public = load_public(path)
            except SigningKeyError as err:
                problems.append(str(err))
                continue
            keys[key_id(public)] = public
        self._stamp, self.keys, self.problems = stamp, keys, problems

    @property
    def enforced(self) -> bool:
        """Whether anything is trusted (or meant to be): then only signed records serve."""
        return bool(self.keys or self.problems)

    def record_refusal(self, deployment: str, manifest: str, record: dict | None) -> str | None:
        """Why a region must not serve ``deployment`` as ``manifest`` given its stored record.

        ``record`` holds the fields a store keeps (manifest, config, env,
        signed_by, signature); None when no record names the deployment.
        """
        if not self.enforced:
            return None
        if record is None:
            return "no deployment record names it"
        if record["manifest"] != manifest:
            return f"its record names {record['manifest'][:19]}…, not {manifest[:19]}…"
        payload = record_bytes(deployment, manifest, record["config"], record["env"])
        value = record.get("signature") or ""
        signature = Signature(record.get("signed_by") or "", value) if value else None
        return self.refusal(payload, signature)

    def refusal(self, payload: bytes, signature: Signature | None) -> str | None:
        """Why a record with ``signature`` must not serve, or None if it may."""
        from cryptography.exceptions import InvalidSignature

        if not self.enforced:
            return None
        trusted = ", ".join(sorted(self.keys)) or "no readable key"
        if signature is None or not signature.value:
            return f"the deployment is not signed (this region trusts {trusted})"
        public = self.keys.get(signature.key_id)
        if public is None:
            return f"signed by {signature.key_id}, which this region does not trust ({trusted})"
        try:
            public.verify(base64.b64decode(signature.value, validate=True), payload)
        except (InvalidSignature, ValueError):
            return (
                f"the signature by {signature.key_id} does not match the deployment record "
                "(the record was changed after it was signed)"
            )
        return None


def signing_key_path(config: ProjectConfig) -> Path | None:
    """The deployer's private key: VEGA_DAG_SIGNING_KEY, else ``[tool.vega.signing] key``."""
    raw = os.environ.get(SIGNING_KEY_ENV) or config.vega.signing.key
    if not raw:
        return None
    path = Path(raw).expanduser()
    return path if path.is_absolute() else config.root / path


def deployment_signer(config: ProjectConfig) -> Signer | None:
    """What signs a deploy's record, or None when no key is configured.

    The key is read here, before the deploy takes its lock or moves anything,
    so an unreadable key fails the deploy naming the file.
    """
    path = signing_key_path(config)
    if path is None:
        return None
    key = load_private(path)

    def signer(deployment: str, manifest: str, config: dict, env: dict) -> tuple[str, str]:
        signature = sign(key, record_bytes(deployment, manifest, config, env))
        return signature.key_id, signature.value

    return signer
