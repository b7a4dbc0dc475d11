"""``build(root)``: one incremental, content-addressed build of a project.

The steps, each skipped when its inputs did not change:

1. scan: stat cache first, BLAKE3 only for files whose stat changed (Rust);
2. parse the imports of changed files only (Rust), cached by content digest;
3. resolve imports into first-party edges; when the edges changed, rebuild the
   networkx graph and each route's closure over its condensation;
4. compile every module whose (source digest, path, toolchain) has no cached
   output, in parallel, into canonical bytecode;
5. bundle every route whose members (pyc digests) or metadata changed: a
   change that compiles to identical bytes rebuilds nothing (early cutoff);
6. the dependency layer, keyed by the lock's pins;
7. the manifest; then commit: new objects (one pack), action cache, state.

Nothing is recorded as a success before every step has succeeded, so a build
that fails leaves the store and caches as they were.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from vega_dag import _core
from vega_dag.compile.toolchain import Toolchain, check_pin, current_toolchain
from vega_dag.config import ProjectConfig, load_config
from vega_dag.daemon import warm
from vega_dag.errors import VegaError
from vega_dag.scan.statcache import load_stat_cache, refresh, save_stat_cache, settled
from vega_dag.store.actions import ActionCache, action_key
from vega_dag.store.objects import CorruptObjectError, MissingObjectError, ObjectStore, PackIndex
from vega_dag.store.state import (
    BuildHead,
    BuildState,
    ModuleRecord,
    Parsed,
    RouteRecord,
    load_head,
    load_parse_cache,
    load_state,
    save_head,
    save_parse_cache,
    save_state,
)

if TYPE_CHECKING:
    from vega_dag.bundle.routes import RouteMeta
    from vega_dag.graph.modules import Module, Route

# The no-op path (nothing changed) must stay cheap to start: the modules for
# parsing, resolving, compiling and bundling are imported by _Build.rebuild.


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
    #: The manifest's canonical bytes, when this build made it (not in JSON).
    manifest_data: bytes | None = None

    def to_json(self) -> dict[str, object]:
        """The stable machine-readable form (see README, "vega-dag build --json")."""
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
        }


@dataclass
class Analysis:
    """The project as a graph: what ``vega-dag graph`` shows, and builds start from."""

    modules: dict[str, Module]
    routes: dict[str, Route]
    #: project-relative path → content digest, for every scanned file
    digests: dict[str, str]
    #: content digest → imports and names, for the modules (re)parsed this time
    #: (every module on a first build; only new or edited ones afterwards)
    parsed: dict[str, Parsed]
    #: module → the first-party modules it imports at run time
    deps: dict[str, list[str]]
    #: route pattern → every module in its bundle
    closures: dict[str, list[str]]
    module_set: str
    edges_digest: str


@dataclass
class Reporter:
    """Hooks the CLI uses to show progress; all optional."""

    on_compile_start: Callable[[int], None] | None = None
    on_compiled: Callable[[str], None] | None = None
    #: One line when a registry compile step is being installed (default: stderr).
    on_step_install: Callable[[str], None] | None = None


@dataclass
class _LastBuild:
    """What a resident build process (the daemon) keeps of its last build.

    Trusted only while the stat cache and state the next build loads are
    these very objects (``daemon.warm`` reloads a file another process
    replaced): then the scan's changed paths are exactly the modules whose
    source differs from the state, and the rest of these tables stand.
    """

    root: Path
    stat: _core.StatTable
    state: BuildState
    index: PackIndex
    tables_key: tuple
    digests: dict[str, str]
    pyc: dict[str, str]
    deps: dict[str, list[str]]
    #: sorted (path, digest) of every module (the manifest's ``source``)
    source_items: list[tuple[str, str]]


def _short(digest: str) -> str:
    return digest.removeprefix(_core.DIGEST_PREFIX)[:12]


def state_paths(config: ProjectConfig, state_dir: Path | None = None) -> tuple[Path, Path, Path]:
    state_dir = state_dir or config.store_dir / "state"
    return state_dir / "stat.cache", state_dir / "build.msgpack", state_dir / "head.msgpack"


def _config_digest(config: ProjectConfig) -> str:
    return _core.hash_bytes(msgspec.json.encode(config.vega, order="sorted"))


def check_skipped(changes: _core.Changes) -> list[str]:
    problems = []
    for path, target, reason in changes.skipped:
        if reason == "symlink-outside-root":
            problems.append(
                f"{path}: symlink to {target} leaves the project; "
                "copy the file in or remove the link"
            )
        elif reason == "broken-symlink" and path.endswith(".py"):
            problems.append(f"{path}: broken symlink (to {target})")
        elif reason == "non-utf8-name" and path.endswith(".py"):
            problems.append(f"{path!r}: file name is not valid UTF-8")
    return problems


def build(
    root: Path,
    *,
    explain: bool = False,
    workers: int | None = None,
    reporter: Reporter | None = None,
    config: ProjectConfig | None = None,
    verify: bool = False,
    dry_run: bool = False,
    state_dir: Path | None = None,
) -> BuildResult:
    """Build the project at ``root``; see the module docstring.

    With ``verify``, every reused output is read back and checked against its
    digest (damaged ones are rebuilt); otherwise outputs are checked when
    read, so a damaged object is found when a bundle or deploy reads it.

    With ``dry_run``, everything is computed (in memory) and nothing is
    written: the result says exactly what a real build would produce.

    ``state_dir`` keeps this build's state (what the next build compares
    with) apart from the project's, sharing the store and action cache: a
    toolchain bisection builds each version without moving the project's head.
    """
    started = time.perf_counter()
    config = config or load_config(root)
    store = ObjectStore(config.store_dir)
    # A build allocates hundreds of thousands of small objects (state, index)
    # and creates no reference cycles worth collecting: the cyclic GC would
    # only rescan them, which costs seconds on a 20,000-module project.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(store.locked())
            b = _Build(config, store, explain, workers, reporter or Reporter(), started, state_dir)
            b.verify = verify
            b.dry_run = dry_run
            result = b.run()
            if b.tail is not None:
                # The daemon answers first and records the caches after,
                # still holding the store's lock (daemon.warm.defer).
                locked = stack.pop_all()

                def finish(tail: Callable[[], None] = b.tail) -> None:
                    with locked:
                        tail()

                if not warm.defer(finish):
                    finish()
                    result.seconds = time.perf_counter() - started
            return result
    finally:
        if gc_was_enabled:
            gc.enable()


def scan_skip_dirs(config: ProjectConfig) -> list[str]:
    """Directories the build's scan never enters."""
    return [".git", "__pycache__", Path(config.vega.store).parts[0], ".venv", "node_modules"]


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


#: Bump when import resolution changes: cached edges are then recomputed.
RESOLVER_VERSION = 2


def _deleted_top_levels(state: BuildState, first_party: set[str]) -> set[str]:
    """Top-level names that were first-party last build and are importable from nowhere now."""
    import importlib.util

    gone = {name.partition(".")[0] for name in state.modules} - first_party
    return {name for name in gone if importlib.util.find_spec(name) is None}


def analyze_project(root: Path) -> Analysis:
    """Scan, parse and resolve the project without compiling or writing anything.

    Caches of an earlier build are read (so only changed files are parsed),
    never written.
    """
    config = load_config(root)
    b = _Build(config, ObjectStore(config.store_dir), False, None, Reporter(), time.perf_counter())
    changes, _ = refresh(config.root, load_stat_cache(b.stat_path), skip_dirs=b.skip_dirs)
    problems = check_skipped(changes)
    if problems:
        raise BuildError(problems)
    return b.analyze(changes, load_state(b.state_path))


class _Build:
    def __init__(
        self,
        config: ProjectConfig,
        store: ObjectStore,
        explain: bool,
        workers: int | None,
        reporter: Reporter,
        started: float,
        state_dir: Path | None = None,
    ) -> None:
        self.config = config
        self.root = config.root
        self.store = store
        self.explain_on = explain
        self.workers = workers
        self.reporter = reporter
        self.started = started
        self.steps, self.toolchain = project_toolchain(config, reporter.on_step_install)
        check_pin(config, self.toolchain)
        self.tc_key = self.toolchain.key
        self.stat_path, self.state_path, self.head_path = state_paths(config, state_dir)
        self.parse_cache_path = self.state_path.with_name("parsed.msgpack")
        #: Loaded only when the module set changed (see parse).
        self.parse_cache: dict[str, Parsed] | None = None
        self.actions = ActionCache(config.store_dir / "state" / "actions.msgpack")
        self.new_objects: dict[str, bytes] = {}
        #: bundles, stored as their assemblies (store.assembly): digest → record
        self.new_assemblies: dict[str, bytes] = {}
        # Reads during the build (a verified bundle's members) see its outputs.
        store.pending = self.new_objects
        self.new_actions: dict[str, str] = {}
        #: What a successful rebuild records last (see ``record``), or None.
        self.tail: Callable[[], None] | None = None
        #: The stat cache this build's scan started from (set by ``run``).
        self.base_stat: _core.StatTable | None = None
        self.explained: list[str] = []
        self.verify = False
        self.dry_run = False
        self.skip_dirs = scan_skip_dirs(config)

    def present(self, digest: str) -> bool:
        """Whether the store holds ``digest`` (read back and checked, with --verify)."""
        return self.store.verified(digest) if self.verify else self.store.has(digest)

    def why(self, text: str) -> None:
        if self.explain_on:
            self.explained.append(text)

    # -- the steps ------------------------------------------------------------
    def run(self) -> BuildResult:
        stat_cache = load_stat_cache(self.stat_path)
        self.base_stat = stat_cache
        changes, new_stat = refresh(self.root, stat_cache, skip_dirs=self.skip_dirs)
        problems = check_skipped(changes)
        if problems:
            raise BuildError(problems)
        config_digest = _config_digest(self.config)
        head = load_head(self.head_path)
        if (
            not changes.changed
            and not changes.removed
            and not self.verify
            and head.manifest is not None
            and head.toolchain == self.toolchain
            and head.config == config_digest
            and self.store.verified(head.manifest)  # a few KB: a damaged manifest is rebuilt
        ):
            # Nothing changed: the last build stands, and only the small
            # head of the state was read.
            if changes.hashed and not self.dry_run:
                save_stat_cache(self.stat_path, new_stat)
                settled(self.root, new_stat, new_stat)
                last = warm.recall("last-build")
                if last is not None and last.stat is stat_cache:
                    last.stat = new_stat  # re-read files, the same digests
            elif not changes.hashed:
                settled(self.root, stat_cache, new_stat)  # the same entries
            return BuildResult(
                manifest=head.manifest,
                modules_compiled=0,
                modules_cached=head.modules,
                bundles_built=0,
                bundles_cached=len(head.routes),
                seconds=time.perf_counter() - self.started,
                routes=head.routes,
                layer=head.layer,
                noop=True,
            )
        return self.rebuild(changes, new_stat, load_state(self.state_path), config_digest)

    def analyze(
        self, changes: _core.Changes, state: BuildState, *, with_closures: bool = True
    ) -> Analysis:
        """Steps 2-3: the module table, parsed imports, edges and closures.

        Without ``with_closures`` the closures are left empty (and networkx
        unimported) for a caller that needs only some of them.
        """
        from vega_dag.graph.modules import module_table, route_table

        vega = self.config.vega
        last: _LastBuild | None = warm.recall("last-build")
        self.last = None
        if (
            last is not None
            and last.root == self.root
            and last.stat is self.base_stat
            and last.state is state
            and not changes.removed
            and all(p in last.digests for p in changes.changed)
        ):
            # The same files as the last build of this process, which wrote
            # the stat cache and state just loaded: only the changed paths
            # differ from its tables.
            self.last = last
            digests = dict(last.digests)
            table = changes.table
            for path in changes.changed:
                digests[path] = table.digest(path)
            self.tables_key = last.tables_key
        else:
            digests = changes.table.digests()
            files = tuple(sorted(digests))
            self.tables_key = (files, tuple(vega.source_roots), vega.routes)

        def tables() -> tuple[dict[str, Module], dict[str, Route], str]:
            modules = module_table(list(self.tables_key[0]), vega.source_roots, vega.routes)
            module_set = _core.hash_bytes(
                msgspec.json.encode(
                    [
                        RESOLVER_VERSION,
                        sorted((m.name, m.path, m.is_package) for m in modules.values()),
                    ]
                )
            )
            return modules, route_table(modules, vega.routes), module_set

        # A resident build process keeps them while the file list is the same.
        modules, routes, module_set = warm.derived("tables", self.tables_key, tables)
        same_set = state.module_set == module_set
        #: With the module set unchanged, the modules whose source or path
        #: differ from the last build's record: only these are parsed,
        #: resolved and compiled again (the rest is copied from the record).
        self.edited: set[str] | None = None
        if same_set and self.last is not None:
            by_path = warm.derived(
                "module-by-path", self.tables_key, lambda: {m.path: n for n, m in modules.items()}
            )
            self.edited = {by_path[p] for p in changes.changed if p in by_path}
        elif same_set:
            records = state.modules
            self.edited = {
                n
                for n, m in modules.items()
                if (old := records.get(n)) is None
                or old.source != digests[m.path]
                or old.path != m.path
            }
        parsed = self.parse(modules, digests, state, same_set)
        deps = self.resolve(modules, digests, parsed, state, module_set)
        closures = self.closures(routes, deps, state) if with_closures else {}
        return Analysis(
            modules, routes, digests, parsed, deps, closures, module_set, self.edges_digest
        )

    def rebuild(
        self,
        changes: _core.Changes,
        new_stat: _core.StatTable,
        state: BuildState,
        config_digest: str,
    ) -> BuildResult:
        from vega_dag.manifest import MANIFEST_SCHEMA, Manifest, RouteEntry

        a = self.analyze(changes, state)
        modules, routes, digests, parsed = a.modules, a.routes, a.digests, a.parsed
        deps, closures, module_set = a.deps, a.closures, a.module_set
        vega = self.config.vega
        entries = self.entry_points(routes, digests, parsed, state)
        pyc = self.compile(modules, digests, state)
        route_records = self.bundles(routes, entries, closures, modules, pyc, state)
        layer = self.layer(state)

        lock = self.config.lock_path
        module_items = self.source_items(modules, digests)
        source_items = list(module_items)
        if lock is not None and lock.is_file():
            rel = lock.relative_to(self.root).as_posix()
            source_items.append((rel, digests.get(rel) or _core.hash_file(lock)))
        manifest = Manifest(
            schema=MANIFEST_SCHEMA,
            toolchain=self.toolchain,
            source=_core.hash_bytes(msgspec.json.encode(source_items)),
            config=config_digest,
            layer=layer[1] if layer else None,
            routes=[
                RouteEntry(
                    pattern=p,
                    module=r.module,
                    file=modules[r.module].path,
                    entry=r.entry,
                    bundle=r.bundle,
                )
                for p, r in sorted(route_records.items())
            ],
            env=dict(sorted(vega.env.items())),
        )
        manifest_bytes = manifest.encode()
        manifest_digest = _core.hash_bytes(manifest_bytes)
        self.new_objects[manifest_digest] = manifest_bytes

        built = sum(1 for p in route_records if p in self.rebuilt_routes)
        result = BuildResult(
            manifest=manifest_digest,
            modules_compiled=len(self.compiled),
            modules_cached=len(modules) - len(self.compiled),
            bundles_built=built,
            bundles_cached=len(route_records) - built,
            seconds=time.perf_counter() - self.started,
            routes={p: r.bundle for p, r in route_records.items()},
            layer=layer[1] if layer else None,
            compiled=sorted(modules[n].path for n in self.compiled),
            explain=self.explained,
            manifest_data=manifest_bytes,
        )
        if self.dry_run:
            return result

        # Commit: objects first (durable before the build answers), then the
        # caches that point at them (``tail``: after the answer, in the daemon).
        self.store.put_many(self.new_objects, self.new_assemblies)
        self.tail = lambda: self.record(
            config_digest,
            module_set,
            manifest_digest,
            layer,
            modules,
            digests,
            pyc,
            deps,
            state,
            route_records,
            closures,
            new_stat,
            module_items,
        )
        result.seconds = time.perf_counter() - self.started
        return result

    def record(
        self,
        config_digest: str,
        module_set: str,
        manifest_digest: str,
        layer: tuple[str, str] | None,
        modules: dict[str, Module],
        digests: dict[str, str],
        pyc: dict[str, str],
        deps: dict[str, list[str]],
        state: BuildState,
        route_records: dict[str, RouteRecord],
        closures: dict[str, list[str]],
        new_stat: _core.StatTable,
        module_items: list[tuple[str, str]],
    ) -> None:
        """Record what the next build starts from: action cache, state, head, stat cache."""
        for key, out in self.new_actions.items():
            self.actions.put(key, out)
        self.actions.save()
        new_state = BuildState(
            toolchain=self.toolchain,
            config=config_digest,
            module_set=module_set,
            edges=self.edges_digest,
            manifest=manifest_digest,
            layer=layer,
            modules=self.module_records(modules, digests, pyc, deps, state),
            routes=route_records,
            closures=closures,
        )
        save_state(self.state_path, new_state, state)
        if self.parse_cache is not None:
            save_parse_cache(self.parse_cache_path, self.parse_cache)
        # The head last: a crash before it leaves the old head, which the
        # next build does not trust blindly (the scan finds the changes).
        save_head(
            self.head_path,
            BuildHead(
                toolchain=self.toolchain,
                config=config_digest,
                manifest=manifest_digest,
                layer=layer[1] if layer else None,
                modules=len(modules),
                routes={p: r.bundle for p, r in route_records.items()},
            ),
        )
        save_stat_cache(self.stat_path, new_stat)
        settled(self.root, new_stat, new_stat)
        warm.remember(
            "last-build",
            _LastBuild(
                root=self.root,
                stat=new_stat,
                state=new_state,
                index=self.store.index,
                tables_key=self.tables_key,
                digests=digests,
                pyc=pyc,
                deps=deps,
                source_items=module_items,
            ),
        )

    def source_items(
        self, modules: dict[str, Module], digests: dict[str, str]
    ) -> list[tuple[str, str]]:
        """Sorted (path, digest) of every module: what the manifest's ``source`` hashes."""
        if self.last is None or self.edited is None:
            return sorted((m.path, digests[m.path]) for m in modules.values())
        items = list(self.last.source_items)
        position = warm.derived(
            "source-positions", self.tables_key, lambda: {p: i for i, (p, _) in enumerate(items)}
        )
        for name in self.edited:
            path = modules[name].path
            items[position[path]] = (path, digests[path])
        return items

    def module_records(
        self,
        modules: dict[str, Module],
        digests: dict[str, str],
        pyc: dict[str, str],
        deps: dict[str, list[str]],
        state: BuildState,
    ) -> dict[str, ModuleRecord]:
        """Each module's record for the next build, sorted by name."""
        if self.edited is not None and state.toolchain == self.toolchain:
            # Same modules: the last records, but those this build looked at.
            records = dict(state.modules)
            for name in self.compile_checked:
                m = modules[name]
                old = records[name]
                if (
                    old.source != digests[m.path]
                    or old.pyc != pyc[name]
                    or old.deps is not deps[name]
                ):
                    records[name] = ModuleRecord(
                        path=m.path, source=digests[m.path], pyc=pyc[name], deps=deps[name]
                    )
            return records
        return {
            name: ModuleRecord(path=m.path, source=digests[m.path], pyc=pyc[name], deps=deps[name])
            for name, m in sorted(modules.items())
        }

    def parse(
        self, modules: dict[str, Module], digests: dict[str, str], state: BuildState, same_set: bool
    ) -> dict[str, Parsed]:
        """Parsed imports of every module that must be (re)resolved, by content digest.

        With an unchanged module set only new or edited modules are resolved
        again, and they are scanned directly. When the module set changed,
        every module is resolved again: then the parse cache (by digest) is
        read, so only files not seen before are scanned, and written back.
        """
        wanted: dict[str, str] = {}
        for name in sorted(self.edited) if self.edited is not None else modules:
            path = modules[name].path
            wanted.setdefault(digests[path], path)
        parsed: dict[str, Parsed] = {}
        if not same_set:
            self.parse_cache = load_parse_cache(self.parse_cache_path)
            parsed = {d: self.parse_cache[d] for d in wanted if d in self.parse_cache}
        todo = {d: path for d, path in wanted.items() if d not in parsed}
        if todo:
            from vega_dag.compile.bytecode import SourceChangedError

            paths = sorted(todo.values())
            try:
                results = _core.scan_imports_files(self.root, paths)
            except VegaError as err:
                raise BuildError([str(err)]) from None
            except FileNotFoundError as err:
                raise BuildError(
                    [
                        f"{Path(err.filename).relative_to(self.root)}: vanished during the build; "
                        "run the build again"
                    ]
                ) from None
            problems = []
            for path, (digest, imports, names) in zip(paths, results, strict=True):
                if digest != digests[path]:
                    problems.append(str(SourceChangedError(path)))
                    continue
                parsed[digest] = Parsed(imports=imports, names=names)
            if problems:
                raise BuildError(problems)
        if self.parse_cache is not None:
            live = {digests[m.path] for m in modules.values()}
            self.parse_cache = {
                d: v for d, v in {**self.parse_cache, **parsed}.items() if d in live
            }
        return parsed

    def resolve(
        self,
        modules: dict[str, Module],
        digests: dict[str, str],
        parsed: dict[str, Parsed],
        state: BuildState,
        module_set: str,
    ) -> dict[str, list[str]]:
        from vega_dag.graph.modules import top_level_packages
        from vega_dag.graph.resolve import ImportStmt, package_names, resolve_imports

        packages = first_party = None
        problems = []
        if self.edited is not None:
            # The module set is the same: every record's edges stand but the
            # edited modules'.
            if self.last is not None:
                deps = dict(self.last.deps)
            else:
                deps = {name: old.deps for name, old in state.modules.items()}
            todo = sorted(self.edited)
        else:
            deps = {}
            todo = list(modules)
        for name in todo:
            m = modules[name]
            if packages is None:
                packages, base = warm.derived(
                    "packages",
                    self.tables_key,
                    lambda: (
                        package_names(modules),
                        top_level_packages(modules, list(digests), self.config.vega.source_roots),
                    ),
                )
                # A top-level module deleted since the last build would
                # otherwise pass for a third-party import of the same name
                # (none was when the module set is the same).
                first_party = set(base)
                if self.edited is None:
                    first_party |= _deleted_top_levels(state, base)
            imports = [ImportStmt(*t) for t in parsed[digests[m.path]].imports]
            targets, errors = resolve_imports(m, imports, modules, packages, first_party or set())
            deps[name] = targets
            problems.extend(str(e) for e in errors)
        if problems:
            raise BuildError(sorted(problems))
        if self.edited is not None and all(deps[n] == state.modules[n].deps for n in self.edited):
            self.edges_digest = state.edges  # no edge changed
        else:
            self.edges_digest = _core.hash_bytes(msgspec.json.encode(sorted(deps.items())))
        return deps

    def entry_points(
        self,
        routes: dict[str, Route],
        digests: dict[str, str],
        parsed: dict[str, Parsed],
        state: BuildState,
    ) -> dict[str, str]:
        from vega_dag.bundle.routes import entry_point

        entries, problems = {}, []
        for pattern, route in routes.items():
            digest = digests[route.module.path]
            old = state.routes.get(pattern)
            if digest not in parsed and old is not None and old.module == route.module.name:
                # Not parsed this build: unchanged since the last one, whose
                # record says how the route is called.
                entries[pattern] = old.entry
                continue
            if digest not in parsed:
                source = (self.root / route.module.path).read_bytes()
                imports, names = _core.scan_imports(source, route.module.path)
                parsed[digest] = Parsed(imports=imports, names=names)
            try:
                entries[pattern] = entry_point(route, parsed[digests[route.module.path]].names)
            except VegaError as err:
                problems.append(str(err))
        if problems:
            raise BuildError(problems)
        return entries

    def closures(
        self, routes: dict[str, Route], deps: dict[str, list[str]], state: BuildState
    ) -> dict[str, list[str]]:
        wanted = {p: r.module.name for p, r in routes.items()}
        if state.edges == self.edges_digest and set(state.closures) == set(wanted):
            return state.closures
        # Only here is networkx imported: the edges changed.
        from vega_dag.graph.dag import closures, import_graph

        by_module = closures(import_graph(deps), sorted(set(wanted.values())))
        return {p: by_module[m] for p, m in sorted(wanted.items())}

    def compile(
        self, modules: dict[str, Module], digests: dict[str, str], state: BuildState
    ) -> dict[str, str]:
        from vega_dag.compile.pool import compile_all

        pyc: dict[str, str] = {}
        jobs: list[tuple[str, str]] = []
        job_module: dict[str, str] = {}
        keys: dict[str, str] = {}
        same_toolchain = state.toolchain == self.toolchain
        todo: list[str] | dict[str, Module] = modules
        if (
            same_toolchain
            and self.last is not None
            and self.edited is not None
            and not self.verify
            and self.last.index is self.store.index
        ):
            # The index this process wrote last, holding every output of
            # the last build: those of unedited modules stand as they are.
            pyc.update(self.last.pyc)
            todo = sorted(self.edited)
        elif same_toolchain and self.edited is not None and not self.verify:
            # The last build's outputs of every unedited module stand while
            # the store holds them: one pass over the records, the index
            # probed directly (the loop below handles the rest).
            index, edited = self.store.index.objects, self.edited
            todo = []
            for name, old in state.modules.items():
                if name not in edited and old.pyc in index:
                    pyc[name] = old.pyc
                else:
                    todo.append(name)
        #: The modules whose output may differ from the last build's record.
        self.compile_checked = todo
        for name in todo:
            m = modules[name]
            digest = digests[m.path]
            old = state.modules.get(name)
            if (
                same_toolchain
                and old is not None
                and old.source == digest
                and old.path == m.path
                and self.present(old.pyc)
            ):
                # The last build's output for the same (source, path,
                # toolchain): the action cache would say the same, and
                # skipping the key saves most of a 20,000-module no-change.
                pyc[name] = old.pyc
                continue
            key = action_key("compile", digest, m.path, self.tc_key)
            keys[name] = key
            out = self.actions.get(key)
            if out is not None and self.present(out):
                pyc[name] = out
                continue
            jobs.append((m.path, digest))
            job_module[m.path] = name
            self.explain_module(name, m, digest, out, state)
        self.compiled: list[str] = []
        if not jobs:
            return pyc
        if self.reporter.on_compile_start:
            self.reporter.on_compile_start(len(jobs))
        problems = []
        for path, result in compile_all(
            str(self.root),
            sorted(jobs),
            self.config.vega.optimize,
            workers=self.workers,
            on_done=self.reporter.on_compiled,
            steps=self.steps,
        ):
            if isinstance(result, VegaError):
                problems.append(result)
                continue
            name = job_module[path]
            digest = _core.hash_bytes(result)
            self.new_objects[digest] = result
            self.new_actions[keys[name]] = digest
            pyc[name] = digest
            self.compiled.append(name)
        if problems:
            problems.sort(key=lambda e: (getattr(e, "path", ""), getattr(e, "line", 0) or 0))
            raise BuildError([str(p) for p in problems])
        self.compiled.sort()
        return pyc

    def explain_module(
        self, name: str, m: Module, digest: str, cached_out: str | None, state: BuildState
    ) -> None:
        if not self.explain_on:
            return
        old = state.modules.get(name)
        if cached_out is not None:
            self.why(f"{m.path}: cached output {_short(cached_out)} is missing from the store")
        elif old is None:
            self.why(f"{m.path}: new module")
        elif old.source != digest:
            self.why(f"{m.path}: source changed ({_short(old.source)} → {_short(digest)})")
        elif state.toolchain is not None and state.toolchain != self.toolchain:
            self.why(
                f"{m.path}: toolchain changed "
                f"({'; '.join(self.toolchain.differences(state.toolchain))})"
            )
        elif old.path != m.path:
            self.why(f"{m.path}: moved from {old.path}")
        else:
            self.why(f"{m.path}: not in the action cache")

    def bundles(
        self,
        routes: dict[str, Route],
        entries: dict[str, str],
        closures: dict[str, list[str]],
        modules: dict[str, Module],
        pyc: dict[str, str],
        state: BuildState,
    ) -> dict[str, RouteRecord]:
        from vega_dag.bundle.routes import archive_name, bundle_inputs

        records: dict[str, RouteRecord] = {}
        self.rebuilt_routes: set[str] = set()
        same_toolchain = state.toolchain == self.toolchain
        changed = {
            n
            for n in self.compile_checked
            if (old := state.modules.get(n)) is None or old.pyc != pyc[n]
        }
        names = warm.derived(
            "archive-names",
            self.tables_key,
            lambda: {n: archive_name(m) for n, m in modules.items()},
        )
        todo: list[tuple[str, RouteMeta, list[tuple[str, str]], str, list[str]]] = []
        index = {} if self.verify else self.store.index.objects
        old_closures = state.closures
        for pattern, route in routes.items():
            closure_names = closures[pattern]
            old = state.routes.get(pattern)
            if (
                same_toolchain
                and old is not None
                and old.module == route.module.name
                and old.entry == entries[pattern]
                and ((prev := old_closures.get(pattern)) is closure_names or prev == closure_names)
                and changed.isdisjoint(closure_names)
                and (old.bundle in index or self.present(old.bundle))
            ):
                # No member's compiled bytes changed: the bundle stands
                # (early cutoff), without even computing its key.
                records[pattern] = old
                continue
            meta, members = bundle_inputs(route, entries[pattern], closure_names, names, pyc)
            key = action_key("bundle", meta, members, self.tc_key)
            out = self.actions.get(key)
            if out is not None and self.present(out):
                records[pattern] = RouteRecord(
                    module=route.module.name, entry=meta.entry, bundle=out
                )
                continue
            self.explain_bundle(pattern, members, out, state)
            todo.append((pattern, meta, members, key, closure_names))
        if todo:
            jobs = [(meta, members, c) for _, meta, members, _, c in todo]
            made = self.make_bundles(jobs, pyc, modules)
            for (pattern, meta, _, key, _), digest in zip(todo, made, strict=True):
                self.new_actions[key] = digest
                records[pattern] = RouteRecord(module=meta.module, entry=meta.entry, bundle=digest)
                self.rebuilt_routes.add(pattern)
        return records

    def make_bundles(
        self,
        jobs: list[tuple[RouteMeta, list[tuple[str, str]], list[str]]],
        pyc: dict[str, str],
        modules: dict[str, Module],
    ) -> list[str]:
        """Each job's bundle digest; the bundles are stored as their assemblies.

        The digests are computed in one parallel pass of the archive writer
        over every member's (verified) bytes; the store keeps each bundle as
        the writer's inputs (store.assembly), so an edit to a shared module
        costs a hash of the bundles it is in, not a copy and fsync of each.
        """
        from vega_dag.bundle.routes import BUNDLE_EPOCH, bundle_assembly, route_inline

        blobs: dict[str, bytes] = {}
        for _, _, closure_names in jobs:
            for name in closure_names:
                d = pyc[name]
                if d not in blobs:
                    blobs[d] = self.member_bytes(modules[name], d)
        inline = [route_inline(meta) for meta, _, _ in jobs]
        digests = _core.stored_archive_digests(
            [(i, members) for i, (_, members, _) in zip(inline, jobs, strict=True)],
            blobs,
            epoch=BUNDLE_EPOCH,
        )
        for i, (_, members, _), digest in zip(inline, jobs, digests, strict=True):
            self.new_assemblies[digest] = bundle_assembly(i, members)
        return digests

    def member_bytes(self, m: Module, d: str) -> bytes:
        """The compiled bytes ``d`` of ``m``, recompiled here if the stored copy is damaged."""
        try:
            return self.store.get(d)  # this build's outputs too (store.pending)
        except (CorruptObjectError, MissingObjectError):
            from vega_dag.compile.bytecode import CompileError, compile_file

            self.why(f"{m.path}: stored output {_short(d)} is damaged; recompiled")
            digest_src = _core.hash_file(self.root / m.path)
            try:
                _, fresh = compile_file(
                    str(self.root), m.path, digest_src, self.config.vega.optimize, self.steps
                )
            except CompileError as err:
                raise BuildError([str(err)]) from None
            self.new_objects[d] = fresh
            return fresh

    def explain_bundle(
        self,
        pattern: str,
        members: list[tuple[str, str]],
        cached_out: str | None,
        state: BuildState,
    ) -> None:
        if not self.explain_on:
            return
        from vega_dag.bundle.routes import archive_name_of

        old = state.routes.get(pattern)
        if cached_out is not None:
            self.why(
                f"route {pattern}: cached bundle {_short(cached_out)} is missing from the store"
            )
            return
        if old is None:
            self.why(f"route {pattern}: new route")
            return
        before = {
            archive_name_of(n, rec.path): rec.pyc
            for n in state.closures.get(pattern, [])
            if (rec := state.modules.get(n)) is not None
        }
        after = dict(members)
        changed = sorted(n for n in after if n in before and before[n] != after[n])
        added = sorted(set(after) - set(before))
        removed = sorted(set(before) - set(after))
        parts = []
        if changed:
            parts.append("compiled output changed: " + ", ".join(changed))
        if added:
            parts.append("added: " + ", ".join(added))
        if removed:
            parts.append("removed: " + ", ".join(removed))
        if not parts and state.toolchain != self.toolchain:
            parts.append("toolchain changed")
        self.why(f"route {pattern}: " + ("; ".join(parts) or "route metadata changed"))

    def layer(self, state: BuildState) -> tuple[str, str] | None:
        lock = self.config.lock_path
        if lock is None:
            return None
        from vega_dag.bundle.layer import build_layer, read_lock, target_tag

        pins = read_lock(lock)
        key = action_key("layer", pins, target_tag())
        out = self.actions.get(key)
        if out is not None and self.present(out):
            return key, out
        self.why(
            f"layer: {'lock changed' if state.layer else 'first build of'} {lock.name} "
            f"({len(pins)} pins)"
        )
        data = build_layer(pins, lock)
        digest = _core.hash_bytes(data) if self.dry_run else self.store.put_loose(data)
        self.new_actions[key] = digest
        return key, digest
