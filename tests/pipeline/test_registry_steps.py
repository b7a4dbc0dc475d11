"""Compile steps from the package index: each version in its own cached virtualenv.

The PyPI tests install real python-minifier releases once per session (a
session-wide step cache); the others use an offline index of hand-made
wheels (``make_step_index``, tests/step_index.py).
"""

from __future__ import annotations

import io
import marshal
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from vega_dag.compile.bytecode import compile_source
from vega_dag.compile.steps import registry_steps, with_step_version
from vega_dag.compile.steps.errors import (
    StepCallError,
    StepSpecError,
    StepUnsupportedError,
    StepVersionNotFoundError,
)
from vega_dag.compile.steps.runner import close_workers, decode_source, encode_output
from vega_dag.compile.steps.venv import MARKER, ensure_venv, index_versions, venv_dir
from vega_dag.config import CompileStepTable, ConfigError, load_config
from vega_dag.manifest import decode_manifest
from vega_dag.pipeline import BuildError, build
from vega_dag.store.objects import ObjectStore


@pytest.fixture(autouse=True)
def _stop_workers():
    yield
    close_workers()


def pyproject(steps: str) -> str:
    return f'[project]\nname = "x"\n[tool.vega]\ncompile_steps = {steps}\n'


def run_route(root: Path, result, route: str = "/api") -> object:
    """Import the route's bundle (zipimport, no source) and call its handler."""
    data = ObjectStore(root / ".vega").get(result.routes[route])
    bundle = root.parent / f"bundle-{result.routes[route][7:19]}.zip"
    bundle.write_bytes(data)
    sys.path.insert(0, str(bundle))
    try:
        import api.index  # type: ignore[import-not-found]

        return api.index.handler(None)
    finally:
        sys.path.remove(str(bundle))
        for mod in [m for m in sys.modules if m.split(".")[0] in ("api", "lib")]:
            del sys.modules[mod]


def module_pyc(root: Path, result, member: str, route: str = "/api") -> bytes:
    data = ObjectStore(root / ".vega").get(result.routes[route])
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.read(member)


def toolchain_steps(root: Path, result) -> list[tuple[str, str]]:
    manifest = decode_manifest(ObjectStore(root / ".vega").get(result.manifest))
    return [tuple(s) for s in manifest.toolchain.steps]


# -- python-minifier from PyPI ----------------------------------------------

ORDERS = '''"""Orders, as the API serves them."""

import dataclasses

TIMEOUT = 60 * 60


@dataclasses.dataclass
class Order:
    id: int
    note: str = "none"


def check(value: int) -> None:
    if value < 0:
        raise ValueError()
    return None


def helper(x: int) -> int:
    result = x * 2
    if False:
        print("never")
    return result


def describe(order_id: int) -> dict:
    """Describe one order."""
    check(order_id)
    return {**dataclasses.asdict(Order(helper(order_id))), "timeout": TIMEOUT}
'''

ORDERS_ROUTE = """from lib import orders


def handler(request):
    return {
        "order": orders.describe(21),
        "doc": orders.__doc__,
        "describe_doc": orders.describe.__doc__,
        "annotations": sorted(orders.describe.__annotations__),
        "fields": [f.name for f in orders.dataclasses.fields(orders.Order)],
    }
"""

EXPECTED = {
    "order": {"id": 42, "note": "none", "timeout": 3600},
    "doc": "Orders, as the API serves them.",
    "describe_doc": "Describe one order.",
    "annotations": ["order_id", "return"],
    "fields": ["id", "note"],
}


@pytest.fixture
def minifier_cache(pypi_step_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("VEGA_DAG_CACHE_DIR", str(pypi_step_cache))
    return pypi_step_cache


def minified_project(tree, version: str) -> Path:
    return tree(
        {
            "pyproject.toml": pyproject(f'["python-minifier=={version}"]'),
            "lib/__init__.py": "",
            "lib/orders.py": ORDERS,
            "api/index.py": ORDERS_ROUTE,
        }
    )


def set_steps(root: Path, steps: str) -> None:
    (root / "pyproject.toml").write_text(pyproject(steps))


def test_minifier_step_keeps_the_route_working(tree, minifier_cache):
    root = minified_project(tree, "2.11.3")
    result = build(root)
    assert result.modules_compiled == 3
    assert run_route(root, result) == EXPECTED
    assert toolchain_steps(root, result) == [("python-minifier", "2.11.3")]
    # The module was minified: its code is not the original's.
    plain = compile_source(ORDERS.encode(), "lib/orders.py")
    assert module_pyc(root, result, "lib/orders.pyc") != plain


def test_minifier_versions_switch_and_switch_back(tree, minifier_cache):
    # 2.9.0 keeps `raise ValueError()`; 2.10.0 and later write `raise ValueError`.
    root = minified_project(tree, "2.11.3")
    first = build(root)
    set_steps(root, '["python-minifier==2.9.0"]')
    other = build(root, explain=True)
    assert other.modules_compiled == 3
    assert any("toolchain changed" in line for line in other.explain)
    assert toolchain_steps(root, other) == [("python-minifier", "2.9.0")]
    assert module_pyc(root, other, "lib/orders.pyc") != module_pyc(root, first, "lib/orders.pyc")
    assert other.routes != first.routes
    assert run_route(root, other) == EXPECTED

    set_steps(root, '["python-minifier==2.11.3"]')
    back = build(root)
    assert back.modules_compiled == 0
    assert back.bundles_built == 0
    assert back.manifest == first.manifest


def test_minifier_version_missing_from_pypi(minifier_cache):
    with pytest.raises(StepVersionNotFoundError) as info:
        ensure_venv("python-minifier", "2.99.0")
    assert "2.11.3" in info.value.available
    assert "compile step python-minifier==2.99.0: no such version" in str(info.value)


def test_minifier_version_unsupported_on_this_python(minifier_cache):
    # 2.6.0 says Requires-Python <3.11.
    with pytest.raises(StepUnsupportedError, match=r"python-minifier==2\.6\.0: unsupported"):
        ensure_venv("python-minifier", "2.6.0")


def test_minifier_versions_on_pypi(minifier_cache):
    versions = index_versions("python-minifier")
    assert {"2.9.0", "2.11.3", "3.4.0"} <= set(versions)
    assert "2.6.0" not in versions  # does not install on Python >= 3.11


# -- an offline index ---------------------------------------------------------

FLAGS_ROUTE = """from lib import flags


def handler(request):
    return {"mode": flags.MODE, "stepped": hasattr(flags, "VEGA_FAKE_STEP")}
"""


def fake_project(tree, steps: str, root: Path | None = None, **extra: str) -> Path:
    files = {
        "pyproject.toml": pyproject(steps),
        "lib/__init__.py": "",
        "lib/flags.py": "MODE = 'quiet'\n",
        "api/index.py": FLAGS_ROUTE,
    }
    return tree({**files, **extra}, root=root)


FAKE_TABLE = (
    '[{ package = "vega-fake-step", version = "1.0.0", call = "vega_fake_step:transform" }]'
)


def test_table_form_with_call_and_options(tree, make_step_index):
    make_step_index(["1.0.0"])
    steps = (
        '[{ package = "Vega_Fake.Step", version = "1.0.0", call = "vega_fake_step:shout",'
        ' options = { word = "LOUD" } }]'
    )
    root = fake_project(tree, steps)
    result = build(root)
    assert run_route(root, result) == {"mode": "LOUD", "stepped": False}
    [(name, version)] = toolchain_steps(root, result)
    assert name == "vega-fake-step"
    assert version.startswith("1.0.0+") and len(version) == len("1.0.0+") + 8

    # Other options are another identity, hence another cache key.
    set_steps(
        root,
        '[{ package = "vega-fake-step", version = "1.0.0", call = "vega_fake_step:shout",'
        ' options = { word = "HUSH" } }]',
    )
    again = build(root)
    assert again.modules_compiled == 3
    assert toolchain_steps(root, again)[0][1] != version
    assert run_route(root, again) == {"mode": "HUSH", "stepped": False}


def test_versions_before_drift_compile_the_same(tree, make_step_index):
    index = make_step_index(["1.0.0", "1.1.0", "2.0.0"], drift_from="2.0.0")
    assert not index.drifts("1.1.0") and index.drifts("2.0.0")
    root = fake_project(tree, FAKE_TABLE)
    first = build(root)
    assert run_route(root, first) == {"mode": "quiet", "stepped": False}

    root_cfg = load_config(root)
    set_steps(root, FAKE_TABLE.replace("1.0.0", "1.1.0"))
    same = build(root)
    assert same.modules_compiled == 3  # a new toolchain: nothing is reused blindly
    assert same.routes == first.routes  # a comment: the same bytecode, no bundle changes
    assert load_config(root) == with_step_version(root_cfg, "vega-fake-step", "1.1.0")

    set_steps(root, FAKE_TABLE.replace("1.0.0", "2.0.0"))
    drifted = build(root)
    assert drifted.routes != first.routes
    assert run_route(root, drifted) == {"mode": "quiet", "stepped": True}


def test_dist_without_adapter_needs_a_call(tree, make_step_index):
    make_step_index(["1.0.0"])
    root = fake_project(tree, '["vega-fake-step==1.0.0"]')
    with pytest.raises(ConfigError, match=r"compile_steps\[0\]: .*no adapter for vega-fake-step"):
        build(root)


def test_missing_version_lists_the_available_ones(tree, make_step_index):
    make_step_index(["1.0.0", "1.1.0"])
    root = fake_project(tree, FAKE_TABLE.replace("1.0.0", "1.2.0"))
    with pytest.raises(StepVersionNotFoundError) as info:
        build(root)
    assert info.value.available == ["1.0.0", "1.1.0"]
    assert "vega-fake-step==1.2.0: no such version on the package index" in str(info.value)
    assert "available: 1.0.0, 1.1.0" in str(info.value)
    assert not venv_dir("vega-fake-step", "1.2.0").exists()


def test_version_whose_requires_python_excludes_this_one(tree, make_step_index):
    make_step_index(["1.0.0"], unsupported={"0.9.0": "<3.8"})
    root = fake_project(tree, FAKE_TABLE.replace("1.0.0", "0.9.0"))
    with pytest.raises(
        StepUnsupportedError, match=r"0\.9\.0: unsupported .* requires Python <3\.8"
    ):
        build(root)


def test_version_that_does_not_import_is_unsupported(tree, make_step_index):
    make_step_index(["1.0.0", "1.1.0"], broken=["1.1.0"])
    root = fake_project(tree, FAKE_TABLE.replace("1.0.0", "1.1.0"))
    with pytest.raises(StepUnsupportedError, match=r"ImportError: vega-fake-step 1\.1\.0 needs"):
        build(root)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("vega_fake_step.nope:transform", "No module named 'vega_fake_step.nope'"),
        ("vega_fake_step:nope", "has no attribute 'nope'"),
        ("vega_fake_step:VERSION", "not a function"),
    ],
)
def test_call_that_does_not_import(tree, make_step_index, call, message):
    make_step_index(["1.0.0"])
    root = fake_project(tree, FAKE_TABLE.replace("vega_fake_step:transform", call))
    with pytest.raises(StepCallError, match=f"call '{call}' does not import: .*{message}"):
        build(root)


def test_step_that_raises_names_the_file_and_exception(tree, make_step_index):
    make_step_index(["1.0.0"])
    root = fake_project(tree, FAKE_TABLE, **{"lib/bad.py": "X = 'VEGA_FAKE_RAISE'\n"})
    with pytest.raises(BuildError) as info:
        build(root)
    [problem] = info.value.problems
    assert problem.startswith("lib/bad.py: compile step vega-fake-step 1.0.0+")
    assert problem.endswith("failed: ValueError: refused lib/bad.py")


def test_worker_that_dies_is_an_error_not_a_hang(tree, make_step_index):
    make_step_index(["1.0.0"])
    root = fake_project(tree, FAKE_TABLE, **{"lib/crash.py": "X = 'VEGA_FAKE_CRASH'\n"})
    with pytest.raises(BuildError) as info:
        build(root)
    [problem] = info.value.problems
    assert problem.startswith("lib/crash.py: compile step vega-fake-step")
    assert "worker process died (exit status 3) while transforming lib/crash.py" in problem
    # The next module gets a new worker; fixed, the build succeeds.
    (root / "lib/crash.py").write_text("X = 1\n")
    assert run_route(root, build(root)) == {"mode": "quiet", "stepped": False}


def test_step_that_prints_does_not_break_the_protocol(tree, make_step_index):
    make_step_index(["1.0.0"])
    root = fake_project(tree, FAKE_TABLE, **{"lib/noisy.py": "X = 'VEGA_FAKE_PRINT'\n"})
    assert run_route(root, build(root)) == {"mode": "quiet", "stepped": False}


def test_coding_cookie_survives_a_step(tree, make_step_index):
    make_step_index(["1.0.0"])
    root = fake_project(tree, FAKE_TABLE)
    (root / "lib/flags.py").write_bytes(
        "# -*- coding: latin-1 -*-\nMODE = 'café'\n".encode("latin-1")
    )
    assert run_route(root, build(root)) == {"mode": "café", "stepped": False}


def test_encoding_helpers():
    assert decode_source(b"\xef\xbb\xbfX = '\xc3\xa9'\n") == "X = 'é'\n"
    assert decode_source("# coding: latin-1\nX = 'é'\n".encode("latin-1")) == (
        "# coding: latin-1\nX = 'é'\n"
    )
    assert encode_output("X = 'é'\n") == "X = 'é'\n".encode()
    assert encode_output("# coding: latin-1\nX = 'é'\n") == "# coding: latin-1\nX = 'é'\n".encode(
        "latin-1"
    )


def test_forked_compile_workers_start_their_own_step_workers(tree, make_step_index, tmp_path):
    make_step_index(["1.0.0", "2.0.0"], drift_from="2.0.0")
    steps = FAKE_TABLE.replace("1.0.0", "2.0.0")
    # An in-process build first: this process then has a worker, which the
    # forked pool workers inherit and must not use.
    small = fake_project(tree, steps)
    assert run_route(small, build(small)) == {"mode": "quiet", "stepped": True}
    many = {f"lib/m{i:03}.py": f"VALUE = {i}\n" for i in range(60)}
    pooled = fake_project(tree, steps, **many)  # same root: now 60 more modules
    result = build(pooled, workers=2)
    assert result.modules_compiled == 60
    serial_root = fake_project(tree, steps, root=tmp_path / "serial", **many)
    serial = build(serial_root, workers=1)
    assert serial.manifest == result.manifest
    code = marshal.loads(module_pyc(pooled, result, "lib/flags.pyc")[16:])
    assert "VEGA_FAKE_STEP" in code.co_names


# -- the virtualenv cache -----------------------------------------------------


def test_second_build_reuses_the_virtualenv(tree, make_step_index, tmp_path, capsys):
    make_step_index(["1.0.0"])
    first = fake_project(tree, FAKE_TABLE)
    build(first)
    assert "Installing compile step vega-fake-step==1.0.0" in capsys.readouterr().err
    marker = venv_dir("vega-fake-step", "1.0.0") / MARKER
    stamp = marker.stat().st_mtime_ns
    second = fake_project(tree, FAKE_TABLE, root=tmp_path / "other")
    result = build(second)
    assert result.modules_compiled == 3
    assert capsys.readouterr().err == ""
    assert marker.stat().st_mtime_ns == stamp


def test_half_made_virtualenv_is_made_again(make_step_index):
    make_step_index(["1.0.0"])
    path = venv_dir("vega-fake-step", "1.0.0")
    (path / "bin").mkdir(parents=True)
    (path / "leftover").write_text("an interrupted install")
    venv = ensure_venv("vega-fake-step", "1.0.0", on_install=lambda line: None)
    assert venv.installed == "1.0.0"
    assert (path / MARKER).is_file()
    assert not (path / "leftover").exists()


def test_two_processes_install_the_same_step_once(make_step_index):
    make_step_index(["1.0.0"])
    code = (
        "from vega_dag.compile.steps.venv import ensure_venv\n"
        "print(ensure_venv('vega-fake-step', '1.0.0').path)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert outs[0][0] == outs[1][0] == f"{venv_dir('vega-fake-step', '1.0.0')}\n"
    assert sum(err.count("Installing compile step") for _, err in outs) == 1


def test_venv_per_version(make_step_index):
    make_step_index(["1.0.0", "1.1.0"])
    a = ensure_venv("vega-fake-step", "1.0.0", on_install=lambda line: None)
    b = ensure_venv("vega-fake-step", "1.1.0", on_install=lambda line: None)
    assert a.path != b.path
    assert (a.installed, b.installed) == ("1.0.0", "1.1.0")
    assert Path(a.path).name.startswith("vega-fake-step-1.0.0-cp")
    shutil.rmtree(b.path)  # gone entirely: installed again
    assert ensure_venv("vega-fake-step", "1.1.0", on_install=lambda line: None).installed == "1.1.0"


# -- configuration --------------------------------------------------------------


def test_registry_steps_and_with_step_version(tree):
    root = tree(
        {
            "pyproject.toml": pyproject(
                '["drop-marked", "Python_Minifier==2.11.3",'
                ' { package = "vega-fake-step", version = "1.0.0", call = "vega_fake_step:shout" }]'
            )
        }
    )
    config = load_config(root)
    steps = registry_steps(config)
    assert [(s.dist, s.version, s.custom) for s in steps] == [
        ("python-minifier", "2.11.3", False),
        ("vega-fake-step", "1.0.0", True),
    ]
    assert steps[0].options == {
        "remove_annotations": False,
        "rename_globals": False,
        "remove_literal_statements": False,
    }
    assert steps[0].identity("2.11.3") == ("python-minifier", "2.11.3")

    swapped = with_step_version(config, "python-minifier", "3.4.0")
    assert swapped.vega.compile_steps[:2] == ["drop-marked", "Python_Minifier==3.4.0"]
    assert swapped.vega.compile_steps[2] == config.vega.compile_steps[2]
    table = with_step_version(config, "VEGA_FAKE_STEP", "2.0.0").vega.compile_steps[2]
    assert table == CompileStepTable(
        package="vega-fake-step", version="2.0.0", call="vega_fake_step:shout"
    )
    assert config.vega.compile_steps[1] == "Python_Minifier==2.11.3"  # unchanged

    with pytest.raises(ConfigError, match="no registry compile step 'drop-marked'"):
        with_step_version(config, "drop-marked", "2")
    with pytest.raises(StepSpecError, match="not an exact version"):
        with_step_version(config, "python-minifier", "3.*")


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ('["python-minifier>=2.11"]', r"compile_steps\[0\]: .*pin one exact version"),
        ('["python-minifier==2.*"]', r"compile_steps\[0\]: .*not an exact version"),
        (
            '["x", { package = "python-minifier", version = "2.11.3", cal = "m:f" }]',
            r"unknown field `cal` - at `\$.compile_steps\[1\]`",
        ),
        ('[{ package = "python-minifier" }]', r"missing required field `version`"),
        (
            '[{ package = "p", version = "1.0", call = "not a call" }]',
            r"compile_steps\[0\]: .*call 'not a call' is not of the form 'module:function'",
        ),
    ],
)
def test_bad_entries_name_the_file_and_key(tree, steps, message):
    root = tree({"pyproject.toml": pyproject(steps)})
    with pytest.raises(ConfigError, match=message) as info:
        load_config(root)
    assert str(info.value).startswith(f"{root / 'pyproject.toml'}: [tool.vega]")
