"""What a build returns (``BuildResult``), raises (``BuildError``) and reports as it runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vega_dag.errors import VegaError


class BuildError(VegaError):
    """The build failed; ``problems`` lists each one, naming its file (and line)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class BuildResult:
    manifest: str
    modules_compiled: int
    modules_cached: int
    bundles_built: int
    bundles_cached: int
    seconds: float
    routes: dict[str, str]
    layer: str | None
    compiled: list[str] = field(default_factory=list)
    explain: list[str] = field(default_factory=list)
    noop: bool = False
    #: Of ``modules_cached``, those fetched from the shared store (store.remote).
    modules_remote: int = 0
    #: What went wrong without failing the build (a remote store that is down).
    warnings: list[str] = field(default_factory=list)
    #: The manifest's canonical bytes, when this build made it (not in JSON).
    manifest_data: bytes | None = None

    def to_json(self) -> dict[str, object]:
        """The stable machine-readable form (see docs/user-guide.md, "vega-dag build --json")."""
        return {
            "manifest": self.manifest,
            "modules_compiled": self.modules_compiled,
            "modules_cached": self.modules_cached,
            "bundles_built": self.bundles_built,
            "bundles_cached": self.bundles_cached,
            "seconds": round(self.seconds, 4),
            "routes": self.routes,
            "layer": self.layer,
            "compiled": self.compiled,
            "explain": self.explain,
            "modules_remote": self.modules_remote,
            "warnings": self.warnings,
        }


@dataclass
class Reporter:
    """Hooks the CLI uses to show progress; all optional."""

    on_compile_start: Callable[[int], None] | None = None
    on_compiled: Callable[[str], None] | None = None
    #: One line when a registry compile step is being installed (default: stderr).
    on_step_install: Callable[[str], None] | None = None
    #: Called with the new manifest's digest once every object of the build is
    #: stored, before the caches are recorded: a deploy starts the regions'
    #: load of it there (``rollout.deploy.EarlyLoad``). Not called by a build
    #: that changed nothing, a dry run, or one that failed.
    on_stored: Callable[[str], None] | None = None
