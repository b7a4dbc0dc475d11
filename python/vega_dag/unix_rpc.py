"""One JSON request, one JSON reply, over a unix socket (stdlib only).

The build daemon's client and the regions' requests to the host loader both
speak it: the request is one line, the writer then half-closes; the reply is
everything the server writes before closing.
"""

from __future__ import annotations

import contextlib
import json
import socket
from pathlib import Path


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
