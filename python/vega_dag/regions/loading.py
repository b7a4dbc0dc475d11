"""What a loading worker is doing, and what to say when it does not load.

A deployment's worker (a template of the host's loader, or a region's zygote
child) imports every route and warms it before it serves. A route can stop
that for good: raise, call ``os._exit``, crash the interpreter, or never
return. The first is caught in the worker itself; for the others only another
process can tell, so the worker leaves the trail they need, under one base
path ``B``:

- ``B.loading``: one line, rewritten before each route: what it is doing
  (``importing``/``warming``), the route's pattern and its file;
- ``B.trace``: Python's ``faulthandler`` writes the stacks there on a fatal
  signal (SIGSEGV, SIGABRT, …) and when sent ``SIGUSR1``, which is how the
  process that gives up on a hung load asks where it hangs;
- ``B.exit``: the exit status, written by the worker's parent (only a parent
  can read it) when the worker dies while ``B.loading`` is there.

``describe_failure`` turns them into one message naming the route, its file and
what happened. A worker that loads removes its trail.
"""

from __future__ import annotations

import contextlib
import faulthandler
import importlib
import os
import re
import signal
import time
import traceback
from pathlib import Path
from types import TracebackType

#: How many lines of a traceback a failure quotes (the innermost ones).
TRACE_LINES = 6
#: Frames of these say nothing about the route: vega-dag's own (the loader,
#: the runtime) and the import machinery's.
_NOT_QUOTED = (
    str(Path(__file__).resolve().parent.parent),
    str(Path(importlib.__file__).resolve().parent),
    "<frozen ",
)
#: How long a hung worker is given to write its stacks after SIGUSR1.
DUMP_GRACE = 0.5
#: How long a dead worker's parent is given to write its exit status.
EXIT_GRACE = 1.0


def trail(base: str) -> tuple[Path, Path, Path]:
    """The (loading, trace, exit) files of the worker whose trail is at ``base``."""
    return Path(f"{base}.loading"), Path(f"{base}.trace"), Path(f"{base}.exit")


def clear_trail(base: str) -> None:
    for path in trail(base):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


class LoadProgress:
    """The worker's side: the step being taken, and faulthandler's stacks, in its trail."""

    def __init__(self, base: str, files: dict[str, str] | None = None) -> None:
        self.base = base
        #: route pattern → its module's file
        self.files = files or {}
        clear_trail(base)
        loading, trace, _ = trail(base)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        self.step_fd = os.open(loading, flags, 0o644)
        self.trace_fd = os.open(trace, flags, 0o644)
        faulthandler.enable(file=self.trace_fd, all_threads=True)
        faulthandler.register(signal.SIGUSR1, file=self.trace_fd, all_threads=True)
        self.step("starting", "")

    def step(self, doing: str, pattern: str) -> None:
        line = f"{doing}\t{pattern}\t{self.files.get(pattern, '')}\n".encode()
        # pwrite + truncate: the file always holds one whole line.
        os.pwrite(self.step_fd, line, 0)
        os.ftruncate(self.step_fd, len(line))

    def done(self) -> None:
        """The load is over (either way): stop the handlers, remove the trail."""
        faulthandler.unregister(signal.SIGUSR1)
        faulthandler.disable()
        os.close(self.step_fd)
        os.close(self.trace_fd)
        clear_trail(self.base)


def exit_text(status: int) -> str:
    """A wait status in words: "exited with status 3", "was killed by SIGSEGV"."""
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exited with status {code}"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    return f"was killed by {name}"


def record_exit(base: str, status: int) -> None:
    """The parent's side: ``base``'s worker ended with ``status``; kept if it was loading."""
    loading, _, exit_path = trail(base)
    if loading.exists():
        exit_path.write_text(exit_text(status))


def frames_of(tb: TracebackType | None) -> list[str]:
    """The innermost frames of a traceback that are the deployment's, as traceback lines.

    The import machinery's and vega-dag's own frames say nothing about the
    route; what the route's code did does.
    """
    frames = [f for f in traceback.extract_tb(tb) if not f.filename.startswith(_NOT_QUOTED)]
    return [f'File "{f.filename}", line {f.lineno}, in {f.name}' for f in frames[-TRACE_LINES:]]


_FRAME = re.compile(r'File "(.*)", line (\d+) in (.*)')


def _dumped_frames(trace: Path) -> list[str]:
    """The frames of faulthandler's dump worth quoting, innermost last (as a traceback).

    The stack quoted is the first holding the deployment's own code (its
    files are named relative to the project, as compiled), else the first.
    """
    try:
        text = trace.read_text(errors="replace")
    except FileNotFoundError:
        return []
    stacks: list[list[tuple[str, str, str]]] = []
    for line in text.splitlines():
        if not line.startswith(" "):
            stacks.append([])  # "Thread 0x…", "Current thread 0x…", "Fatal Python error: …"
        elif (m := _FRAME.fullmatch(line.strip())) is not None and stacks:
            stacks[-1].append((m[1], m[2], m[3]))
    if not stacks:
        return []
    own = [s for s in stacks if any(not f[0].startswith(("/", "<")) for f in s)]
    stack = own[0] if own else stacks[0]
    frames = [f for f in stack if not f[0].startswith(_NOT_QUOTED)][:TRACE_LINES]
    return [f'File "{f}", line {n}, in {name}' for f, n, name in reversed(frames)]


def describe_failure(base: str, happened: str) -> str:
    """The message for a load that ended with ``happened`` ("did not load within 10 s", …)."""
    loading, trace, _ = trail(base)
    try:
        doing, pattern, file = loading.read_text().rstrip("\n").split("\t")
    except (FileNotFoundError, ValueError):
        doing, pattern, file = "", "", ""
    if pattern:
        where = f"route {pattern} ({file})" if file else f"route {pattern}"
        message = f"{where} {happened} while {doing} it"
    else:
        message = f"the deployment {happened} before importing any route"
    lines = _dumped_frames(trace)
    return message + "".join(f"\n    {line}" for line in lines)


def wait_exit_record(base: str, timeout: float = EXIT_GRACE) -> str | None:
    """What the parent recorded of a dead worker's exit, once it has (or None)."""
    _, _, exit_path = trail(base)
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(FileNotFoundError):
            text = exit_path.read_text()
            if text:
                return text
        if time.monotonic() > deadline:
            return None
        time.sleep(0.01)


def dump_and_kill(pid: int, base: str) -> None:
    """Ask a hung worker where it is (SIGUSR1: faulthandler), then kill it."""
    _, trace, _ = trail(base)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGUSR1)
        deadline = time.monotonic() + DUMP_GRACE
        size = -1
        while time.monotonic() < deadline:
            now = trace.stat().st_size if trace.exists() else 0
            if now and now == size:
                break  # written, and no longer growing
            size = now
            time.sleep(0.02)
        os.kill(pid, signal.SIGKILL)
