"""The toolchain identity that is part of every cache key.

Anything that can change compiled output is in it: the interpreter
implementation and version, the bytecode magic number, the optimisation
level, the version of vega-dag's own compile code, and the bundle format. A cache hit across a
toolchain change would be a wrong hit, so it is never partial.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from vega_dag import _core
from vega_dag.errors import VegaError

if TYPE_CHECKING:
    from vega_dag.config import ProjectConfig

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


def project_toolchain(
    config: ProjectConfig, on_install: Callable[[str], None] | None = None
) -> tuple[list, Toolchain]:
    """The project's compile steps, and the toolchain they are part of (in every cache key)."""
    steps = compile_steps_for(config, on_install)
    return steps, current_toolchain(config.vega.optimize, [(s.name, s.version) for s in steps])


def compile_steps_for(
    config: ProjectConfig, on_install: Callable[[str], None] | None = None
) -> list:
    """The compile steps ``[tool.vega] compile_steps`` lists, in order.

    A name is a plugin step; ``"dist==version"`` or a table is a step from
    the package index, installed into its cached virtualenv on first use
    (``on_install`` gets one line then; default stderr). Plugins are looked
    up only when steps are named by plugin: discovering entry points costs
    more than a whole no-op build.
    """
    entries = config.vega.compile_steps
    if not entries:
        return []
    from vega_dag.compile.steps.errors import StepSpecError
    from vega_dag.compile.steps.spec import parse_entry
    from vega_dag.config import ConfigError

    try:
        specs = [parse_entry(e) for e in entries]
    except StepSpecError as err:
        raise ConfigError(config.source or config.root, str(err)) from err
    names = [e for e, spec in zip(entries, specs, strict=True) if spec is None]
    available: dict = {}
    if names:
        from vega_dag.plugins.manager import compile_steps

        available = {step.name: step for step in compile_steps(config)}
        missing = [n for n in names if n not in available]
        if missing:
            known = ", ".join(sorted(available)) or "none"
            raise ConfigError(
                config.source or config.root,
                f"compile step(s) {', '.join(map(repr, missing))} not provided by any installed "
                f"plugin (installed steps: {known})",
            )
    steps = []
    for entry, spec in zip(entries, specs, strict=True):
        if spec is None:
            steps.append(available[entry])
        else:
            from vega_dag.compile.steps.runner import load_registry_step

            steps.append(load_registry_step(spec, on_install=on_install))
    return steps


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


class ToolchainMismatchError(VegaError):
    """The active toolchain is not the one the project pins."""

    def __init__(self, where: str, problems: list[str]) -> None:
        super().__init__(
            f"{where}: the active toolchain differs from the pinned one: "
            + "; ".join(problems)
            + " (install the pinned toolchain, or change the pin on purpose)"
        )
        self.problems = problems


def pin_problems(config: ProjectConfig, toolchain: Toolchain) -> list[str]:
    """How ``toolchain`` differs from ``[tool.vega.toolchain]``; empty when it matches."""
    pin = config.vega.toolchain
    problems = []
    if pin.implementation is not None and pin.implementation != toolchain.implementation:
        problems.append(
            f"implementation: pinned {pin.implementation}, active {toolchain.implementation}"
        )
    if pin.python is not None and not _version_matches(toolchain.version, pin.python):
        problems.append(f"python: pinned {pin.python}, active {toolchain.version}")
    active_steps = dict(toolchain.steps)
    for name, version in sorted(pin.steps.items()):
        if name not in active_steps:
            problems.append(f"compile step {name}: pinned {version}, not in compile_steps")
        elif active_steps[name] != version:
            problems.append(f"compile step {name}: pinned {version}, active {active_steps[name]}")
    return problems


def check_pin(config: ProjectConfig, toolchain: Toolchain) -> None:
    """Raise ``ToolchainMismatchError`` unless ``toolchain`` is the pinned one."""
    problems = pin_problems(config, toolchain)
    if problems:
        where = f"{config.source} [tool.vega.toolchain]" if config.source else str(config.root)
        raise ToolchainMismatchError(where, problems)


def _version_matches(version: str, pinned: str) -> bool:
    """``pinned`` is the whole version or a prefix of it at a component boundary."""
    return version == pinned or version.startswith(pinned + ".")
