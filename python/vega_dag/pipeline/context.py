"""``BuildContext``: what every stage of one build is given, and what it adds to.

The settings (configuration, store, toolchain, flags) are fixed when the
build starts; the pending outputs (new objects, bundle assemblies, action
cache entries) and the ``--explain`` lines fill up as the stages run, and
are written only by the commit, once every stage has succeeded.
"""

from __future__ import annotations

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
    #: bundles, stored as their assemblies (store.assembly): digest → record
    new_assemblies: dict[str, bytes] = field(default_factory=dict)
    #: action key → output digest, recorded after the objects are durable
    new_actions: dict[str, str] = field(default_factory=dict)

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
        # Reads during the build (a verified bundle's members) see its outputs.
        store.pending = ctx.new_objects
        return ctx

    @property
    def root(self) -> Path:
        return self.config.root

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
