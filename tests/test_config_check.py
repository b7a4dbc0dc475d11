"""config_check (the configuration read without msgspec) never accepts what load_config refuses."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vega_dag import config_check
from vega_dag.config import ConfigError, VegaConfig, load_config

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "shop-api"


def _plain(t: msgspec.inspect.Type) -> object:
    """``t`` in config_check's notation."""
    i = msgspec.inspect
    simple = {i.StrType: "str", i.IntType: "int", i.FloatType: "float", i.BoolType: "bool"}
    if type(t) in simple:
        return simple[type(t)]
    if isinstance(t, i.AnyType) or (isinstance(t, i.CustomType) and t.cls is object):
        return "any"  # msgspec takes ``object`` as Any
    if isinstance(t, i.ListType):
        return ("list", _plain(t.item_type))
    if isinstance(t, i.DictType):
        assert isinstance(t.key_type, i.StrType)
        return ("dict", _plain(t.value_type))
    if isinstance(t, i.UnionType):
        rest = [u for u in t.types if not isinstance(u, i.NoneType)]
        if len(rest) < len(t.types):
            if len(rest) == 1:
                return ("opt", _plain(rest[0]))
            return ("opt", ("union", *(_plain(u) for u in rest)))
        return ("union", *(_plain(u) for u in rest))
    if isinstance(t, i.StructType):
        assert t.forbid_unknown_fields
        fields = {f.name: _plain(f.type) for f in t.fields}
        return ("struct", fields, tuple(f.name for f in t.fields if f.required))
    raise AssertionError(f"config_check has no notation for {t!r}")


def test_the_schema_is_the_structs() -> None:
    """A key added to (or changed in) VegaConfig must be added to config_check.SCHEMA."""
    assert _plain(msgspec.inspect.type_info(VegaConfig)) == config_check.SCHEMA


def _project(tmp_path: Path, raw: object, file: str = "vega.toml") -> Path:
    root = tmp_path / "p"
    root.mkdir(exist_ok=True)
    for name in ("vega.toml", "pyproject.toml"):
        (root / name).unlink(missing_ok=True)
    data = raw if file == "vega.toml" else {"tool": {"vega": raw}}
    (root / file).write_text(_toml(data))
    return root


def _toml(data: object, prefix: str = "") -> str:
    """A TOML document of ``data``: tables as [sections], everything else inline."""
    assert isinstance(data, dict)
    scalars = [f"{_key(k)} = {_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    out = "\n".join(scalars) + "\n"
    for k, v in data.items():
        if isinstance(v, dict):
            name = f"{prefix}{_key(k)}"
            out += f"\n[{name}]\n" + _toml(v, name + ".")
    return out


def _key(k: str) -> str:
    return msgspec.json.encode(k).decode()


def _value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, str):
        return msgspec.json.encode(v).decode()
    return repr(v)


def _agree(root: Path) -> str | None:
    """config_check's answer, checked against load_config's."""
    fast = config_check.store_dir(str(root))
    try:
        config = load_config(root)
    except ConfigError:
        assert fast is None, "config_check accepted what load_config refuses"
        return None
    if fast is not None:
        assert Path(fast).resolve() == config.store_dir
    return fast


@pytest.mark.parametrize("file", ["vega.toml", "pyproject.toml"])
def test_ordinary_configurations_are_answered_fast(tmp_path: Path, file: str) -> None:
    cases = [
        {},
        {"store": "build/vega", "rollout": {"regions": 3, "on_region_down": "skip"}},
        {"health": {"p99_ms": 250, "timeout_s": 2.5, "probes": {"/a/{id}": ["/a/1"]}}},
        {"observe": {"metrics": False, "log_max_bytes": 4096}, "daemon": False, "optimize": 2},
        {"toolchain": {"python": "3.11", "steps": {"x": "1"}}, "env": {"A": "b"}},
        {"per_route": {"/a": {"include": ["t/*"]}}, "lock": "requirements.lock"},
    ]
    for raw in cases:
        assert _agree(_project(tmp_path, raw, file)) is not None, raw


def test_the_example_is_answered_fast() -> None:
    assert config_check.store_dir(str(EXAMPLE)) == str(EXAMPLE / ".vega")


@pytest.mark.parametrize(
    "raw",
    [
        {"bogus": 1},
        {"rollout": {"regions": "3"}},
        {"rollout": {"regions": 3.0}},
        {"rollout": {"regions": True}},
        {"daemon": 1},
        {"optimize": 3},
        {"store": "../x"},
        {"store": "/abs"},
        {"source_roots": [".", "a/../../b"]},
        {"rollout": {"on_region_down": "maybe"}},
        {"observe": {"log_max_bytes": 10}},
        {"observe": {"log_backups": -1}},
        {"rewrites": [{"source": "a", "destination": "/b"}]},
        {"rewrites": [{"source": "/a"}]},
        {"compile_steps": [1]},
        {"compile_steps": [{"package": "x"}]},
        {"app": "no good"},
        {"app_mount": "/v1/"},
        {"backend": {"store": "ftp://x"}},
        {"health": {"probes": {"/a": "/a/1"}}},
        {"env": {"A": 1}},
        {"toolchain": {"steps": {"x": 1}}},
        {"import_check": {"enabled": "yes"}},
        {"per_route": {"/a": {"include": "x"}}},
    ],
    ids=str,
)
def test_what_load_config_refuses_is_left_to_it(tmp_path: Path, raw: dict) -> None:
    root = _project(tmp_path, raw)
    assert config_check.store_dir(str(root)) is None
    with pytest.raises(ConfigError):
        load_config(root)


def test_files_it_cannot_read_are_left_to_load_config(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    for text in (b"store = \n", b"\xff\xfe", b"[tool]\nvega = 1\n"):
        (root / "pyproject.toml").write_bytes(text)
        assert config_check.store_dir(str(root)) is None
        with pytest.raises(ConfigError):
            load_config(root)
    (root / "pyproject.toml").write_text("[tool]\nother = 1\n")  # no [tool.vega]: defaults
    assert _agree(root) == str(root / ".vega")


#: Values of every kind TOML has, and the shapes the schema uses, for the property below.
_scalars = st.one_of(
    st.text(alphabet="ab./-_{}", max_size=6),
    st.sampled_from(["fail", "skip", "/", "/v1", "..", "a:b", "x.y:z", "s3://b/p"]),
    st.integers(-5, 5000),
    st.floats(-1, 10, allow_nan=False),
    st.booleans(),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text("abc/{}", max_size=4), inner, max_size=3),
    ),
    max_leaves=6,
)


def _near(kind: object, wrong: bool) -> st.SearchStrategy[object]:
    """Values of ``kind`` (the schema's notation); with ``wrong``, now and then something else."""
    if kind == "str":
        valid: st.SearchStrategy[object] = st.sampled_from(
            ["api", ".", "build/x", "fail", "skip", "/", "/v1", "../x", "/abs", "a:b", "s3://b/p"]
        )
    elif kind in ("int", "float"):
        valid = st.integers(-2, 5000) | st.sampled_from([0, 1, 2, 3, 4096, 4095])
        if kind == "float":
            valid = valid | st.floats(0, 10)
    elif kind == "bool":
        valid = st.booleans()
    elif kind == "any":
        return _values
    else:
        assert isinstance(kind, tuple)
        tag = kind[0]
        if tag == "opt":
            return _near(kind[1], wrong)
        if tag == "union":
            return st.one_of(*(_near(k, wrong) for k in kind[1:]))
        if tag == "list":
            valid = st.lists(_near(kind[1], wrong), max_size=2)
        elif tag == "dict":
            keys = st.sampled_from(["/a", "/a/{id}", "x"])
            valid = st.dictionaries(keys, _near(kind[1], wrong), max_size=2)
        else:
            fields = {name: _near(t, wrong) for name, t in kind[1].items()}
            if wrong:
                fields["bogus"] = _scalars
            valid = st.fixed_dictionaries({}, optional=fields)
    if not wrong:
        return valid
    # Mostly valid, so that some whole configurations are; the rest is what must be refused.
    return st.one_of(*[valid] * 8, _scalars)


@pytest.mark.parametrize("wrong", [False, True], ids=["typed", "any"])
def test_it_never_accepts_what_load_config_refuses(tmp_path: Path, wrong: bool) -> None:
    """Configurations near valid ones: right types, values it refuses; or wrong types too."""
    accepted = []

    @settings(max_examples=200, deadline=None, database=None)
    @given(raw=_near(config_check.SCHEMA, wrong).filter(lambda r: isinstance(r, dict)))
    def agree(raw: dict) -> None:
        accepted.append(_agree(_project(tmp_path, raw)) is not None)

    agree()
    assert any(accepted) and not all(accepted)  # both answers were given and checked
