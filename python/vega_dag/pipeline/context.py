"""``BuildContext``: what every stage of one build is given, and what it adds to.

The settings (configuration, store, toolchain, flags) are fixed when the
build starts; the pending outputs (new objects, bundle trees, action
cache entries) and the ``--explain`` lines fill up as the stages run, and
are written only by the commit, once every stage has succeeded.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vega_dag import _core
from vega_dag.compile.toolchain import Toolchain, check_pin, project_toolchain
from vega_dag.pipeline.result import Reporter
from vega_dag.scan.project import scan_skip_dirs
from vega_dag.store.actions import ActionCache
from vega_dag.store.state import state_paths

if TYPE_CHECKING:
    from vega_dag.config import ProjectConfig
    from vega_dag.store.objects import ObjectStore
    from vega_dag.store.remote import Fetched, RemoteCache


@dataclass
class BuildContext:
    config: ProjectConfig
    store: ObjectStore
    #: The project's compile steps, in order (part of ``toolchain``).
    steps: list
    toolchain: Toolchain
    #: ``toolchain.key``, computed once: it is in every action key.
    tc_key: str
    actions: ActionCache
    stat_path: Path
    state_path: Path
    head_path: Path
    parse_cache_path: Path
    #: Directories the scan never enters.
    skip_dirs: list[str]
    #: ``time.perf_counter()`` when the build started.
    started: float
    reporter: Reporter = field(default_factory=Reporter)
    workers: int | None = None
    #: Collect ``why`` lines (``--explain``).
    explain: bool = False
    #: Read back every reused output (``--verify``).
    verify: bool = False
    #: Compute everything, write nothing (``vega-dag plan``).
    dry_run: bool = False
    #: Import each changed route from its bundle alone (``bundle.importcheck``).
    import_check: bool = True
    #: The ``--explain`` lines, in the order the stages found them.
    explained: list[str] = field(default_factory=list)
    #: digest → bytes of every output this build made (one pack at the commit)
    new_objects: dict[str, bytes] = field(default_factory=dict)
    #: bundles, stored as their tree records (store.tree): digest → record
    new_trees: dict[str, bytes] = field(default_factory=dict)
    #: action key → output digest, recorded after the objects are durable
    new_actions: dict[str, str] = field(default_factory=dict)
    #: The shared store (``s3://…``), or None for the embedded default alone.
    remote_url: str | None = None
    #: action key → output digest, for the outputs fetched from the remote
    remote_hits: dict[str, str] = field(default_factory=dict)
    #: Problems that did not fail the build (a remote that is down), for stderr.
    warnings: list[str] = field(default_factory=list)
    _remote: RemoteCache | None = None
    #: A cold build's lookups, started before the stages that need them.
    _prefetch: threading.Thread | None = None
    _prefetched: Fetched | None = None
    _prefetch_error: BaseException | None = None
    #: A cold build's key of the whole tree (its .py files' compile keys), and
    #: whether the shared store had its pack (store.remote.lookup_pack).
    tree_key: str | None = None
    tree_found: bool = False

    @classmethod
    def create(
        cls,
        config: ProjectConfig,
        store: ObjectStore,
        started: float,
        *,
        reporter: Reporter | None = None,
        workers: int | None = None,
        explain: bool = False,
        verify: bool = False,
        dry_run: bool = False,
        state_dir: Path | None = None,
        store_url: str | None = None,
    ) -> BuildContext:
        """The context of a build of ``config``'s project; fails on an unpinned toolchain.

        ``state_dir`` keeps the build's state apart from the project's (the
        store and action cache are shared).
        """
        reporter = reporter or Reporter()
        steps, toolchain = project_toolchain(config, reporter.on_step_install)
        check_pin(config, toolchain)
        stat_path, state_path, head_path = state_paths(config, state_dir)
        ctx = cls(
            config=config,
            store=store,
            steps=steps,
            toolchain=toolchain,
            tc_key=toolchain.key,
            actions=ActionCache(config.store_dir / "state" / "actions.msgpack"),
            stat_path=stat_path,
            state_path=state_path,
            head_path=head_path,
            parse_cache_path=state_path.with_name("parsed.msgpack"),
            skip_dirs=scan_skip_dirs(config),
            started=started,
            reporter=reporter,
            workers=workers,
            explain=explain,
            verify=verify,
            dry_run=dry_run,
        )
        from vega_dag.store.remote import store_url as remote_store_url

        ctx.remote_url = remote_store_url(config, store_url)
        # Reads during the build (a verified bundle's members) see its outputs.
        store.pending = ctx.new_objects
        return ctx

    @property
    def root(self) -> Path:
        return self.config.root

    @property
    def remote(self) -> RemoteCache | None:
        """The shared store, opened on first use (a build of local hits never opens it)."""
        if self.remote_url is None or self.dry_run:
            return None
        if self._remote is None:
            from vega_dag.store.remote import RemoteCache

            self._remote = RemoteCache(self.remote_url)
        return self._remote if self._remote.down is None else None

    def prefetch(self, keys: list[str], tree_key: str | None = None) -> None:
        """Start looking ``keys`` up in the shared store, in the background.

        A cold build knows its compile keys once the scan has hashed the
        files; the graph stage (imports, closures) runs meanwhile, so the
        round trips cost the build nothing.
        """
        if self.remote_url is None or self.dry_run or not keys:
            return
        self.tree_key = tree_key

        def run() -> None:
            try:
                remote = self.remote
                if remote is None:
                    return
                if tree_key is None:
                    self._prefetched = remote.lookup(keys)
                    return
                # The pack of a cold build of this very tree, when there is one:
                # two requests instead of two per key.
                found = remote.lookup_pack(tree_key)
                self.tree_found = tree_key not in found.misses
                rest = remote.lookup([k for k in keys if k not in found.hits])
                found.hits.update(rest.hits)
                found.misses.update(rest.misses)
                self._prefetched = found
            except BaseException as err:  # re-raised by the stage that needs the answer
                self._prefetch_error = err

        self._prefetch = threading.Thread(target=run, name="vega-remote-prefetch", daemon=True)
        self._prefetch.start()

    def remote_lookup(self, keys: list[str]) -> Fetched | None:
        """What the shared store holds for ``keys`` (verified), or None without a usable remote."""
        from vega_dag.store.remote import Fetched

        if self._prefetch is not None:
            self._prefetch.join()
            self._prefetch = None
            if self._prefetch_error is not None:
                raise self._prefetch_error
            early = self._prefetched
            if early is not None and self.tree_key in early.misses:
                self.why(
                    f"the tree's pack: {early.misses.pop(self.tree_key)}; looked up per module"
                )
        found, rest = Fetched(), []
        early = self._prefetched
        for key in keys:
            if early is not None and key in early.hits:
                found.hits[key] = early.hits[key]
            elif early is not None and key in early.misses:
                found.misses[key] = early.misses[key]
            else:
                rest.append(key)
        remote = self.remote if rest else None
        if rest and remote is None:
            return found if early is not None else None
        if remote is not None:
            live = remote.lookup(rest)
            found.hits.update(live.hits)
            found.misses.update(live.misses)
        return found

    def remote_down(self) -> None:
        """Warn once that the remote could not be reached (the build goes on locally)."""
        if self._remote is not None and self._remote.down is not None:
            line = f"{self._remote.down}; building locally"
            if line not in self.warnings:
                self.warnings.append(line)

    def present(self, digest: str) -> bool:
        """Whether the store holds ``digest`` (read back and checked, with --verify)."""
        return self.store.verified(digest) if self.verify else self.store.has(digest)

    def why(self, text: str) -> None:
        """One ``--explain`` line (dropped without ``--explain``)."""
        if self.explain:
            self.explained.append(text)


def short(digest: str) -> str:
    """A digest as ``--explain`` shows it."""
    return digest.removeprefix(_core.DIGEST_PREFIX)[:12]
