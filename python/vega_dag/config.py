"""The project's configuration: ``[tool.vega]`` in pyproject.toml, or vega.toml.

Every setting has a default, so an ordinary project needs none. Unknown keys
are errors that name the file and key: a typo must not silently fall back.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import msgspec

from vega_dag import _core
from vega_dag.daemon import warm
from vega_dag.errors import VegaError


class ConfigError(VegaError):
    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class BakeConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The live-traffic part of a gate (``[tool.vega.health.bake]``): off unless ``bake_s``.

    Judged from the regions' request logs: the new deployment's requests in
    the promoted regions against the baseline's (the regions still on the
    previous deployment, same routes, same window). Not part of the build's
    identity: it judges a deploy, it builds nothing.
    """

    #: Each wave's gate, once its probes pass, holds this long and judges the
    #: live traffic of the wave's regions (0: probes only).
    bake_s: float = 0.0
    #: After the last wave, keep judging this long; a regression rolls the
    #: deploy back (0: no watch).
    watch_s: float = 0.0
    #: Requests each side (new deployment, baseline) needs for a verdict.
    min_requests: int = 100
    #: Too few requests after ``bake_s``: "fail", or "extend" the bake
    #: (up to ``max_bake_s``, then fail).
    too_few: str = "fail"
    #: The longest an extended bake (or watch) may last, in seconds.
    max_bake_s: float = 60.0
    #: Significance level of both one-sided tests (Mann-Whitney U on
    #: latencies, two-proportion z on error rates).
    alpha: float = 0.01
    #: Latency fails only when significant and the new median is this much
    #: (a fraction of the baseline's median) slower…
    latency_tolerance: float = 0.25
    #: …and at least this many milliseconds slower.
    latency_tolerance_ms: float = 2.0
    #: Error rate (5xx) fails only when significant and this much (absolute) higher.
    error_tolerance: float = 0.01
    #: Without a baseline to compare with, the new deployment's error rate may not exceed this.
    max_error_rate: float = 0.01


TOO_FEW = ("fail", "extend")


class HealthConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    #: A gate fails when a probe's p99 latency is above this.
    p99_ms: float = 250.0
    #: Fewer completed probes than this is a failure, never a pass.
    min_samples: int = 5
    #: A probe that takes longer than this is a failure.
    timeout_s: float = 2.0
    #: Expected status of every probe.
    expect_status: int = 200
    #: route pattern ("/api/orders/{id}", or a one-app project's discovered
    #: "/items/{item_id}") -> concrete paths to probe
    probes: dict[str, list[str]] = {}
    #: A region whose worker has not imported (and warmed) the deployment in
    #: this long fails its prefetch, naming the route it was loading.
    load_timeout_s: float = 10.0
    bake: BakeConfig = BakeConfig()


class RolloutConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    canary: str = "fra"
    #: Waves after (and including) the canary; "*" means every other region.
    waves: list[list[str]] = msgspec.field(
        default_factory=lambda: [["fra"], ["iad", "sfo", "lhr"], ["*"]]
    )
    regions: int = 24
    #: What a deploy does when a region of the fleet is down: "fail" or "skip".
    on_region_down: str = "fail"
    #: The steps of each wave: the percent of its regions' requests the new
    #: deployment answers (the old one, warm, the rest), gated after each step.
    weights: list[int] = msgspec.field(default_factory=lambda: [100])
    #: A request header, or cookie, whose value keeps a client on one side of a weighted step.
    sticky_header: str | None = None
    sticky_cookie: str | None = None


ON_REGION_DOWN = ("fail", "skip")


class ToolchainPin(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The toolchain the project builds with (``[tool.vega.toolchain]``).

    Registry compile steps are pinned by their ``dist==version`` entry in
    ``compile_steps``; this pins the rest. Unset parts accept anything.
    """

    #: Interpreter version, or a prefix of one: "3.11" accepts 3.11.x.
    python: str | None = None
    #: Interpreter implementation, as ``sys.implementation.name`` ("cpython").
    implementation: str | None = None
    #: Plugin compile steps: name -> exact version.
    steps: dict[str, str] = {}


class CompileStepTable(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A compile step installed from the package index (vega_dag.compile.steps)."""

    #: The dist to install, e.g. "python-minifier".
    package: str
    #: Its exact version, e.g. "2.11.3".
    version: str
    #: ``module:function`` called as ``function(source, filename=path, **options)``;
    #: optional for a dist with a built-in adapter.
    call: str | None = None
    #: Keyword arguments of every call (added to the adapter's, without ``call``).
    options: dict[str, object] = {}


class RouteSettings(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Settings of one route (``[tool.vega.per_route."/api/reports/export"]``)."""

    #: Globs of more files for this route's bundle (see ``VegaConfig.include``).
    include: list[str] = []
    #: Globs of files left out of this route's bundle (see ``VegaConfig.exclude``).
    exclude: list[str] = []


class ImportCheck(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """The build's isolated import of each changed route (``[tool.vega.import_check]``)."""

    #: Run it (a build that skips it can deploy a bundle that lacks a module).
    enabled: bool = True
    #: An import still running after this many seconds fails the build.
    timeout_s: float = 10.0


class Rewrite(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A path served as another (``[[tool.vega.rewrites]]``), as platforms' ``rewrites``."""

    #: A path pattern in the routes' syntax: "/old/{id}", "/blog/{rest:path}".
    source: str
    #: The path the request is routed (and served) as; may use the source's parameters.
    destination: str


class BackendConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Where a build's outputs and the pointers are shared (``[tool.vega.backend]``).

    Unset is local only: the project's store, and its SQLite pointer file.
    """

    #: "s3://BUCKET/PREFIX": a shared object store and action cache on S3
    #: (store.remote); ``--store`` and VEGA_DAG_STORE override it.
    store: str | None = None
    #: "nats://HOST:PORT[/NAMESPACE]" (a list, or comma-separated, for a
    #: cluster): the pointer store on NATS JetStream (rollout.jetstream);
    #: ``--pointers`` and VEGA_DAG_POINTERS override it.
    pointers: str | list[str] | None = None
    #: Where the regions run: "local" (region processes on this machine) or
    #: "agents" (``vega-dag region serve`` on other hosts, reached through the
    #: NATS pointers: regions.agents); VEGA_DAG_REGIONS overrides it.
    regions: str = "local"


class SigningConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """How a deploy signs its deployment record (``[tool.vega.signing]``).

    Not part of the build's identity: who signs changes no build output.
    """

    #: The deployer's Ed25519 private key (``vega-dag keys generate``), relative
    #: to the project root or absolute (``~`` expands); VEGA_DAG_SIGNING_KEY
    #: overrides it. Unset, deployments are unsigned, which regions that trust
    #: a key (``vega-dag keys trust``) refuse.
    key: str | None = None


class ObserveConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What a region records of the traffic it serves (``[tool.vega.observe]``).

    Read when the regions start; not part of the build's identity.
    """

    #: Prometheus metrics (requests, latency, worker loads, pointer generation)
    #: at each region's ``/__vega/metrics``, and live traffic in ``status``.
    metrics: bool = True
    #: One JSON line per request in ``.vega/fleet/logs/requests/<region>.jsonl``.
    request_log: bool = True
    #: A region's request log is rotated when it reaches this size.
    log_max_bytes: int = 16 * 1024 * 1024
    #: Rotated request logs kept per region (``<region>.jsonl.1`` … ``.N``).
    log_backups: int = 3


class VegaConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    #: Directory whose modules are routes, relative to the project root.
    routes: str = "api"
    #: A one-app project's application, "package.module:attr" (ASGI or WSGI):
    #: it is the project's one route, and the routes directory is not read.
    #: Unset, a project without route files is one if main.py, app.py,
    #: asgi.py or wsgi.py (or app/main.py, or a package's main.py, app.py,
    #: asgi.py or wsgi.py: graph/app.py) defines ``app`` or ``application``.
    app: str | None = None
    #: Where a one-app project's application is served: "/" or a prefix ("/v1").
    app_mount: str = "/"
    #: Directories that hold importable code (the routes' parent included).
    source_roots: list[str] = msgspec.field(default_factory=lambda: ["."])
    #: Pinned third-party dependencies: requirements-style `==` pins or
    #: pylock.toml. Default: requirements.lock or pylock.toml when present.
    lock: str | None = None
    #: The content-addressed store, relative to the project root.
    store: str = ".vega"
    #: Bytecode optimisation level passed to compile() (0, 1 or 2).
    optimize: int = 0
    #: Source transforms run in this order before compile: a plugin step's
    #: name (hook ``vega_dag_compile_steps``), ``"dist==version"`` for a
    #: package from the index, or a CompileStepTable. Each step's name and
    #: version are part of the toolchain, hence of every cache key.
    compile_steps: list[str | CompileStepTable] = []
    #: Environment variables the routes run with (part of a deployment).
    env: dict[str, str] = {}
    #: Globs (gitignore-style, from the project root) of more files for
    #: every bundle: a module's file adds the module and its imports, any
    #: other file is bundled as data (non-Python files inside packages are).
    include: list[str] = []
    #: Globs of data files never bundled (package data or included).
    exclude: list[str] = []
    #: route pattern -> that route's own include/exclude globs.
    per_route: dict[str, RouteSettings] = {}
    import_check: ImportCheck = ImportCheck()
    #: Paths served as other paths, first match first, before routing (part
    #: of a deployment).
    rewrites: list[Rewrite] = []
    #: The pinned toolchain: builds and drift checks refuse any other.
    toolchain: ToolchainPin = ToolchainPin()
    rollout: RolloutConfig = RolloutConfig()
    health: HealthConfig = HealthConfig()
    observe: ObserveConfig = ObserveConfig()
    #: Whether a build, deploy or drift check may start the project's build
    #: daemon in the background (see vega_dag.daemon.autostart). Not part
    #: of the build's identity: outputs are the same either way.
    daemon: bool = True
    #: Shared backends. Not part of the build's identity either: it says
    #: where outputs live, not what they are.
    backend: BackendConfig = BackendConfig()
    signing: SigningConfig = SigningConfig()


class ProjectConfig(msgspec.Struct, frozen=True):
    root: Path
    #: The file the settings came from, or None when all are defaults.
    source: Path | None
    vega: VegaConfig

    @property
    def store_dir(self) -> Path:
        return self.root / self.vega.store

    @property
    def lock_path(self) -> Path | None:
        if self.vega.lock is not None:
            return self.root / self.vega.lock
        for name in ("requirements.lock", "pylock.toml"):
            if (self.root / name).is_file():
                return self.root / name
        return None


#: Keys added after manifests were first pinned: hashed only when set, so a
#: project that does not use one keeps its config digest (and so its manifest
#: digest, and an unchanged deploy stays "unchanged").
_HASHED_WHEN_SET = {
    ("rewrites",): [],
    ("health", "load_timeout_s"): 10.0,
    ("rollout", "on_region_down"): "fail",
    ("include",): [],
    ("exclude",): [],
    ("per_route",): {},
    ("app",): None,
    ("app_mount",): "/",
}


def config_digest(config: ProjectConfig) -> str:
    """The digest of the ``[tool.vega]`` settings: in the manifest and the build's head."""
    # A daemon's builds of an unchanged configuration: one comparison, not an
    # encoding of every setting (a 20,000-module project lists ~1,400 probes).
    return warm.derived("config-digest", config.vega, lambda: _config_digest(config.vega))


def _config_digest(vega: VegaConfig) -> str:
    data = msgspec.to_builtins(vega)
    # How a build runs, not what it makes: the digest is the one from before the key existed.
    data.pop("daemon")
    data.pop("backend")
    data.pop("signing")
    # The import check judges a build's bundles; it does not change them.
    data.pop("import_check")
    # What the regions record of their traffic changes no build output either.
    data.pop("observe")
    # Nor does how long a gate watches that traffic.
    data["health"].pop("bake")
    # Nor how a deploy moves traffic onto them (a weighted wave's steps, its sticky key).
    for key in ("weights", "sticky_header", "sticky_cookie"):
        data["rollout"].pop(key)
    for path, default in _HASHED_WHEN_SET.items():
        *tables, key = path
        table = data
        for name in tables:
            table = table[name]
        if table[key] == default:
            del table[key]
    return _core.hash_bytes(msgspec.json.encode(data, order="sorted"))


_PATTERN_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:path)?\}")


def rewrite_problem(rewrite: Rewrite) -> str | None:
    """What is wrong with ``rewrite``, or None."""
    if not rewrite.source.startswith("/"):
        return f"source {rewrite.source!r} must start with '/'"
    if not rewrite.destination.startswith("/"):
        return f"destination {rewrite.destination!r} must start with '/'"
    segments = rewrite.source.strip("/").split("/")
    names = set()
    for i, segment in enumerate(segments):
        for m in _PATTERN_PARAM.finditer(segment):
            names.add(m.group(1))
            if m.group(2) and i != len(segments) - 1:
                return (
                    f"source {rewrite.source!r}: a {{{m.group(1)}:path}} parameter must be "
                    "the last segment"
                )
    for m in _PATTERN_PARAM.finditer(rewrite.destination):
        if m.group(1) not in names:
            return (
                f"destination {rewrite.destination!r} uses {{{m.group(1)}}}, "
                "which the source does not define"
            )
    return None


def bake_problem(bake: BakeConfig) -> str | None:
    """What is wrong with ``[tool.vega.health.bake]``, or None."""
    if bake.too_few not in TOO_FEW:
        return f'too_few must be "fail" or "extend", not {bake.too_few!r}'
    if min(bake.bake_s, bake.watch_s, bake.max_bake_s) < 0:
        return "bake_s, watch_s and max_bake_s must not be negative"
    if bake.min_requests < 1:
        return f"min_requests must be at least 1, not {bake.min_requests}"
    if not 0 < bake.alpha < 1:
        return f"alpha must be between 0 and 1, not {bake.alpha}"
    return None


_APP = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")
_MOUNT = re.compile(r"^(/[A-Za-z0-9._~-]+)+$")


def app_problem(vega: VegaConfig) -> str | None:
    """What is wrong with ``app`` and ``app_mount``, or None."""
    if vega.app is not None and not _APP.match(vega.app):
        return f'app {vega.app!r} must be "package.module:attr" (e.g. "app.main:app")'
    if vega.app_mount != "/" and not _MOUNT.match(vega.app_mount):
        return (
            f'app_mount {vega.app_mount!r} must be "/" or a path of plain segments '
            '("/v1", "/api/shop"), without a trailing \'/\''
        )
    return None


def _read_toml(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(path, f"not UTF-8: {err}") from err
    try:
        return _core.parse_toml(text)
    except ValueError as err:
        raise ConfigError(path, f"invalid TOML: {err}") from err


def _weights_problem(weights: list[int]) -> str | None:
    """What is wrong with ``[tool.vega.rollout] weights``, or None."""
    if not weights:
        return "is empty: give at least [100]"
    if any(not 1 <= w <= 100 for w in weights):
        return f"{weights}: each step is a percentage from 1 to 100"
    if any(a >= b for a, b in itertools.pairwise(weights)):
        return f"{weights}: the steps must rise"
    if weights[-1] != 100:
        return f"{weights}: the last step must be 100 (a wave ends with every request on it)"
    return None


def load_config(root: Path) -> ProjectConfig:
    """The configuration of the project at ``root``."""
    root = root.resolve()
    if not root.is_dir():
        raise ConfigError(root, "not a directory")
    raw: dict | None = None
    source: Path | None = None
    vega_toml = root / "vega.toml"
    pyproject = root / "pyproject.toml"
    if vega_toml.is_file():
        source, raw = vega_toml, warm.load(vega_toml, _read_toml, edited=True)
    elif pyproject.is_file():
        data = warm.load(pyproject, _read_toml, edited=True)
        if "vega" in data.get("tool", {}):
            source, raw = pyproject, data["tool"]["vega"]
    # Every check below is repeated by config_check (what `vega-dag status` reads
    # without msgspec), or its key left to this function there: keep them in step.
    try:
        vega = msgspec.convert(raw or {}, VegaConfig)
    except msgspec.ValidationError as err:
        where = "[tool.vega]" if source == pyproject else ""
        raise ConfigError(source or root, f"{where} {err}".strip()) from err
    if vega.optimize not in (0, 1, 2):
        raise ConfigError(source or root, f"optimize must be 0, 1 or 2, not {vega.optimize}")
    if vega.rollout.on_region_down not in ON_REGION_DOWN:
        raise ConfigError(
            source or root,
            f'[tool.vega.rollout] on_region_down must be "fail" or "skip", '
            f"not {vega.rollout.on_region_down!r}",
        )
    if vega.backend.regions not in ("local", "agents"):
        raise ConfigError(
            source or root,
            f'[tool.vega.backend] regions must be "local" or "agents", '
            f"not {vega.backend.regions!r}",
        )
    problem = bake_problem(vega.health.bake)
    if problem is not None:
        where = "[tool.vega.health.bake] " if source == pyproject else "[health.bake] "
        raise ConfigError(source or root, f"{where}{problem}")
    weights_problem = _weights_problem(vega.rollout.weights)
    if weights_problem:
        where = "[tool.vega.rollout] " if source == pyproject else "[rollout] "
        raise ConfigError(source or root, f"{where}weights {weights_problem}")
    if vega.compile_steps:
        from vega_dag.compile.steps.errors import StepSpecError
        from vega_dag.compile.steps.spec import parse_entry

        for i, entry in enumerate(vega.compile_steps):
            try:
                parse_entry(entry)
            except StepSpecError as err:
                where = "[tool.vega] " if source == pyproject else ""
                raise ConfigError(source or root, f"{where}compile_steps[{i}]: {err}") from err
    if vega.observe.log_max_bytes < 4096 or vega.observe.log_backups < 0:
        where = "[tool.vega.observe] " if source == pyproject else "[observe] "
        raise ConfigError(
            source or root,
            f"{where}log_max_bytes must be at least 4096 and log_backups at least 0",
        )
    for i, rewrite in enumerate(vega.rewrites):
        problem = rewrite_problem(rewrite)
        if problem is not None:
            where = "[tool.vega] " if source == pyproject else ""
            raise ConfigError(source or root, f"{where}rewrites[{i}]: {problem}")
    if vega.backend.store is not None:
        from vega_dag.store_url import RemoteConfigError, parse_store_url

        try:
            parse_store_url(vega.backend.store)
        except RemoteConfigError as err:
            where = "[tool.vega.backend] " if source == pyproject else "[backend] "
            raise ConfigError(source or root, f"{where}store: {err.reason}") from None
    if vega.backend.pointers is not None:
        from vega_dag.rollout.jetstream import PointersConfigError, parse_pointers_url

        try:
            parse_pointers_url(vega.backend.pointers)
        except PointersConfigError as err:
            where = "[tool.vega.backend] " if source == pyproject else "[backend] "
            raise ConfigError(source or root, f"{where}pointers: {err.reason}") from None
    problem = app_problem(vega)
    if problem is not None:
        where = "[tool.vega] " if source == pyproject else ""
        raise ConfigError(source or root, f"{where}{problem}")
    # The lock too: the scan that notices changes covers the project only, so
    # an edit to a lock outside it would leave a no-op build serving a stale layer.
    for rel in [vega.routes, *vega.source_roots, vega.store, *([vega.lock] if vega.lock else [])]:
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise ConfigError(source or root, f"{rel!r} must be a path inside the project")
    return ProjectConfig(root=root, source=source, vega=vega)
