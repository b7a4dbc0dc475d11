"""The command line's own surface: --version, --help, and `hash`."""

from __future__ import annotations

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
    code += "main(); print(sorted(m for m in sys.modules if m.split('.')[0] in ('click', 'rich')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "[]"


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


@pytest.mark.parametrize(
    "args",
    [[], ["--json"], ["proj"], ["proj", "--json"], ["missing"], ["bad"], ["bad", "--json"]],
    ids=lambda a: " ".join(a) or "no-args",
)
def test_the_status_fast_path_says_what_click_says(tmp_path: Path, monkeypatch, args) -> None:
    """`vega-dag status` without click: same stdout, stderr and exit status as the command."""
    for name, toml in (("proj", ""), ("bad", "[tool.vega]\nbogus = 1\n")):
        (tmp_path / name / "api").mkdir(parents=True)
        (tmp_path / name / "pyproject.toml").write_text(toml)
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
