"""Bundles of a store from before trees, kept as the recipe that rebuilds them.

Route bundles are now trees (``store.tree``), whose digest names their
entries rather than their bytes; a store written before them still holds
bundles as these assembly records, under the digest of the archive's bytes,
and they stay readable (a rollback to such a deployment, ``store verify``,
``gc``). What follows describes them as they were made.

A route bundle is a stored (uncompressed) zip of compiled modules that are
themselves objects in the store, and one shared module sits in hundreds of
bundles: storing every bundle's bytes would write the same bytecode hundreds
of times (1.8 GB for the generated 20,000-module project) and make a small
edit cost a copy and an fsync of every bundle it touches. So a bundle is
stored as its *assembly*: the archive writer's inputs (epoch, names, small
inline entries and the members' digests). Reading it runs the same
deterministic writer over the members (each verified) and checks the result
against the bundle's digest, like any other object: the bytes served are
exactly the bytes the digest names, or the read fails. OSTree commits and
casync indexes keep files the same way, as references into one object pool.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from vega_dag import _core

#: Bumped when the recipe's layout or meaning changes.
ASSEMBLY_FORMAT = 1
_DIGEST_BYTES = 32


class ArchiveAssembly(msgspec.Struct, array_like=True, frozen=True):
    """``_core.build_archive(entries, epoch=epoch, compress=False)``, as its inputs."""

    format: int
    epoch: int
    #: small entries carried in the recipe itself: (name, content)
    inline: list[tuple[str, bytes]]
    #: entries whose content is a stored object …
    names: list[str]
    #: … whose raw 32-byte BLAKE3 digests, concatenated in ``names`` order
    members: bytes


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(ArchiveAssembly)


class AssemblyFormatError(ValueError):
    """The stored recipe is unreadable (damaged, or from another format)."""


def encode_assembly(
    epoch: int, inline: list[tuple[str, bytes]], members: list[tuple[str, str]]
) -> bytes:
    """The recipe for a stored archive of ``inline`` plus ``members`` ((name, digest) pairs)."""
    prefix = len(_core.DIGEST_PREFIX)
    raw = bytes.fromhex("".join(d[prefix:] for _, d in members))
    return _encoder.encode(
        ArchiveAssembly(ASSEMBLY_FORMAT, epoch, inline, [n for n, _ in members], raw)
    )


def decode_assembly(data: bytes) -> ArchiveAssembly:
    try:
        recipe = _decoder.decode(data)
    except (msgspec.DecodeError, ValueError) as err:  # ValueError: invalid UTF-8 in a name
        raise AssemblyFormatError(f"unreadable assembly record ({err})") from None
    if recipe.format != ASSEMBLY_FORMAT:
        raise AssemblyFormatError(f"assembly format {recipe.format} (expected {ASSEMBLY_FORMAT})")
    if len(recipe.members) != _DIGEST_BYTES * len(recipe.names):
        raise AssemblyFormatError(
            f"{len(recipe.names)} member names but {len(recipe.members)} digest bytes"
        )
    return recipe


def member_digests(recipe: ArchiveAssembly) -> list[str]:
    raw, prefix = recipe.members, _core.DIGEST_PREFIX
    return [prefix + raw[i : i + _DIGEST_BYTES].hex() for i in range(0, len(raw), _DIGEST_BYTES)]


def assemble(recipe: ArchiveAssembly, fetch: Callable[[str], bytes]) -> tuple[bytes, str]:
    """The archive's bytes and their digest; ``fetch`` returns a member's (verified) bytes."""
    entries: list[tuple[str, bytes]] = list(recipe.inline)
    entries.extend(
        (name, fetch(d)) for name, d in zip(recipe.names, member_digests(recipe), strict=True)
    )
    return _core.build_archive(entries, epoch=recipe.epoch, compress=False)
