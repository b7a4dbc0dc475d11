"""Runs one registry compile step inside the step's own virtualenv.

Standalone on purpose: the step's virtualenv has the step's package and
nothing of vega-dag, so this file imports the standard library only and is
run by path, ``<venv>/bin/python -I worker.py CALL OPTIONS_JSON``.

Protocol, over the process's original stdin/stdout: a frame is a 4-byte
big-endian length and that many bytes. At start the worker sends one reply
(ready, or the import error); then for each request, two frames (the
project-relative path, the source as UTF-8 text), it sends one reply. A reply
is ``+`` and the output as UTF-8, or ``!`` and a JSON error
``{"type", "message"}``. EOF on stdin ends it.

``worker.py --probe DIST [CALL]`` prints one JSON object instead: the
installed version of DIST and, with CALL, whether it imports.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import struct
import sys
from collections.abc import Callable
from typing import IO

_LEN = struct.Struct(">I")


def _resolve(call: str) -> Callable[..., object]:
    module_name, _, attrs = call.partition(":")
    obj = importlib.import_module(module_name)
    for attr in attrs.split("."):
        obj = getattr(obj, attr)
    if not callable(obj):
        raise TypeError(f"{call} is a {type(obj).__name__}, not a function")
    return obj


def _type_name(err: BaseException) -> str:
    cls = type(err)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def _describe_import_error(call: str, err: Exception) -> dict[str, str]:
    """{"kind", "type", "message"}: "missing" (no such module or function) or "import"."""
    module_name = call.partition(":")[0]
    parents = {".".join(module_name.split(".")[: i + 1]) for i in range(module_name.count(".") + 1)}
    missing = (isinstance(err, ModuleNotFoundError) and err.name in parents) or isinstance(
        err, (AttributeError, TypeError)
    )
    return {
        "kind": "missing" if missing else "import",
        "type": _type_name(err),
        "message": str(err),
    }


def probe(dist: str, call: str) -> None:
    import importlib.metadata  # only here: it costs a serving worker ~30 ms to start

    result: dict[str, object] = {"version": None, "error": None}
    with contextlib.suppress(importlib.metadata.PackageNotFoundError):
        result["version"] = importlib.metadata.version(dist)
    if call:
        try:
            _resolve(call)
        except Exception as err:
            result["error"] = _describe_import_error(call, err)
    print(json.dumps(result))


def _read_exact(stream: IO[bytes], size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError
    return data


def _read_frame(stream: IO[bytes]) -> bytes:
    (size,) = _LEN.unpack(_read_exact(stream, _LEN.size))
    return _read_exact(stream, size)


def _send(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_LEN.pack(len(payload)) + payload)
    stream.flush()


def _error(err: BaseException) -> bytes:
    return b"!" + json.dumps({"type": _type_name(err), "message": str(err)}).encode("utf-8")


def serve(call: str, options: dict[str, object]) -> int:
    # The protocol keeps private copies of stdin/stdout; fd 0 becomes
    # /dev/null and fd 1 stderr, so a step that prints or reads (even from C)
    # cannot corrupt it.
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    try:
        function = _resolve(call)
    except Exception as err:
        _send(replies, _error(err))
        return 1
    _send(replies, b"+ready")
    while True:
        try:
            path = _read_frame(requests).decode("utf-8")
            source = _read_frame(requests).decode("utf-8")
        except EOFError:
            return 0
        try:
            out = function(source, filename=path, **options)
            if not isinstance(out, str):
                raise TypeError(f"{call} returned {type(out).__name__}, not str")
            reply = b"+" + out.encode("utf-8")
        except Exception as err:
            reply = _error(err)
        _send(replies, reply)


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[1] == "--probe":
        probe(argv[2], argv[3] if len(argv) > 3 else "")
        return 0
    if len(argv) != 3:
        sys.stderr.write("usage: worker.py CALL OPTIONS_JSON | --probe DIST [CALL]\n")
        return 2
    return serve(argv[1], json.loads(argv[2]))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
