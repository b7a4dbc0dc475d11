"""Unix sockets: where they live, and one JSON request, one JSON reply over one.

The build daemon's client and the regions' requests to the host loader both
speak it: the request is one line, the writer then half-closes; the reply is
everything the server writes before closing. Light on imports: the
``vega-dag build`` fast path runs it before anything else is imported.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path

from vega_dag import _core


def socket_dir(owner: Path, prefix: str = "") -> Path:
    """A short directory for the sockets of ``owner`` (a project, a fleet); not created here.

    Unix socket paths are limited to 107 bytes, so it lives under $TMPDIR (or
    /tmp), named by a digest of ``owner``'s absolute path; whoever binds a
    socket there creates it, private (mode 700).
    """
    key = _core.hash_bytes(str(owner.resolve()).encode()).removeprefix(_core.DIGEST_PREFIX)
    base = Path(os.environ.get("TMPDIR") or "/tmp") / f"vega-{os.getuid()}"
    return base / f"{prefix}{key[:12]}"


def call(path: Path, request: dict, timeout: float | None = None) -> dict | None:
    """The server's reply, or None if none answers at ``path`` (a stale socket is removed)."""
    if not path.exists():
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall((json.dumps(request) + "\n").encode())
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(1 << 16):
                chunks.append(chunk)
    except ConnectionRefusedError:
        with contextlib.suppress(OSError):  # its server died: the socket is stale
            path.unlink()
        return None
    except OSError:
        return None
    try:
        reply = json.loads(b"".join(chunks))
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None
