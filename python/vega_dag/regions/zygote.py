"""The region's zygote: forks workers that are warm from the start.

Starting a Python process and importing uvicorn costs ~0.3 s of CPU here; 24
regions each starting a worker per deploy would spend seconds on that alone.
The zygote imports the serving stack once, then forks one child per request
(one JSON line on stdin → ``{"pid": …}`` on stdout), so a worker only pays for
importing the deployment's own modules. It forks from a single-threaded,
loop-free process, which is what makes fork safe. When its region dies (stdin
closes) it exits, and its children follow (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import signal
import sys
from pathlib import Path

# The serving stack, imported once and shared by every fork.
import uvicorn
import uvicorn.config
import uvicorn.lifespan.off
import uvicorn.loops.asyncio
import uvicorn.protocols.http.h11_impl
import uvicorn.server  # noqa: F401

from vega_dag.regions import serving, worker  # noqa: F401
from vega_dag.regions.loading import record_exit

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux: the region kills its process group
        pass


def _child(request: dict, log_fd: int) -> None:
    _die_with_parent()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    worker.serve(
        Path(request["store"]),
        Path(request["fleet"]),
        request["manifest"],
        request["uds"],
        request["err"],
    )


#: pid → the trail base (``regions.loading``) of each child not yet reaped
_children: dict[int, str] = {}


def _reap(signum: int, frame: object) -> None:
    """Reap exited children; one that died loading leaves its exit status in its trail.

    The region watches its worker by pid, but only a parent can read how a
    process ended (``os._exit(3)`` at import, a signal), and that is what the
    region's message must say.
    """
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        base = _children.pop(pid, None)
        if base is not None:
            with contextlib.suppress(OSError):
                record_exit(base, status)


def main() -> None:
    signal.signal(signal.SIGCHLD, _reap)
    _die_with_parent()
    # What is imported now is shared by every fork: keep the children's
    # collector off these objects, so it does not copy their pages.
    gc.collect()
    gc.freeze()
    log_fd = os.dup(2)
    for line in sys.stdin:
        request = json.loads(line)
        # Held until the child is known: one that dies at once is still recorded.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        pid = os.fork()
        if pid == 0:
            try:
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
                _child(request, log_fd)
            finally:
                os._exit(1)
        _children[pid] = request["err"]
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        sys.stdout.write(json.dumps({"pid": pid}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
