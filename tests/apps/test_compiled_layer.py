"""The dependency layer carries compiled dependencies: wheels with extension modules.

A project's lock pins orjson (a Rust extension, not installed where the region
runs) and markupsafe (whose C ``_speedups`` the region's own interpreter also
has, at another version). The region serves a route that uses both, and its
answer proves the extension modules were imported from the deployment's
extracted layer: ``.so`` files under the fleet's ``layers/``, the pinned
versions, and markupsafe escaping through ``_speedups`` rather than its
pure-Python fallback.
"""

from __future__ import annotations

import json
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.apps.projects import ROLLOUT, write
from tests.rollout.helpers import get, stop_fleet, vega, vega_json

ORJSON = "3.11.4"
MARKUPSAFE = "3.0.2"

NATIVE = {
    "pyproject.toml": '[project]\nname = "native"\nversion = "0.1.0"\n\n[tool.vega]\n' + ROLLOUT,
    "requirements.lock": (
        "# pip-compile --generate-hashes would add hashes; pins are what the layer reads\n"
        f"orjson=={ORJSON}\n"
        f"markupsafe=={MARKUPSAFE}\n"
    ),
    "api/native.py": (
        "import sys\n"
        "from importlib.metadata import version\n\n"
        "import markupsafe\n"
        "import orjson\n\n\n"
        "def handler(request):\n"
        "    body = orjson.dumps(\n"
        "        {\n"
        '            "orjson": [sys.modules["orjson.orjson"].__file__, version("orjson")],\n'
        '            "markupsafe": [markupsafe.__file__, version("markupsafe")],\n'
        '            "escape": [\n'
        "                markupsafe._escape_inner.__module__,\n"
        '                str(markupsafe.escape("<b>&</b>")),\n'
        "            ],\n"
        "        },\n"
        "        option=orjson.OPT_SORT_KEYS,\n"
        "    )\n"
        '    return body, 200, {"x-json": "orjson"}\n'
    ),
}


@pytest.fixture
def native(tmp_path, offline_wheels):
    root = write(tmp_path / "proj", NATIVE)
    offline_wheels(root / "requirements.lock")
    yield root
    stop_fleet(root)


def test_layer_with_extension_modules_serves_from_a_region(native):
    out = vega_json("deploy", str(native))
    assert out["status"] == "live", out["problems"]
    url = out["regions"][0]["url"]
    status, headers, body = get(url, "/api/native")
    assert status == 200, body
    assert headers["x-json"] == "orjson"
    got = json.loads(body)
    layers = (native / ".vega").resolve()
    orjson_file, orjson_version = got["orjson"]
    assert orjson_version == ORJSON
    # orjson's code is one Rust extension module: imported from a .so in the layer.
    assert Path(orjson_file).suffix == ".so", orjson_file
    assert "/layers/" in orjson_file and Path(orjson_file).resolve().is_relative_to(layers)
    ms_file, ms_version = got["markupsafe"]
    assert ms_version == MARKUPSAFE  # the pin, not the region's own markupsafe
    assert Path(ms_file).resolve().is_relative_to(layers), ms_file
    assert (Path(ms_file).parent / "_speedups.pyi").is_file()
    assert list(Path(ms_file).parent.glob("_speedups.*.so"))
    assert got["escape"] == ["markupsafe._speedups", "&lt;b&gt;&amp;&lt;/b&gt;"]


def test_a_pin_the_runtime_already_imported_fails_the_load_naming_it(tmp_path, offline_wheels):
    # The region runs on msgspec itself: a route could not get another version.
    runtime = version("msgspec")
    root = write(
        tmp_path / "proj",
        {
            "pyproject.toml": NATIVE["pyproject.toml"],
            "requirements.lock": "msgspec==0.18.6\n",
            "api/v.py": "import msgspec\n\n\ndef handler(request):\n    return 1\n",
        },
    )
    offline_wheels(root / "requirements.lock")
    try:
        proc = vega("deploy", str(root), "--json")
        assert proc.returncode != 0
        out = json.loads(proc.stdout)
        assert out["status"] != "live"
        text = json.dumps(out["problems"])
        assert "the lock pins msgspec==0.18.6" in text
        assert f"already imported msgspec {runtime}" in text
        assert f"pin msgspec=={runtime} or drop it from the lock" in text
    finally:
        stop_fleet(root)
