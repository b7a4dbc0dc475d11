"""A minimal vega-dag plugin.

- a health check that every gate runs: each promoted region must answer
  ``GET /api`` within a second (any status below 500);
- a compile step that strips a ``# vega: drop-line`` marker's line from source
  before it is compiled (its name and version belong in the toolchain).
"""

from __future__ import annotations

import urllib.error
import urllib.request

from vega_dag.plugins import hookimpl

#: Every call of a hook is recorded here, so tests can see it was called.
CALLS: list[str] = []


def banner_check(region: str, url: str, deployment: str, routes: list[str]) -> list[str]:
    CALLS.append(f"health:{region}:{deployment}")
    try:
        with urllib.request.urlopen(url + "/api", timeout=1.0) as resp:
            status = resp.status
    except urllib.error.HTTPError as err:
        status = err.code
    except OSError as err:
        return [f"GET /api failed: {err}"]
    return [f"GET /api answered {status}"] if status >= 500 else []


class DropMarkedLines:
    name = "drop-marked-lines"
    version = "1"

    def transform(self, path: str, source: bytes) -> bytes:
        CALLS.append(f"compile:{path}")
        return b"\n".join(
            line for line in source.split(b"\n") if not line.rstrip().endswith(b"# vega: drop-line")
        )


@hookimpl
def vega_dag_health_checks(config: object) -> list:
    CALLS.append("vega_dag_health_checks")
    return [banner_check]


@hookimpl
def vega_dag_compile_steps(config: object) -> list:
    return [DropMarkedLines()]
