"""Route bundles as trees: their identity, and their archive made on demand.

A route bundle is a stored (uncompressed) zip of objects the store already
holds: compiled modules, data files and its ``__vega__/route.json``. One
shared module sits in hundreds of bundles, so neither storing each bundle's
bytes (1.8 GB for the generated 20,000-module project) nor digesting them
(one BLAKE3 pass over ~570 KB per rebuilt bundle: 1.4 s when a hub module
changes) may be what an edit costs.

So a bundle's identity is the digest of its *tree record*: the epoch and
the sorted (entry name, member digest) pairs, as a git tree's is (the record
is defined once, in Rust's ``tree.rs``). The record is an ordinary object,
stored under the digest of its own bytes; the archive is a function of it,
the deterministic writer over the members' bytes, so the tree digest names
the archive's bytes as surely as a digest of them would. It costs
O(entries) to compute, and the store keeps only the record (a few KB).

Verification is a chain, as in git: the record is checked against its
digest, each member against its own digest as it is read, and an archive
made from those verified parts by the deterministic writer is the one the
digest names. ``ObjectStore.get`` of a bundle makes that archive (a region
needing a zip, the drift report's diffs); what needs only the files (a
region's laid-out tree) reads the members themselves
(``ObjectStore.tree_members``), and no archive is ever made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vega_dag import _core
from vega_dag.errors import ArchiveFormatError


class TreeFormatError(ValueError):
    """The stored tree record is unreadable (damaged, or not a tree record)."""


@dataclass(frozen=True)
class Tree:
    epoch: int
    #: (entry name, member digest), in name order
    entries: list[tuple[str, str]]


def tree_records(trees: list[list[tuple[str, str]]], epoch: int) -> list[tuple[str, bytes]]:
    """Each tree's (digest, record); a tree is its (entry name, member digest) pairs."""
    return _core.tree_records(trees, epoch=epoch)


def read_tree(record: bytes, where: str) -> Tree:
    try:
        epoch, entries = _core.read_tree(record, where)
    except ArchiveFormatError as err:
        raise TreeFormatError(err.reason) from None
    return Tree(epoch, entries)


def tree_archive(tree: Tree, fetch: Callable[[str], bytes]) -> bytes:
    """The archive ``tree`` names; ``fetch`` returns a member's (verified) bytes."""
    return _core.tree_archive([(n, fetch(d)) for n, d in tree.entries], epoch=tree.epoch)
