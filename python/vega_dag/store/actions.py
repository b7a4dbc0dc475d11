"""The action cache: (action, input digest, toolchain) → output digest.

A key is the digest of a canonical description of everything the action's
output depends on; see ``action_key``. The cache is consulted, never trusted
alone: a hit counts only if the store still holds a verified output.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from vega_dag import _core
from vega_dag.daemon import warm
from vega_dag.store.objects import write_durably


def action_key(kind: str, *parts: object) -> str:
    """The digest of ``kind`` and ``parts``, canonically encoded."""
    return _core.hash_bytes(msgspec.json.encode([kind, *parts], order="sorted"))


class _Entries(msgspec.Struct):
    version: int = 1
    entries: dict[str, str] = {}


_decoder = msgspec.msgpack.Decoder(_Entries)
_encoder = msgspec.msgpack.Encoder()


def _read(path: Path) -> _Entries:
    try:
        return _decoder.decode(path.read_bytes())
    except (FileNotFoundError, msgspec.DecodeError):
        return _Entries()


class ActionCache:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._data: _Entries | None = None
        self.dirty = False

    @property
    def entries(self) -> dict[str, str]:
        if self._data is None:
            self._data = warm.load(self.path, _read)
        return self._data.entries

    def get(self, key: str) -> str | None:
        return self.entries.get(key)

    def put(self, key: str, output: str) -> None:
        if self.entries.get(key) != output:
            self.entries[key] = output
            self.dirty = True

    def save(self) -> None:
        if self.dirty and self._data is not None:
            write_durably(self.path, _encoder.encode(self._data), sync=False)
            self.dirty = False
            warm.wrote(self.path, self._data)
