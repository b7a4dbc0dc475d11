"""The toolchain identity that is part of every cache key.

Anything that can change compiled output is in it: the interpreter
implementation and version, the bytecode magic number, the optimisation
level, the version of vega-dag's own compile code, and the bundle format. A cache hit across a
toolchain change would be a wrong hit, so it is never partial.
"""

from __future__ import annotations

import importlib.util
import sys

import msgspec

from vega_dag import _core

#: Bump whenever vega-dag's compile code changes the bytes it produces.
COMPILER_VERSION = "1"


class Toolchain(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    implementation: str
    version: str
    magic: str
    optimize: int
    compiler: str
    #: The route bundle layout (see vega_dag.bundle.BUNDLE_FORMAT).
    bundle_format: int
    #: Extra source transforms as (name, version), in the order they run.
    steps: list[tuple[str, str]] = []

    @property
    def key(self) -> str:
        return _core.hash_bytes(msgspec.json.encode(self, order="sorted"))

    def differences(self, other: Toolchain) -> list[str]:
        """What changed from ``other`` to self, one phrase per field."""
        return [
            f"{field} {getattr(other, field)!r} → {getattr(self, field)!r}"
            for field in self.__struct_fields__
            if getattr(self, field) != getattr(other, field)
        ]


def current_toolchain(optimize: int = 0, steps: list[tuple[str, str]] | None = None) -> Toolchain:
    from vega_dag.bundle import BUNDLE_FORMAT

    impl = sys.implementation
    v = sys.version_info
    return Toolchain(
        implementation=impl.name,
        version=f"{v.major}.{v.minor}.{v.micro}"
        + ("" if v.releaselevel == "final" else v.releaselevel),
        magic=importlib.util.MAGIC_NUMBER.hex(),
        optimize=optimize,
        compiler=f"vega-dag-compile/{COMPILER_VERSION}",
        bundle_format=BUNDLE_FORMAT,
        steps=list(steps or []),
    )
