"""A published application, unchanged: Datasette, deployed as a one-app project.

Datasette (datasette.io, on the registry) is an ASGI application shipped as a
package with its own Jinja templates and static files. The project here is
what a user writes to publish a database with it: a package whose ``main.py``
builds the app over a SQLite file kept beside it (package data, so bundled)
and a lock pinning Datasette and its dependencies, installed into the
deployment's layer from the registry's wheels. Through a region: its HTML
pages from its templates, its JSON API running SQL on the bundled file, its
static CSS, a redirect, a 404.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from importlib.metadata import version

import pytest

from tests.apps.projects import ROLLOUT, write
from tests.apps.test_flask_from_layer import Client
from tests.rollout.helpers import stop_fleet, vega_json

#: The region's runtime imports these itself (uvicorn, click, h11, pluggy,
#: typing_extensions; setuptools' _distutils_hack, which the environment's
#: site loads) before any deployment: the layer cannot replace a module
#: already in sys.modules, so the lock pins the runtime's own versions
#: (regions/worker.py layer_conflicts fails the load on any other).
RUNTIME = ["click", "h11", "pluggy", "setuptools", "typing-extensions", "uvicorn"]


def _imported_at_startup() -> set[str]:
    """The modules a fresh interpreter of this environment has imported before any code runs.

    Some environments' site hooks import certifi (a sandbox's .pth): then the
    runtime's copy is the one a deployment gets, and the lock must pin it.
    """
    code = "import sys; print(' '.join(sys.modules))"
    return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              check=True).stdout.split())  # fmt: skip


if "certifi" in _imported_at_startup():
    RUNTIME.append("certifi")
PINS = {
    "aiofiles": "25.1.0",
    "anyio": "4.16.0",
    "asgi-csrf": "0.11",
    "asgiref": "3.13.0",
    "certifi": "2026.10.19.post1",
    "click-default-group": "1.2.4",
    "datasette": "0.65.5",
    "flexcache": "0.3",
    "flexparser": "0.4",
    "httpcore": "1.0.9",
    "httpx": "0.28.1",
    "hupper": "1.12.1",
    "idna": "3.20",
    "itsdangerous": "2.2.0",
    "janus": "2.0.0",
    "jinja2": "3.1.6",
    "markupsafe": "3.0.4",
    "mergedeep": "1.3.4",
    "pip": "26.3",
    "platformdirs": "4.14.9",
    "python-multipart": "0.0.34",
    "pyyaml": "6.0.4",
    **{name: version(name) for name in RUNTIME},
}

EXPLORER = {
    "pyproject.toml": (
        '[project]\nname = "books-explorer"\nversion = "0.1.0"\n'
        'dependencies = ["datasette>=0.65"]\n\n[tool.vega]\n'
        # explorer/main.py imports nothing of its own package, so the graph
        # holds no explorer/__init__.py and the package's data is not in the
        # bundle (a gap: see the report); Datasette opens the file by path.
        'include = ["explorer/books.db"]\n'
        # Datasette's first request (its startup: schemas, plugins, templates)
        # is slow on a loaded machine.
        + ROLLOUT.replace("load_timeout_s = 60\n", "load_timeout_s = 60\ntimeout_s = 30\n")
        # Datasette lists no routes a lister knows: the gate probes the app's
        # catch-all, by default with "/1" (a database that is not there).
        + '\n[tool.vega.health.probes]\n"/{path:path?}" = ["/", "/books.json"]\n'
    ),
    "requirements.lock": "".join(f"{n}=={v}\n" for n, v in sorted(PINS.items())),
    "explorer/__init__.py": "",
    "explorer/main.py": (
        "from pathlib import Path\n\n"
        "from datasette.app import Datasette\n\n"
        'DB = Path(__file__).with_name("books.db")\n\n'
        "# Immutable: the deployment's tree is read-only, and Datasette then\n"
        "# counts rows once and serves the file as a fixed snapshot.\n"
        'app = Datasette(immutables=[str(DB)], settings={"num_sql_threads": 1}).app()\n'
    ),
}


@pytest.fixture
def explorer(tmp_path, offline_wheels):
    root = write(tmp_path / "explorer", EXPLORER)
    with sqlite3.connect(root / "explorer" / "books.db") as db:
        db.execute("create table books (id integer primary key, title text, year integer)")
        db.executemany(
            "insert into books (title, year) values (?, ?)",
            [("SICP", 1985), ("TAOCP <vol 1>", 1968), ("Dragon Book", 1986)],
        )
    db.close()
    offline_wheels(root / "requirements.lock")
    yield root
    stop_fleet(root)


def test_datasette_from_the_registry_served_through_a_region(explorer):
    out = vega_json("deploy", str(explorer))
    assert out["status"] == "live", out["problems"]
    client = Client(out["regions"][0]["url"])

    status, headers, page = client.get("/")
    assert status == 200, page
    assert headers["content-type"].startswith("text/html")
    assert b"books" in page and b"Datasette" in page  # its index template

    status, headers, page = client.get("/books/books")
    assert status == 200, page
    assert b"TAOCP &lt;vol 1&gt;" in page  # autoescaped, from the bundled file

    status, _, body = client.get(
        "/books.json?sql=select+title+from+books+where+year>1980&_shape=array"
    )
    assert status == 200, body
    assert json.loads(body) == [{"title": "SICP"}, {"title": "Dragon Book"}]

    status, headers, css = client.get("/-/static/app.css")
    assert status == 200 and headers["content-type"].startswith("text/css")
    assert len(css) > 1000

    status, _, body = client.get("/-/versions.json")
    assert status == 200
    assert json.loads(body)["datasette"]["version"] == PINS["datasette"]
    assert client.get("/nowhere")[0] == 404
