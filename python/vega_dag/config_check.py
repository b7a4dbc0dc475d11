"""``[tool.vega]`` checked without msgspec, for commands that only read it (``status``).

msgspec (through ``vega_dag.config``) is two thirds of `vega-dag status`'s
start-up. This module repeats what ``config.load_config`` accepts, from
``SCHEMA`` (the ``VegaConfig`` structs' fields as plain data;
tests/test_config_check.py derives it from the structs and fails when they
differ) and the checks ``load_config`` makes itself, and answers only
"certainly valid" (the store directory) or "not sure" (None). Anything it
does not repeat (compile steps, rewrites, a remote store, a one-app
project's ``app``) or finds wrong is "not sure", and the caller goes to
``load_config``, which reports what is wrong as it always does: the fast
path never prints an error of its own.

A check added to ``load_config`` must be repeated here, or its key made
"not sure" (``_DEFERRED``).
"""

from __future__ import annotations

import os

from vega_dag import _core

# A type is "str", "int", "float", "bool", "any", ("list", T), ("dict", T),
# ("union", T, …), ("opt", T) (T or None; TOML has no null, so T) or
# ("struct", {field: T}, (required fields)).
_BAKE = ("struct", {"bake_s": "float", "watch_s": "float", "min_requests": "int",
                    "too_few": "str", "max_bake_s": "float", "alpha": "float",
                    "latency_tolerance": "float", "latency_tolerance_ms": "float",
                    "error_tolerance": "float", "max_error_rate": "float"}, ())  # fmt: skip
_HEALTH = ("struct", {"p99_ms": "float", "min_samples": "int", "timeout_s": "float",
                      "expect_status": "int", "probes": ("dict", ("list", "str")),
                      "load_timeout_s": "float", "bake": _BAKE}, ())  # fmt: skip
_ROLLOUT = ("struct", {"canary": "str", "waves": ("list", ("list", "str")), "regions": "int",
                       "on_region_down": "str", "weights": ("list", "int"),
                       "sticky_header": ("opt", "str"), "sticky_cookie": ("opt", "str")},
            ())  # fmt: skip
_TOOLCHAIN = ("struct", {"python": ("opt", "str"), "implementation": ("opt", "str"),
                         "steps": ("dict", "str")}, ())  # fmt: skip
_STEP = ("struct", {"package": "str", "version": "str", "call": ("opt", "str"),
                    "options": ("dict", "any")}, ("package", "version"))  # fmt: skip
_ROUTE = ("struct", {"include": ("list", "str"), "exclude": ("list", "str")}, ())
_IMPORT_CHECK = ("struct", {"enabled": "bool", "timeout_s": "float"}, ())
_REWRITE = ("struct", {"source": "str", "destination": "str"}, ("source", "destination"))
_BACKEND = ("struct", {"store": ("opt", "str"),
                       "pointers": ("opt", ("union", "str", ("list", "str"))),
                       "regions": "str"}, ())  # fmt: skip
_OBSERVE = ("struct", {"metrics": "bool", "request_log": "bool", "log_max_bytes": "int",
                       "log_backups": "int"}, ())  # fmt: skip
SCHEMA: tuple = ("struct", {
    "routes": "str", "app": ("opt", "str"), "app_mount": "str",
    "source_roots": ("list", "str"), "lock": ("opt", "str"), "store": "str", "optimize": "int",
    "compile_steps": ("list", ("union", "str", _STEP)), "env": ("dict", "str"),
    "include": ("list", "str"), "exclude": ("list", "str"), "per_route": ("dict", _ROUTE),
    "import_check": _IMPORT_CHECK, "rewrites": ("list", _REWRITE), "toolchain": _TOOLCHAIN,
    "rollout": _ROLLOUT, "health": _HEALTH, "observe": _OBSERVE, "daemon": "bool",
    "backend": _BACKEND, "signing": ("struct", {"key": ("opt", "str")}, ()),
}, ())  # fmt: skip

#: Keys whose checks live in other modules: set to anything but their default, "not sure".
_DEFERRED: dict[str, object] = {"compile_steps": [], "rewrites": [], "app": None, "app_mount": "/"}


def _valid(value: object, kind: str | tuple) -> bool:
    """Whether msgspec.convert (strict) takes ``value`` as ``kind``: no coercion but int → float."""
    if kind == "str":
        return type(value) is str
    if kind == "int":
        return type(value) is int
    if kind == "float":
        return type(value) in (int, float)
    if kind == "bool":
        return type(value) is bool
    if kind == "any":
        return True
    tag = kind[0]
    if tag == "opt":
        return _valid(value, kind[1])
    if tag == "list":
        return type(value) is list and all(_valid(v, kind[1]) for v in value)
    if tag == "dict":
        return (
            type(value) is dict
            and all(type(k) is str for k in value)
            and all(_valid(v, kind[1]) for v in value.values())
        )
    if tag == "union":
        # Told apart by the value's own type, as msgspec does: str, else a table.
        return any(_valid(value, k) for k in kind[1:])
    if tag == "struct":
        fields, required = kind[1], kind[2]
        return (
            type(value) is dict
            and all(k in fields and _valid(v, fields[k]) for k, v in value.items())
            and all(k in value for k in required)
        )
    return False


def _read(path: str) -> dict | None:
    try:
        # Text mode, as Path.read_text: the same newlines reach the parser.
        with open(path, encoding="utf-8") as f:
            text = f.read()
        data = _core.parse_toml(text)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return data if type(data) is dict else None


def store_dir(root: str) -> str | None:
    """The store directory of the project at ``root`` if its configuration is certainly valid.

    The same files as ``load_config``, in the same order (``vega.toml``,
    then ``[tool.vega]`` of ``pyproject.toml``, else the defaults); None for
    anything ``load_config`` should see for itself.
    """
    raw: dict | None = {}
    vega_toml = os.path.join(root, "vega.toml")
    pyproject = os.path.join(root, "pyproject.toml")
    if os.path.isfile(vega_toml):
        raw = _read(vega_toml)
    elif os.path.isfile(pyproject):
        data = _read(pyproject)
        tool = data.get("tool", {}) if data is not None else None
        if type(tool) is not dict:
            return None
        raw = tool.get("vega", {})
    if raw is None or not _valid(raw, SCHEMA):
        return None
    if any(raw.get(key, default) != default for key, default in _DEFERRED.items()):
        return None
    if raw.get("backend", {}).get("store") is not None:
        return None
    if raw.get("backend", {}).get("pointers") is not None:
        return None  # a shared pointer store: status asks it
    if raw.get("backend", {}).get("regions", "local") != "local":
        return None  # region agents: status asks them
    # Checked by load_config alone: a bake's values, a weighted wave's steps.
    if "bake" in raw.get("health", {}) or raw.get("rollout", {}).get("weights", [100]) != [100]:
        return None
    if raw.get("optimize", 0) not in (0, 1, 2):
        return None
    if raw.get("rollout", {}).get("on_region_down", "fail") not in ("fail", "skip"):
        return None
    observe = raw.get("observe", {})
    if observe.get("log_max_bytes", 4096) < 4096 or observe.get("log_backups", 0) < 0:
        return None
    store = raw.get("store", ".vega")
    lock = raw.get("lock")
    for rel in [raw.get("routes", "api"), *raw.get("source_roots", ["."]), store, lock or "."]:
        if os.path.isabs(rel) or ".." in rel.split("/"):
            return None
    return os.path.join(root, store)
