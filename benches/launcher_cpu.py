#!/usr/bin/env python3
"""CPU of `vega-dag --version` with the project's launcher and with pip's, interleaved.

    env -u PYTHONDONTWRITEBYTECODE python benches/launcher_cpu.py [ROUNDS]

Each round runs, in turn: ``python3 -c pass``, ``python3 -c "import re"``, the
installed ``vega-dag --version`` (launcher/scripts/vega-dag) and the same
command through the console script pip writes for a ``[project.scripts]``
entry point (its template, written to a temporary file), and records each
whole process's user + system CPU (``os.wait4``) and wall time. CPU is what
to read on a shared machine: a neighbour's load stretches wall time, not the
work a process does. Prints a Markdown table: min and median of each.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: pip's (distlib's) console-script template, as it writes one for vega_dag.entry:main.
PIP_LAUNCHER = """#!{python}
# -*- coding: utf-8 -*-
import re
import sys
from vega_dag.entry import main
if __name__ == '__main__':
    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])
    sys.exit(main())
"""


def measure(cmd: list[str]) -> tuple[float, float]:
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"{' '.join(cmd)} failed: wait status {status}")
    return usage.ru_utime + usage.ru_stime, time.perf_counter() - started


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    pip_script = Path(tempfile.mkdtemp(prefix="vega-launcher-")) / "vega-dag"
    pip_script.write_text(PIP_LAUNCHER.format(python=sys.executable))
    pip_script.chmod(0o755)
    ours = Path(sys.executable).parent / "vega-dag"
    commands = {
        "`python3 -c pass`": [sys.executable, "-c", "pass"],
        '`python3 -c "import re"`': [sys.executable, "-c", "import re"],
        "`vega-dag --version`, pip's launcher": [str(pip_script), "--version"],
        "`vega-dag --version`, the project's launcher": [str(ours), "--version"],
    }
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    wall: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, cmd in commands.items():
            used, took = measure(cmd)
            cpu[name].append(used)
            wall[name].append(took)
    print(f"load {os.getloadavg()[0]:.1f}, {rounds} rounds\n")
    print("| process | CPU min | CPU median | wall min | wall median |\n|---|---|---|---|---|")
    for name in commands:
        row = [min(cpu[name]), statistics.median(cpu[name])]
        row += [min(wall[name]), statistics.median(wall[name])]
        print(f"| {name} | " + " | ".join(f"{v * 1e3:.1f} ms" for v in row) + " |")


if __name__ == "__main__":
    main()
