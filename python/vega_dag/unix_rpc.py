"""Unix sockets: where they live, and one JSON request, one JSON reply over one.

The build daemon's client and the regions' requests to the host loader both
speak it: the request is one line, the writer then half-closes; the reply is
everything the server writes before closing. Light on imports: the
``vega-dag build`` fast path runs it before anything else is imported.
"""

from __future__ import annotations

import json
import os

# The C modules the standard library's socket and hashlib wrap: socket.py
# also imports selectors, array and math and builds its IntEnums, hashlib
# loads OpenSSL, a few ms of the fast path between them; same calls, same
# errors (OSError and its subclasses), same digest.
try:
    import _socket as socket
except ImportError:  # pragma: no cover - an interpreter without it
    import socket  # type: ignore[no-redef]
try:
    from _blake2 import blake2b
except ImportError:  # pragma: no cover
    from hashlib import blake2b

#: typing.TYPE_CHECKING without importing typing (a few ms of the fast path)
TYPE_CHECKING = False

if TYPE_CHECKING:
    from pathlib import Path


def socket_dir_name(owner: str | os.PathLike[str], prefix: str = "") -> str:
    """``socket_dir`` as a string, with neither pathlib nor the extension loaded."""
    key = blake2b(os.path.realpath(owner).encode(), digest_size=6).hexdigest()
    base = os.path.join(os.environ.get("TMPDIR") or "/tmp", f"vega-{os.getuid()}")
    return os.path.join(base, f"{prefix}{key}")


def socket_dir(owner: Path, prefix: str = "") -> Path:
    """A short directory for the sockets of ``owner`` (a project, a fleet); not created here.

    Unix socket paths are limited to 107 bytes, so it lives under $TMPDIR (or
    /tmp), named by a digest of ``owner``'s absolute path (12 hex digits of
    BLAKE2b: the standard library's, so that a client computes it without
    loading the extension); whoever binds a socket there creates it, private
    (mode 700).
    """
    from pathlib import Path

    return Path(socket_dir_name(owner, prefix))


def call(
    path: str | os.PathLike[str],
    request: dict,
    timeout: float | None = None,
    lost: dict | None = None,
) -> dict | None:
    """The server's reply, or None if none answers at ``path`` (a stale socket is removed).

    ``lost`` is returned instead of None when the whole request was sent but no
    reply came back (the server died while it worked on it): a caller whose
    request is not safe to run twice tells that apart from "nobody answered".
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        return None
    sent = False
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:  # _socket's sockets are no context managers
            sock.settimeout(timeout)
            sock.connect(path)
            sock.sendall((json.dumps(request) + "\n").encode())
            sock.shutdown(socket.SHUT_WR)
            sent = True
            chunks = []
            while chunk := sock.recv(1 << 16):
                chunks.append(chunk)
        finally:
            sock.close()
    except ConnectionRefusedError:
        import contextlib  # not on the fast path's way: only here

        with contextlib.suppress(OSError):  # its server died: the socket is stale
            os.unlink(path)
        return None
    except OSError:
        return lost if sent else None
    try:
        reply = json.loads(b"".join(chunks))
    except ValueError:
        return lost if sent else None
    return reply if isinstance(reply, dict) else None
