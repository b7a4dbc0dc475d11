"""The pointer store: which deployment each region serves (SQLite, WAL mode).

Promotion is a pointer write and rollback the same write in reverse, so this
small database is the whole truth of a rollout:

- ``deployments``: one row per deployment (``dpl_<base36>``) holding what a
  rollback must restore: the manifest digest (bundles, layer, route env) and
  the project configuration the deploy ran with; its status moves
  ``rolling`` → ``live`` | ``rolled-back`` | ``failed``.
- ``pointers``: region → deployment, with a generation bumped on every write.
  Writes are compare-and-swap (``WHERE region=? AND generation=?``), all moves
  of one step in one transaction. A weighted pointer (a step of a weighted
  wave) also names its ``baseline``: ``deployment`` answers ``weight`` percent
  of the region's requests, ``baseline`` the rest (both warm in the region).
  ``weight`` is 100 and ``baseline`` NULL otherwise; both columns were added
  later, and opening an older store adds them (``_migrate``).
- ``history``: append-only (triggers refuse UPDATE and DELETE): deployment,
  region, from, to, time, reason, actor, and the weight the move set.
- ``locks``: the deploy lock, one row naming its holder and pid. A second
  deploy waits for it, then fails naming the holder; a row whose process is
  gone (a deploy killed with -9) is taken over.

Each pointer write touches ``pointers.sqlite-moved`` once committed, which
wakes the regions watching it (``regions.wakeup``); they poll as well.

``PointerBackend`` is what the rollout needs of a pointer store; this SQLite
file is one implementation (the default), NATS JetStream
(``rollout.jetstream``, ``[tool.vega.backend] pointers``) the other.
``open_pointers`` picks one.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from vega_dag.config import ProjectConfig

from vega_dag.errors import VegaError
from vega_dag.processes import pid_alive
from vega_dag.regions.wakeup import signal_moved

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deployments (
    id TEXT PRIMARY KEY,
    manifest TEXT NOT NULL,
    project TEXT NOT NULL,
    config TEXT NOT NULL,
    env TEXT NOT NULL,
    created_at REAL NOT NULL,
    actor TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    signed_by TEXT NOT NULL DEFAULT '',
    signature TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS pointers (
    region TEXT PRIMARY KEY,
    deployment TEXT,
    generation INTEGER NOT NULL,
    updated_at REAL NOT NULL,
    weight INTEGER NOT NULL DEFAULT 100,
    baseline TEXT
);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment TEXT NOT NULL,
    region TEXT NOT NULL,
    from_dpl TEXT,
    to_dpl TEXT,
    at REAL NOT NULL,
    reason TEXT NOT NULL,
    actor TEXT NOT NULL,
    weight INTEGER NOT NULL DEFAULT 100
);
-- A rollback reads one deployment's moves: without it, a scan of every move ever.
CREATE INDEX IF NOT EXISTS history_by_deployment ON history (deployment, seq);
CREATE TRIGGER IF NOT EXISTS history_no_update BEFORE UPDATE ON history
    BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS history_no_delete BEFORE DELETE ON history
    BEGIN SELECT RAISE(ABORT, 'history is append-only'); END;
CREATE TABLE IF NOT EXISTS locks (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    acquired_at REAL NOT NULL
);
"""

#: Columns added after the first stores were written: table → (column, its definition).
_ADDED_COLUMNS = {
    "pointers": [
        ("weight", "INTEGER NOT NULL DEFAULT 100"),
        ("baseline", "TEXT"),
    ],
    "history": [("weight", "INTEGER NOT NULL DEFAULT 100")],
    # Signed deployments (rollout.signing): unsigned before they existed.
    "deployments": [
        ("signed_by", "TEXT NOT NULL DEFAULT ''"),
        ("signature", "TEXT NOT NULL DEFAULT ''"),
    ],
}

_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


class PointerStoreError(VegaError):
    """Base class of pointer store errors."""


class UnknownDeploymentError(PointerStoreError, LookupError):
    def __init__(self, deployment: str, known: list[str]) -> None:
        hint = f" (recent: {', '.join(known)})" if known else " (there are no deployments yet)"
        super().__init__(f"unknown deployment {deployment!r}{hint}")
        self.deployment = deployment


class PointerConflictError(PointerStoreError):
    """A compare-and-swap write found a generation other than the one it read."""

    def __init__(self, region: str, expected: int, actual: int | None) -> None:
        super().__init__(
            f"region {region}: its pointer moved underneath this write "
            f"(expected generation {expected}, found {actual}); nothing was written"
        )
        self.region = region
        self.expected = expected
        self.actual = actual


class LockHeldError(PointerStoreError):
    def __init__(
        self, path: Path | str, holder: str, pid: int, since: float, waited: float
    ) -> None:
        age = time.time() - since
        super().__init__(
            f"{path}: the pointer store is held by another deploy ({holder}, pid {pid}, "
            f"for {age:.0f}s); waited {waited:.0f}s. Retry when it finishes."
        )
        self.holder = holder
        self.pid = pid


@dataclass(frozen=True)
class Deployment:
    id: str
    manifest: str
    project: str
    config: dict
    env: dict[str, str]
    created_at: float
    actor: str
    status: str
    detail: str
    #: the id of the key that signed the record, and the signature (base64);
    #: empty for an unsigned deployment (vega_dag.rollout.signing)
    signed_by: str = ""
    signature: str = ""


#: (deployment id, manifest, config, env) -> (key id, signature): a deploy's signer.
Signer = Callable[[str, str, dict, dict], tuple[str, str]]


@dataclass(frozen=True)
class RegionPointer:
    region: str
    deployment: str | None
    generation: int
    updated_at: float
    #: percent of the region's requests ``deployment`` answers; ``baseline`` answers the rest
    weight: int = 100
    baseline: str | None = None

    @property
    def split(self) -> bool:
        """Whether two deployments share the region's requests."""
        return self.baseline is not None and 0 <= self.weight < 100


@dataclass(frozen=True)
class Move:
    """One pointer write: ``region`` from ``before`` (at ``generation``) to ``after``.

    With ``weight`` below 100 and a ``baseline``, ``after`` answers ``weight``
    percent of the region's requests and ``baseline`` the rest.
    """

    region: str
    generation: int
    before: str | None
    after: str | None
    weight: int = 100
    baseline: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    seq: int
    deployment: str
    region: str
    before: str | None
    after: str | None
    at: float
    reason: str
    actor: str
    #: the weight ``after`` was given (100: every request)
    weight: int = 100


_DEPLOYMENT_COLUMNS = (
    "id, manifest, project, config, env, created_at, actor, status, detail, signed_by, signature"
)


def new_deployment_id() -> str:
    # Time in the high digits keeps ids roughly sortable; the random low
    # digits keep two deploys in one millisecond apart.
    import secrets  # only a deploy needs it (hashlib and random: ~5 ms of a rollback)

    n = (int(time.time() * 1000) % 36**5) * 36**3 + secrets.randbelow(36**3)
    digits = []
    for _ in range(8):
        n, r = divmod(n, 36)
        digits.append(_B36[r])
    return "dpl_" + "".join(reversed(digits))


def default_actor() -> str:
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or str(os.getuid())
    return f"{user}@{socket.gethostname()}"


class PointerBackend(Protocol):
    """What a deploy, a rollback, ``status`` and ``history`` need of a pointer store.

    ``swap`` is a compare-and-swap on each move's generation: a move whose
    region's pointer is no longer at ``Move.generation`` fails with
    ``PointerConflictError`` and the store is left as before (SQLite: one
    transaction; JetStream: the moves already written are written back).
    """

    #: Where the pointers live, for messages (a path, or a URL without its credentials).
    where: str

    def close(self) -> None: ...

    def create_deployment(
        self,
        manifest: str,
        project: str,
        config: dict,
        env: dict[str, str],
        actor: str,
        signer: Signer | None = None,
    ) -> Deployment: ...

    def set_status(self, deployment: str, status: str, detail: str = "") -> None: ...

    def deployment(self, deployment: str) -> Deployment | None: ...

    def require(self, deployment: str) -> Deployment: ...

    def deployments(self, limit: int = 50) -> list[Deployment]: ...

    def pointers(self) -> dict[str, RegionPointer]: ...

    def pointer(self, region: str) -> RegionPointer: ...

    def swap(self, moves: list[Move], deployment: str, reason: str, actor: str) -> float: ...

    def history(self, deployment: str | None = None, limit: int = 1000) -> list[HistoryEntry]: ...

    def touched_by(self, deployment: str) -> dict[str, str | None]: ...

    def lock_holder(self) -> tuple[str, int, float, bool] | None: ...

    def deploy_lock(
        self, holder: str, timeout: float = 10.0
    ) -> contextlib.AbstractContextManager[bool]: ...

    def wait_moved(self, region: str, generation: int, timeout: float) -> RegionPointer | None:
        """``region``'s pointer once its generation is past ``generation`` (None: timed out)."""
        ...


def open_pointers(db_path: Path, url: str | None = None) -> PointerBackend:
    """The pointer store: JetStream at ``url`` (``nats://…``), else the SQLite file ``db_path``."""
    if url is None:
        return PointerStore(db_path)
    from vega_dag.rollout.jetstream import JetStreamPointers

    return JetStreamPointers(url)


def pointers_for(config: ProjectConfig, db_path: Path) -> PointerBackend | None:
    """The project's pointer store, or None where there is none yet (no SQLite file)."""
    from vega_dag.rollout.pointer_url import pointers_url

    url = pointers_url(config)
    if url is None and not db_path.exists():
        return None
    return open_pointers(db_path, url)


class PointerStore:
    """The SQLite pointer store (``.vega/fleet/pointers.sqlite``): a ``PointerBackend``."""

    def __init__(self, path: Path, *, readonly: bool = False) -> None:
        self.path = path
        self.where = str(path)
        if not readonly:
            path.parent.mkdir(parents=True, exist_ok=True)
        # Rollout nodes run in threads, one at a time against this store.
        self.db = sqlite3.connect(
            str(path), timeout=10.0, isolation_level=None, check_same_thread=False
        )
        self.db.execute("PRAGMA busy_timeout=10000")
        if not readonly:
            self.db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives any process crash (kill -9); only
            # power loss can drop the last commits, never corrupt the file.
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            self._migrate()
        #: what a read of deployments selects (a read-only look at a store from
        #: before signed deployments sees its records as unsigned)
        self._columns = _DEPLOYMENT_COLUMNS
        if readonly:
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(deployments)")}
            if columns and "signature" not in columns:
                self._columns = _DEPLOYMENT_COLUMNS.replace(
                    "signed_by, signature", "'' AS signed_by, '' AS signature"
                )

    def _migrate(self) -> None:
        """Add the columns a store written before they existed lacks (their defaults fill them).

        Looked at first without a transaction: an up-to-date store (every one
        after its first open) takes no write lock here.
        """
        if not self._missing_columns(self.db):
            return
        with self.transaction() as db:
            for table, name, definition in self._missing_columns(db):
                db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {definition}")

    @staticmethod
    def _missing_columns(db: sqlite3.Connection) -> list[tuple[str, str, str]]:
        missing = []
        for table, columns in _ADDED_COLUMNS.items():
            have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            missing += [(table, name, d) for name, d in columns if name not in have]
        return missing

    def close(self) -> None:
        self.db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE``: one writer at a time, readers never blocked (WAL)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- deployments ----------------------------------------------------------
    def create_deployment(
        self,
        manifest: str,
        project: str,
        config: dict,
        env: dict[str, str],
        actor: str,
        signer: Signer | None = None,
    ) -> Deployment:
        with self.transaction() as db:
            while True:
                dpl = new_deployment_id()
                if db.execute("SELECT 1 FROM deployments WHERE id=?", (dpl,)).fetchone() is None:
                    break
            # What is signed is what a region reads back: the stored JSON, parsed.
            config_json = json.dumps(config, sort_keys=True)
            env_json = json.dumps(env, sort_keys=True)
            signed_by, signature = (
                signer(dpl, manifest, json.loads(config_json), json.loads(env_json))
                if signer is not None
                else ("", "")
            )
            db.execute(
                "INSERT INTO deployments (id, manifest, project, config, env, created_at,"
                " actor, status, detail, signed_by, signature) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    dpl,
                    manifest,
                    project,
                    config_json,
                    env_json,
                    time.time(),
                    actor,
                    "rolling",
                    "",
                    signed_by,
                    signature,
                ),
            )
        found = self.deployment(dpl)
        assert found is not None
        return found

    def set_status(self, deployment: str, status: str, detail: str = "") -> None:
        self.db.execute(
            "UPDATE deployments SET status=?, detail=? WHERE id=?", (status, detail, deployment)
        )

    def _deployment(self, row: tuple | None) -> Deployment | None:
        if row is None:
            return None
        return Deployment(
            id=row[0],
            manifest=row[1],
            project=row[2],
            config=json.loads(row[3]),
            env=json.loads(row[4]),
            created_at=row[5],
            actor=row[6],
            status=row[7],
            detail=row[8],
            signed_by=row[9] if len(row) > 9 else "",
            signature=row[10] if len(row) > 10 else "",
        )

    def deployment(self, deployment: str) -> Deployment | None:
        return self._deployment(
            self.db.execute(
                f"SELECT {self._columns} FROM deployments WHERE id=?", (deployment,)
            ).fetchone()
        )

    def require(self, deployment: str) -> Deployment:
        found = self.deployment(deployment)
        if found is None:
            raise UnknownDeploymentError(deployment, [d.id for d in self.deployments(5)])
        return found

    def deployments(self, limit: int = 50) -> list[Deployment]:
        rows = self.db.execute(
            f"SELECT {self._columns} FROM deployments ORDER BY created_at DESC, rowid DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [d for row in rows if (d := self._deployment(row)) is not None]

    # -- pointers -------------------------------------------------------------
    _POINTER = "SELECT region, deployment, generation, updated_at, weight, baseline FROM pointers"

    def pointers(self) -> dict[str, RegionPointer]:
        rows = self.db.execute(self._POINTER)
        return {r[0]: RegionPointer(*r) for r in rows.fetchall()}

    def pointer(self, region: str) -> RegionPointer:
        row = self.db.execute(f"{self._POINTER} WHERE region=?", (region,)).fetchone()
        return RegionPointer(*row) if row else RegionPointer(region, None, 0, 0.0)

    def swap(self, moves: list[Move], deployment: str, reason: str, actor: str) -> float:
        """Apply every move or none (compare-and-swap on each generation); return the time."""
        for m in moves:
            if not isinstance(m.weight, int) or not 0 <= m.weight <= 100:
                raise PointerStoreError(
                    f"region {m.region}: weight {m.weight!r} is not a percentage from 0 to 100"
                )
        now = time.time()
        with self.transaction() as db:
            for m in moves:
                # A full weight needs no baseline, and no baseline means a full weight.
                split = m.weight < 100 and m.baseline is not None
                weight, baseline = (m.weight, m.baseline) if split else (100, None)
                if m.generation == 0:
                    cur = db.execute(
                        "INSERT OR IGNORE INTO pointers "
                        "(region, deployment, generation, updated_at, weight, baseline) "
                        "VALUES (?,?,1,?,?,?)",
                        (m.region, m.after, now, weight, baseline),
                    )
                else:
                    cur = db.execute(
                        "UPDATE pointers SET deployment=?, generation=generation+1, updated_at=?, "
                        "weight=?, baseline=? WHERE region=? AND generation=?",
                        (m.after, now, weight, baseline, m.region, m.generation),
                    )
                if cur.rowcount != 1:
                    row = db.execute(
                        "SELECT generation FROM pointers WHERE region=?", (m.region,)
                    ).fetchone()
                    raise PointerConflictError(m.region, m.generation, row[0] if row else None)
                db.execute(
                    "INSERT INTO history "
                    "(deployment, region, from_dpl, to_dpl, at, reason, actor, weight) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    (deployment, m.region, m.before, m.after, now, reason, actor, weight),
                )
        # After the commit, never before: a region woken now reads the new pointer.
        signal_moved(self.path)
        return now

    # -- history --------------------------------------------------------------
    def history(self, deployment: str | None = None, limit: int = 1000) -> list[HistoryEntry]:
        columns = "seq, deployment, region, from_dpl, to_dpl, at, reason, actor, weight"
        if deployment is None:
            rows = self.db.execute(
                f"SELECT {columns} FROM history ORDER BY seq DESC LIMIT ?", (limit,)
            ).fetchall()
        else:
            rows = self.db.execute(
                f"SELECT {columns} FROM history WHERE deployment=? ORDER BY seq DESC LIMIT ?",
                (deployment, limit),
            ).fetchall()
        return [HistoryEntry(*r) for r in rows]

    def touched_by(self, deployment: str) -> dict[str, str | None]:
        """Region → the deployment it served before ``deployment`` first reached it."""
        rows = self.db.execute(
            "SELECT region, from_dpl FROM history WHERE to_dpl=? AND deployment=? ORDER BY seq",
            (deployment, deployment),
        ).fetchall()
        before: dict[str, str | None] = {}
        for region, from_dpl in rows:
            before.setdefault(region, from_dpl)
        return before

    # -- the deploy lock ------------------------------------------------------
    def lock_holder(self) -> tuple[str, int, float, bool] | None:
        """(holder, pid, since, alive) of the deploy lock, or None when free."""
        row = self.db.execute(
            "SELECT holder, pid, host, acquired_at FROM locks WHERE name='deploy'"
        ).fetchone()
        if row is None:
            return None
        alive = row[2] != socket.gethostname() or pid_alive(row[1])
        return row[0], row[1], row[3], alive

    @contextlib.contextmanager
    def deploy_lock(self, holder: str, timeout: float = 10.0) -> Iterator[bool]:
        """Hold the deploy lock; yields whether a dead holder's lock was taken over."""
        started = time.monotonic()
        took_over = False
        while True:
            with self.transaction() as db:
                row = db.execute(
                    "SELECT holder, pid, host, acquired_at FROM locks WHERE name='deploy'"
                ).fetchone()
                free = row is None or (row[2] == socket.gethostname() and not pid_alive(row[1]))
                if free:
                    took_over = row is not None
                    db.execute(
                        "INSERT OR REPLACE INTO locks VALUES ('deploy',?,?,?,?)",
                        (holder, os.getpid(), socket.gethostname(), time.time()),
                    )
            if free:
                break
            waited = time.monotonic() - started
            if waited >= timeout:
                assert row is not None
                raise LockHeldError(self.path, row[0], row[1], row[3], waited)
            time.sleep(0.05)
        try:
            yield took_over
        finally:
            self.db.execute("DELETE FROM locks WHERE name='deploy' AND pid=?", (os.getpid(),))

    # -- watching -------------------------------------------------------------
    def wait_moved(self, region: str, generation: int, timeout: float) -> RegionPointer | None:
        """As a region waits: woken by the ``-moved`` file (``regions.wakeup``), polling too."""
        import select

        from vega_dag.regions.wakeup import open_wakeup

        deadline = time.monotonic() + timeout
        wakeup = open_wakeup(self.path)
        try:
            while True:
                found = self.pointer(region)
                if found.generation > generation:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                if wakeup is None:
                    time.sleep(min(left, 0.05))
                elif select.select([wakeup], [], [], min(left, 0.25))[0]:
                    wakeup.drain()
        finally:
            if wakeup is not None:
                wakeup.close()
