"""Which client carries HTTP to a region: the local one on loopback, httpx beyond it.

The cross-host test (httpx over TLS to a region in another network
namespace) is tests/multihost/test_remote_probes.py.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from vega_dag.regions.remote_http import is_loopback


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://127.0.0.1:8000", True),
        ("http://127.3.4.5:1/x", True),
        ("http://[::1]:80", True),
        ("http://localhost:9", True),
        ("https://10.77.0.10:8443", False),
        ("http://region-fra.example:80", False),
        ("https://[2001:db8::1]/", False),
    ],
)
def test_loopback_or_not(url, loopback):
    assert is_loopback(url) is loopback


def test_probing_a_local_region_never_imports_httpx(tmp_path):
    code = (
        "import sys, socket\n"
        "from vega_dag.rollout.probes import probe_all\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()\n"
        "answers = probe_all([(f'http://127.0.0.1:{port}', '/')], timeout=1.0)\n"
        "assert answers[0].error is not None\n"
        "print('httpx' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
