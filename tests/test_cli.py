"""The command line's own surface: --version, --help, and `hash`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from vega_dag import __version__, _core
from vega_dag.cli import main


def test_version_and_help():
    runner = CliRunner()
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "hash" in result.output


def test_console_script_is_installed():
    out = subprocess.run(["vega-dag", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"vega-dag, version {__version__}"


@pytest.mark.parametrize(
    "args", [["--version"], ["-V"], ["--version", "build"], ["-V", "--help"]], ids=" ".join
)
def test_the_version_fast_path_says_what_click_says(args: list[str]) -> None:
    """`vega-dag --version` answers without importing click: same text, same status."""
    fast = subprocess.run(
        [sys.executable, "-c", "from vega_dag.entry import main; main()", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    slow = CliRunner().invoke(main, args, prog_name="vega-dag")
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.exit_code, slow.output, "")


def test_version_imports_no_click() -> None:
    code = "import sys; sys.argv = ['vega-dag', '--version']; from vega_dag.entry import main; "
    code += "main(); print(sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'rich')"
    code += " or m == 'vega_dag._core'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "[]"


def _imported(cmd: list[str]) -> set[str]:
    """The modules ``cmd`` imports, from the interpreter's own import-time report."""
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    err = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stderr
    names = {
        line.rsplit("|", 1)[1].strip() for line in err.splitlines() if line.startswith("import")
    }
    return names - {"package"}  # the report's header line


def test_the_installed_command_imports_only_vega_dag_beyond_the_interpreter() -> None:
    """`vega-dag --version` costs the interpreter and vega_dag's own three modules.

    The launcher is the project's (launcher/scripts/vega-dag), not the one pip
    writes for an entry point, which imports ``re`` first. The interpreter's own
    start-up (its site hooks, a sandbox .pth) is subtracted.
    """
    command = shutil.which("vega-dag", path=str(Path(sys.executable).parent)) or "vega-dag"
    extra = _imported([command, "--version"]) - _imported([sys.executable, "-c", "pass"])
    assert extra == {"vega_dag", "vega_dag._version", "vega_dag.entry"}, sorted(extra)


def test_the_version_without_the_extension_is_the_extensions_and_cargos() -> None:
    """vega_dag._version is a copy (for start-up): Cargo.toml's version is the source."""
    import tomllib

    from vega_dag._version import __version__ as copy

    cargo = Path(__file__).resolve().parent.parent / "Cargo.toml"
    assert copy == _core.__version__ == tomllib.loads(cargo.read_text())["package"]["version"]


def test_hash_prints_digests_in_order(tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    listing = tmp_path / "list"
    listing.write_text(f"{b}\n")
    result = CliRunner().invoke(main, ["hash", str(a), "--from-file", str(listing)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"{_core.hash_bytes(b'a')}  {a}",
        f"{_core.hash_bytes(b'b')}  {b}",
    ]


def test_hash_missing_file_is_a_clear_error(tmp_path: Path):
    result = CliRunner().invoke(main, ["hash", str(tmp_path / "nope.py")])
    assert result.exit_code != 0
    assert "nope.py" in result.output


def _entry(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from vega_dag.entry import main; main()", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )


#: Projects for the status fast path: name -> (file, text).
STATUS_PROJECTS = {
    "proj": ("pyproject.toml", ""),
    "bad": ("pyproject.toml", "[tool.vega]\nbogus = 1\n"),
    "shop": ("pyproject.toml", (Path(__file__).parent.parent / "examples/shop-api/pyproject.toml")
             .read_text()),
    "store": ("vega.toml", 'store = "build/vega"\n[rollout]\nregions = 3\n'),
    "wrong-type": ("pyproject.toml", '[tool.vega.rollout]\nregions = "three"\n'),
    "not-toml": ("vega.toml", "store = \n"),
    "optimize": ("vega.toml", "optimize = 3\n"),
    "outside": ("pyproject.toml", '[tool.vega]\nstore = "../elsewhere"\n'),
    "policy": ("vega.toml", '[rollout]\non_region_down = "maybe"\n'),
    "small-log": ("vega.toml", "[observe]\nlog_max_bytes = 100\n"),
    "rewrite": ("vega.toml", '[[rewrites]]\nsource = "/a"\ndestination = "/b"\n'),
    "bad-rewrite": ("vega.toml", '[[rewrites]]\nsource = "a"\ndestination = "/b"\n'),
    "bad-app": ("vega.toml", 'app = "not an app"\n'),
}  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [[], ["--json"], ["proj"], ["proj", "--json"], ["missing"], ["bad"], ["bad", "--json"]]
    + [[name] for name in STATUS_PROJECTS if name not in ("proj", "bad")]
    + [["shop", "--json"], ["wrong-type", "--json"]],
    ids=lambda a: " ".join(a) or "no-args",
)
def test_the_status_fast_path_says_what_click_says(tmp_path: Path, monkeypatch, args) -> None:
    """`vega-dag status` without click: same stdout, stderr and exit status as the command."""
    for name, (file, toml) in STATUS_PROJECTS.items():
        (tmp_path / name / "api").mkdir(parents=True)
        (tmp_path / name / file).write_text(toml)
    monkeypatch.chdir(tmp_path / "proj" if not args else tmp_path)
    fast = _entry("status", *args, cwd=Path.cwd())
    slow = CliRunner().invoke(main, ["status", *args], prog_name="vega-dag")
    assert fast.returncode == slow.exit_code
    assert (fast.stdout, fast.stderr) == (slow.stdout, slow.stderr)
    assert not (tmp_path / "proj" / ".vega" / "fleet" / "pointers.sqlite").exists()


def test_status_with_no_regions_imports_no_click(tmp_path: Path) -> None:
    (tmp_path / "api").mkdir()
    code = "import sys; sys.argv = ['vega-dag', 'status']; from vega_dag.entry import main; "
    code += "main(); print(sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'rich')))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines() == [
        "No regions (start them with `vega-dag regions up`, or deploy)",
        "[]",
    ]


@pytest.mark.parametrize("config", ["", "shop"])
def test_status_with_no_regions_imports_neither_msgspec_nor_pluggy(tmp_path: Path, config) -> None:
    """What `vega-dag status` costs without regions is the interpreter, nearly: few imports."""
    (tmp_path / "api").mkdir()
    if config:
        (tmp_path / "pyproject.toml").write_text(STATUS_PROJECTS[config][1])
    # What the interpreter imported before vega-dag ran (an environment's site
    # hooks may import pathlib and typing) is not status's cost.
    code = "import sys; before = set(sys.modules); sys.argv = ['vega-dag', 'status']; "
    code += "from vega_dag.entry import main; main(); "
    code += "print(sorted(m for m in sys.modules if m not in before and m.split('.')[0] in "
    code += "('click', 'rich', 'msgspec', 'pluggy', 'json', 'pathlib', 'typing', 'sqlite3')))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.splitlines()[-1] == "[]"


def test_status_after_a_deployment_is_the_full_answer(tmp_path: Path) -> None:
    """A pointer store (a past deploy, its regions down): not the fast path's to answer."""
    import sqlite3

    (tmp_path / "api").mkdir()
    fleet = tmp_path / ".vega" / "fleet"
    fleet.mkdir(parents=True)
    sqlite3.connect(fleet / "pointers.sqlite").close()
    from vega_dag.rollout.status import nothing_to_report

    assert not nothing_to_report(str(tmp_path))
    (fleet / "pointers.sqlite").unlink()
    assert nothing_to_report(str(tmp_path))
    (fleet / "regions").mkdir()
    (fleet / "regions" / "fra.json").write_text("{}")
    assert not nothing_to_report(str(tmp_path))
