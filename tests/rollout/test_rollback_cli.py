"""``vega-dag rollback`` answered without click says what the click command says.

The console script (``vega_dag.entry``) runs a plain rollback itself; every
other spelling goes to click. Both print the same lines (timings aside) and
exit with the same status.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.rollout.helpers import cli_env, served, vega, vega_json


def entry(*args: str) -> subprocess.CompletedProcess[str]:
    """The console script's path: ``vega-dag ARGS``."""
    return subprocess.run(
        [sys.executable, "-c", "from vega_dag.entry import main; main()", *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )


def _shape(text: str) -> str | dict:
    """The output without its timings (and deployment ids, which differ by deploy)."""
    if text.startswith("{"):
        out = json.loads(text)
        out.pop("seconds", None)
        return out
    return re.sub(r"dpl_[0-9a-z]{8}", "dpl_X", re.sub(r"\d+(\.\d+)?(ms|s)\b", "T", text))


def test_the_fast_path_and_click_answer_alike(project: Path) -> None:
    first = vega_json("deploy", str(project))["deployment"]
    (project / "lib" / "version.py").write_text('VERSION = "v2"\n')
    second = vega_json("deploy", str(project))["deployment"]

    fast = entry("rollback", "--path", str(project))
    assert fast.returncode == 0, fast.stderr
    assert set(served(project).values()) == {first}
    third = vega_json("deploy", str(project))["deployment"]  # v2 again, a new deployment
    slow = vega("rollback", "--path", str(project))
    assert slow.returncode == 0, slow.stderr
    assert set(served(project).values()) == {first}
    assert "✓ Rolled back" in fast.stdout and "\033" not in fast.stdout  # not a terminal
    assert _shape(fast.stdout) == _shape(slow.stdout) and fast.stderr == slow.stderr == ""

    for args in (
        ["rollback", second, "--path", str(project)],  # nothing left to roll back
        ["rollback", third, f"--path={project}", "--json", "--lock-timeout", "5"],
        ["rollback", "dpl_nonesuch", "--path", str(project)],  # an error, exit 1
        ["rollback", "dpl_nonesuch", "--path", str(project), "--json"],
    ):
        a, b = entry(*args), vega(*args)
        assert (a.returncode, _shape(a.stdout), a.stderr) == (
            b.returncode,
            _shape(b.stdout),
            b.stderr,
        ), args
    assert entry("rollback", "dpl_nonesuch", "--path", str(project)).returncode == 1
    # Anything else is click's to answer, with its usage errors.
    for args, what in (
        (["rollback", "-q", "--path", str(project / "missing")], "does not exist"),
        (["rollback", "--path", str(project), "--lock-timeout", "-1"], "--lock-timeout"),
        (["rollback", "a", "b", "--path", str(project)], "unexpected extra argument"),
    ):
        a = entry(*args)
        assert a.returncode == 2 and "Usage: vega-dag rollback" in a.stderr, (args, a.stderr)
        assert what in a.stderr, a.stderr


# What the interpreter imported before vega-dag ran (a system interpreter's site
# hooks may import threading, for certifi's .pth) is not the rollback's cost.
IMPORTS = """
import json, sys
before = set(sys.modules)
sys.argv = ["vega-dag", "rollback", "--path", sys.argv[1]]
from vega_dag.entry import main
try:
    main()
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "loaded": sorted(m for m in ("asyncio", "pluggy", "threading",
      "vega_dag.rollout.jetstream", "vega_dag.plugins.manager")
      if m in sys.modules and m not in before)}))
"""


def test_the_fast_path_imports_neither_asyncio_nor_pluggy(tmp_path: Path) -> None:
    # No deployment yet: the command gets as far as the pointer store, then says so.
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\n')
    proc = subprocess.run(
        [sys.executable, "-c", IMPORTS, str(tmp_path)],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )
    assert "nothing to roll back" in proc.stderr, proc.stderr
    out = json.loads(proc.stdout.splitlines()[-1])
    # They were 69 of the 206 modules it imported; pluggy is needed only for a plugin.
    assert out == {"code": 1, "loaded": []}, out


def test_a_plugin_manager_made_in_the_process_still_answers(tmp_path: Path) -> None:
    from vega_dag.config import load_config
    from vega_dag.plugins.manager import get_plugin_manager
    from vega_dag.rollout.rollback import _region_target

    class Marker:
        pass

    class Plugin:
        from vega_dag.plugins.manager import hookimpl

        @hookimpl
        def vega_dag_region_target(self, config):
            return Marker()

    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\nversion = "1"\n')
    pm = get_plugin_manager()
    plugin = Plugin()
    pm.register(plugin, name="test-marker-target")
    try:
        assert isinstance(_region_target(load_config(tmp_path)), Marker)
    finally:
        pm.unregister(plugin)
