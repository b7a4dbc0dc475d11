"""End to end through real regions: files read at run time and dynamic imports.

A route reads one package template three ways (importlib.resources,
pkgutil.get_data, ``Path(__file__)``), a Flask app in a package renders from
its ``template_folder`` and serves from its ``static_folder``, a registry
imports a plugin by a constant name and another by a computed one (which the
build's import check catches and ``include`` fixes), and a data-file change
rebuilds exactly the bundles whose closure holds the package. Every answer
comes from a region, with the source tree gone where it matters.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.rollout.helpers import get, stop_fleet, vega, vega_json, write_project

FILES = {
    "lib/render.py": (
        "import importlib.resources\nimport pkgutil\nfrom pathlib import Path\n\n\n"
        "def three():\n"
        "    a = (importlib.resources.files('lib') / 'templates/page.html').read_text()\n"
        "    b = pkgutil.get_data('lib', 'templates/page.html').decode()\n"
        "    c = (Path(__file__).parent / 'templates' / 'page.html').read_text()\n"
        "    return [a, b, c]\n"
    ),
    "lib/templates/page.html": "<h1>page v1</h1>",
    "lib/plugins/__init__.py": "",
    "lib/plugins/fixed.py": "NAME = 'fixed'\n",
    "lib/plugins/computed.py": "NAME = 'computed'\n",
    "lib/registry.py": (
        "import importlib\n\n"
        "FIXED = importlib.import_module('lib.plugins.fixed')\n"
        "WANTED = ['computed']\n"
        "LOADED = [importlib.import_module('lib.plugins.' + n) for n in WANTED]\n"
    ),
    "api/page.py": "from lib.render import three\n\n\ndef handler(request):\n    return three()\n",
    "api/plugins.py": (
        "from lib import registry\n\n\ndef handler(request):\n"
        "    return [registry.FIXED.NAME, *(m.NAME for m in registry.LOADED)]\n"
    ),
    "webapp/__init__.py": (
        "from flask import Flask, render_template\n\n"
        "app = Flask(__name__, template_folder='templates', static_folder='static')\n\n\n"
        "@app.get('/api/site')\n"
        "def site():\n"
        "    return render_template('hello.html', name='region')\n\n\n"
        "@app.get('/api/style')\n"
        "def style():\n"
        "    return app.send_static_file('style.css')\n"
    ),
    "webapp/templates/hello.html": "<p>hello {{ name }}</p>",
    "webapp/static/style.css": "body { color: teal; }\n",
    "api/site.py": "from webapp import app  # noqa: F401\n",
    "api/style.py": "from webapp import app  # noqa: F401\n",
    "data/rates.csv": "eur,1\n",
    "api/rates.py": (
        "def handler(request):\n    with open('data/rates.csv') as f:\n        return f.read()\n"
    ),
}
INCLUDE = """
[tool.vega.per_route."/api/plugins"]
include = ["lib/plugins/computed.py"]

[tool.vega.per_route."/api/rates"]
include = ["data/rates.csv"]
"""


@pytest.fixture
def project(tmp_path: Path):
    root = write_project(tmp_path / "proj", regions=2, extra=FILES)
    yield root
    stop_fleet(root)


def test_files_and_dynamic_imports_served_from_regions(project):
    # Without the include, the computed import is caught before anything deploys.
    proc = vega("deploy", str(project))
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert (
        "route /api/plugins (api/plugins.py): importing it from its bundle alone failed: "
        "lib/registry.py:5 imports lib.plugins.computed, which is not in the bundle; add it: "
        '[tool.vega.per_route."/api/plugins"] include = ["lib/plugins/computed.py"]'
    ) in out, out
    assert "Build failed" in out

    with (project / "pyproject.toml").open("a") as f:
        f.write(INCLUDE)
    first = vega_json("deploy", str(project))
    # The source goes away: everything below comes from the deployment's tree.
    for name in ("lib", "webapp", "data", "api"):
        shutil.rmtree(project / name)
    url = first["regions"][0]["url"]

    status, _, body = get(url, "/api/page")
    assert status == 200 and json.loads(body) == ["<h1>page v1</h1>"] * 3
    status, _, body = get(url, "/api/plugins")
    assert status == 200 and json.loads(body) == ["fixed", "computed"]
    status, headers, body = get(url, "/api/site")
    assert status == 200 and body == b"<p>hello region</p>"
    status, headers, body = get(url, "/api/style")
    assert status == 200 and body == b"body { color: teal; }\n"
    assert headers["content-type"].startswith("text/css")
    status, _, body = get(url, "/api/rates")
    assert status == 200 and body == b"eur,1\n"


def test_a_data_change_redeploys_exactly_its_routes(project):
    with (project / "pyproject.toml").open("a") as f:
        f.write(INCLUDE)
    vega_json("deploy", str(project))
    (project / "lib/templates/page.html").write_text("<h1>page v2</h1>")
    second = vega_json("deploy", str(project))
    # The template belongs to lib: the routes whose closure holds lib, and no other.
    assert second["changed_routes"] == ["/api", "/api/page", "/api/plugins"]
    _, _, body = get(second["regions"][0]["url"], "/api/page")
    assert json.loads(body) == ["<h1>page v2</h1>"] * 3
