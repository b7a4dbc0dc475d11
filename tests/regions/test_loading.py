"""A loading worker's trail, and the message made of it (regions/loading.py)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap

from vega_dag.regions.loading import (
    LoadProgress,
    describe_failure,
    dump_and_kill,
    exit_text,
    record_exit,
    trail,
    wait_exit_record,
)


def status_of(code: str) -> int:
    proc = subprocess.Popen([sys.executable, "-c", code])
    return os.waitpid(proc.pid, 0)[1]


def test_exit_statuses_in_words():
    assert exit_text(status_of("import os; os._exit(3)")) == "exited with status 3"
    assert exit_text(status_of("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")) == (
        "was killed by SIGSEGV"
    )


def test_the_parent_records_an_exit_only_while_its_child_was_loading(tmp_path):
    base = str(tmp_path / "w")
    record_exit(base, status_of("import os; os._exit(3)"))
    assert not trail(base)[2].exists()  # not loading: nothing to say
    trail(base)[0].write_text("importing\t/api/x\tapi/x.py\n")
    record_exit(base, status_of("import os; os._exit(3)"))
    assert wait_exit_record(base) == "exited with status 3"
    assert describe_failure(base, "did not load: the worker exited with status 3") == (
        "route /api/x (api/x.py) did not load: the worker exited with status 3 while importing it"
    )


HUNG = textwrap.dedent(
    """
    import sys, time
    from vega_dag.regions.loading import LoadProgress

    progress = LoadProgress(sys.argv[1], {"/api/slow": "api/slow.py"})
    progress.step("importing", "/api/slow")
    # "ready" from inside the hung code: the dump must not race its start.
    code = compile("def wait():\\n    print('ready', flush=True)\\n    while True:\\n"
                   "        time.sleep(0.01)\\n\\n\\nwait()\\n", "api/slow.py", "exec")
    exec(code, {"time": time})
    """
)


def test_a_hung_worker_is_asked_where_it_hangs_then_killed(tmp_path):
    base = str(tmp_path / "w")
    proc = subprocess.Popen(
        [sys.executable, "-c", HUNG, base],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "ready\n"
    dump_and_kill(proc.pid, base)
    assert proc.wait() == -signal.SIGKILL
    message = describe_failure(base, "did not load within 2 s")
    # The innermost frame is in wait(): the print's line or the loop's,
    # depending on when the signal lands.
    head, _, innermost = message.rpartition("\n")
    assert head == (
        "route /api/slow (api/slow.py) did not load within 2 s while importing it\n"
        '    File "<string>", line 10, in <module>\n'  # the script's exec
        '    File "api/slow.py", line 7, in <module>'
    )
    assert re.fullmatch(r'    File "api/slow\.py", line [234], in wait', innermost)


def test_a_load_that_ends_removes_its_trail(tmp_path):
    base = str(tmp_path / "w")
    progress = LoadProgress(base, {"/api/a": "api/a.py"})
    progress.step("warming", "/api/a")
    assert trail(base)[0].read_text() == "warming\t/api/a\tapi/a.py\n"
    progress.done()
    assert not any(p.exists() for p in trail(base))
    assert describe_failure(base, "exited") == ("the deployment exited before importing any route")
