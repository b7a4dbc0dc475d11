"""Registry compile steps as configured: parsing, identity, and version swaps.

A ``compile_steps`` entry is one of

- ``"name"``: a plugin step (hook ``vega_dag_compile_steps``);
- ``"dist==version"``: a package from the index, called through its built-in
  adapter (vega_dag.compile.steps.adapters);
- a table ``{package = "dist", version = "1.2.0", call = "module:function",
  options = {...}}``: any package whose ``function(source, filename=path,
  **options) -> str`` transforms source (``call``/``options`` may be left out
  for a dist with an adapter; ``options`` then add to the adapter's).

A registry step's identity in the toolchain is (dist, installed version),
the dist PEP 503-normalised; a call or options other than the adapter's add
``+<digest>`` to the version, since they change the output.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import msgspec

from vega_dag import _core
from vega_dag.compile.steps.adapters import ADAPTERS
from vega_dag.compile.steps.errors import StepNoAdapterError, StepSpecError
from vega_dag.config import CompileStepTable

if TYPE_CHECKING:
    from vega_dag.config import ProjectConfig

# PEP 508 names, and PEP 440 versions (the pattern of PEP 440's appendix B,
# as in `packaging`): pip accepts every spelling these accept.
_NAME = re.compile(r"[A-Z0-9]([A-Z0-9._-]*[A-Z0-9])?", re.IGNORECASE)
_VERSION = re.compile(
    r"""v?
    (?:[0-9]+!)?
    [0-9]+(?:\.[0-9]+)*
    (?:[-_.]?(?:alpha|a|beta|b|preview|pre|c|rc)[-_.]?[0-9]*)?
    (?:-[0-9]+|[-_.]?(?:post|rev|r)[-_.]?[0-9]*)?
    (?:[-_.]?dev[-_.]?[0-9]*)?
    (?:\+[a-z0-9]+(?:[-_.][a-z0-9]+)*)?""",
    re.IGNORECASE | re.VERBOSE,
)
_PIN = re.compile(r"\s*([^=<>!~\s]+)\s*==\s*(\S+)\s*")
_CALL = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*")
#: Characters that only a requirement (never a plugin name) contains.
_REQUIREMENT_CHARS = set("=<>!~@;[")


def normalize(dist: str) -> str:
    """The PEP 503 form of a dist name: ``Python_Minifier`` → ``python-minifier``."""
    return re.sub(r"[-_.]+", "-", dist).lower()


class StepSpec(msgspec.Struct, frozen=True):
    """One registry step of a configuration."""

    #: The dist, PEP 503-normalised.
    dist: str
    #: The version as written in the configuration.
    version: str
    #: ``module:function``, run inside the step's virtualenv.
    call: str
    #: Keyword arguments of every call.
    options: dict[str, object]
    #: Whether call/options differ from the adapter's (then they are in the identity).
    custom: bool

    @property
    def requirement(self) -> str:
        """What pip installs: ``dist==version``."""
        return f"{self.dist}=={self.version}"

    def identity(self, installed: str) -> tuple[str, str]:
        """(name, version) in the toolchain, given the version pip installed."""
        if not self.custom:
            return self.dist, installed
        digest = _core.hash_bytes(msgspec.json.encode([self.call, self.options], order="sorted"))
        suffix = digest.removeprefix(_core.DIGEST_PREFIX)[:8]
        return self.dist, installed + ("." if "+" in installed else "+") + suffix


def _check_name(dist: str, shown: str) -> None:
    if not _NAME.fullmatch(dist):
        raise StepSpecError(shown, f"{dist!r} is not a valid package name")


def check_version(version: str, shown: str) -> None:
    """Refuse anything but one exact PEP 440 version (no wildcards, no ranges)."""
    if not _VERSION.fullmatch(version):
        raise StepSpecError(
            shown, f"{version!r} is not an exact version (write it as on the index, e.g. 2.11.3)"
        )


def parse_entry(entry: str | CompileStepTable) -> StepSpec | None:
    """The registry step an entry describes, or None for a plugin step name.

    Raises ``StepSpecError`` (``StepNoAdapterError`` for a dist without an
    adapter or a ``call``).
    """
    if isinstance(entry, str):
        match = _PIN.fullmatch(entry)
        if match is None:
            if _REQUIREMENT_CHARS.intersection(entry):
                raise StepSpecError(
                    repr(entry), "pin one exact version, as 'dist==version' (e.g. 'x==1.2.0')"
                )
            return None
        package, version, call, options = match[1], match[2], None, {}
        shown = entry.strip()
    else:
        package, version, call, options = entry.package, entry.version, entry.call, entry.options
        shown = f"{package}=={version}"
    _check_name(package, shown)
    check_version(version, shown)
    dist = normalize(package)
    adapter = ADAPTERS.get(dist)
    if call is None:
        if adapter is None:
            known = ", ".join(sorted(ADAPTERS))
            raise StepNoAdapterError(
                shown,
                f"vega-dag has no adapter for {dist} (adapters: {known}); configure it as a "
                f'table with call = "module:function"',
            )
        call, options = adapter.call, {**adapter.options, **options}
    elif not _CALL.fullmatch(call):
        raise StepSpecError(shown, f"call {call!r} is not of the form 'module:function'")
    custom = adapter is None or (call, options) != (adapter.call, adapter.options)
    return StepSpec(dist=dist, version=version, call=call, options=options, custom=custom)


def registry_steps(config: ProjectConfig) -> list[StepSpec]:
    """The registry steps of a configuration, in the order they run."""
    specs = (parse_entry(e) for e in config.vega.compile_steps)
    return [s for s in specs if s is not None]


def with_step_version(config: ProjectConfig, dist: str, version: str) -> ProjectConfig:
    """``config`` with registry step ``dist`` pinned to ``version`` instead.

    Every entry of that dist changes (string or table form; call and options
    stay). Raises ``ConfigError`` when the configuration has no such step, and
    ``StepSpecError`` for a version that is not one exact version.
    """
    from vega_dag.config import ConfigError

    check_version(version, f"{dist}=={version}")
    wanted = normalize(dist)
    entries: list[str | CompileStepTable] = []
    found = False
    for entry in config.vega.compile_steps:
        spec = parse_entry(entry)
        if spec is None or spec.dist != wanted:
            entries.append(entry)
            continue
        found = True
        if isinstance(entry, str):
            match = _PIN.fullmatch(entry)
            assert match is not None  # parse_entry matched it
            entries.append(f"{match[1]}=={version}")
        else:
            entries.append(msgspec.structs.replace(entry, version=version))
    if not found:
        present = ", ".join(s.requirement for s in registry_steps(config)) or "none"
        raise ConfigError(
            config.source or config.root,
            f"no registry compile step {wanted!r} in compile_steps (registry steps: {present})",
        )
    vega = msgspec.structs.replace(config.vega, compile_steps=entries)
    return msgspec.structs.replace(config, vega=vega)
