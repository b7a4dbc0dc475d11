"""An entry module's own package is in its bundle, with the package's data.

``explorer/main.py`` is a one-app project's application and nothing imports
``explorer``: Python still runs ``explorer/__init__.py`` first, so the build
gives the module an edge to it, and the template under ``explorer/templates/``
(package data of ``explorer``) is served from the region.
"""

from __future__ import annotations

import pytest

from tests.apps.projects import ROLLOUT, write
from tests.rollout.helpers import get, stop_fleet, vega_json
from vega_dag.store.state import load_state

MAIN = """\
from pathlib import Path

PAGE = Path(__file__).parent / "templates" / "page.html"


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = PAGE.read_bytes()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html")]})
    await send({"type": "http.response.body", "body": body})
"""


@pytest.fixture
def explorer(tmp_path):
    root = write(
        tmp_path / "proj",
        {
            "pyproject.toml": '[project]\nname = "explorer"\nversion = "0.1.0"\n' + ROLLOUT,
            "explorer/__init__.py": '"""The explorer."""\n',
            "explorer/main.py": MAIN,
            "explorer/templates/page.html": "<h1>explorer</h1>\n",
        },
    )
    yield root
    stop_fleet(root)


def test_entry_module_bundles_its_package_and_its_data(explorer):
    out = vega_json("deploy", str(explorer))
    assert out["status"] == "live", out["problems"]
    state = load_state(explorer / ".vega" / "state" / "build.msgpack")
    assert state.modules["explorer.main"].deps == ["explorer"]
    status, headers, body = get(out["regions"][0]["url"], "/")
    assert (status, body) == (200, b"<h1>explorer</h1>\n"), body
    assert headers["content-type"] == "text/html"
