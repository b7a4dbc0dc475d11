"""The dependency layer: lock parsing, and a layer built from a real wheel (PyPI)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vega_dag import _core
from vega_dag.bundle import layer as layer_mod
from vega_dag.bundle.layer import LockError, read_lock
from vega_dag.manifest import decode_manifest
from vega_dag.pipeline import build
from vega_dag.store.objects import ObjectStore


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_read_lock_pins(tmp_path):
    lock = write(
        tmp_path / "requirements.lock",
        "# generated\n"
        "\n"
        "Starlette==1.10.0\n"
        "typing_extensions == 4.16.0   # via anyio\n"
        "zope.interface==7.2\n"
        "uvicorn[standard]==0.30.1\n"
        "tomli==2.0.1 ; python_version < '3.11'\n"
        "idna==3.20\n"
        "IDNA==3.20\n",
    )
    assert read_lock(lock) == [
        ("idna", "3.20"),
        ("starlette", "1.10.0"),
        ("tomli", "2.0.1"),
        ("typing-extensions", "4.16.0"),
        ("uvicorn", "0.30.1"),
        ("zope-interface", "7.2"),
    ]


@pytest.mark.parametrize(
    ("line", "number"),
    [
        ("six>=1.16", 3),
        ("six", 3),
        ("six==", 3),
        ("-e git+https://example.invalid/x.git#egg=x", 3),
        ("six~=1.16.0", 3),
        ("six===1.16.0", 3),
    ],
)
def test_read_lock_rejects_unpinned_lines(tmp_path, line, number):
    lock = write(tmp_path / "requirements.lock", f"idna==3.20\n# comment\n{line}\nanyio==4.16.0\n")
    with pytest.raises(LockError) as info:
        read_lock(lock)
    assert info.value.line == number
    assert str(info.value).startswith(f"{lock}:{number}: not an exact pin (name==version)")


def test_read_lock_rejects_conflicting_pins(tmp_path):
    lock = write(tmp_path / "requirements.lock", "six==1.16.0\nSix==1.17.0\n")
    with pytest.raises(LockError) as info:
        read_lock(lock)
    assert str(info.value) == f"{lock}:2: six is pinned twice"


def test_read_pylock_toml(tmp_path):
    lock = write(
        tmp_path / "pylock.toml",
        'lock-version = "1.0"\n\n[[packages]]\nname = "Six"\nversion = "1.16.0"\n\n'
        '[[packages]]\nname = "idna"\nversion = "3.20"\n',
    )
    assert read_lock(lock) == [("idna", "3.20"), ("six", "1.16.0")]
    bad = write(tmp_path / "pylock.toml", '[[packages]]\nname = "six"\n')
    with pytest.raises(LockError) as info:
        read_lock(bad)
    assert str(info.value) == f"{bad}: packages[0] needs a name and an exact version"


def test_missing_lock_named_in_config(tree):
    root = tree(
        {"pyproject.toml": '[tool.vega]\nlock = "deps.lock"\n', "api/a.py": "handler = 1\n"}
    )
    with pytest.raises(LockError) as info:
        build(root)
    assert str(info.value) == f"{root.resolve() / 'deps.lock'}: lock file not found"


def test_bad_lock_fails_the_build_naming_file_and_line(tree):
    root = tree({"requirements.lock": "six==1.16.0\nflask\n", "api/a.py": "handler = 1\n"})
    with pytest.raises(LockError) as info:
        build(root)
    assert str(info.value).startswith(f"{root.resolve() / 'requirements.lock'}:2: not an exact pin")


def test_layer_from_a_lock(tree, monkeypatch):
    root = tree(
        {
            "requirements.lock": "six==1.16.0\n",
            "lib.py": "import six\n\nX = six.PY3\n",
            "api/a.py": "import lib\n\n\ndef handler(request):\n    return lib.X\n",
        }
    )
    first = build(root)
    assert first.layer is not None
    store = ObjectStore(root / ".vega")
    data = store.get(first.layer)
    assert _core.hash_bytes(data) == first.layer
    files = _core.read_archive(data)
    assert "six.py" in files
    assert files["six.py"].startswith(b"# Copyright (c) 2010-2020 Benjamin Peterson")
    dist_info = {
        name.split("/", 1)[1] for name in files if name.startswith("six-1.16.0.dist-info/")
    }
    assert "METADATA" in dist_info and "WHEEL" in dist_info
    assert not dist_info & {"RECORD", "INSTALLER", "REQUESTED", "direct_url.json"}
    assert not [n for n in files if n.endswith(".pyc") or "__pycache__" in n]
    assert decode_manifest(store.get(first.manifest)).layer == first.layer
    # Third-party code is in the layer, never in a route bundle.
    assert "six.py" not in _core.read_archive(store.get(first.routes["/api/a"]))

    # From now on nothing may install: the layer must come from the cache.
    def no_install(*args, **kwargs):
        raise AssertionError("the layer was rebuilt")

    monkeypatch.setattr(layer_mod, "build_layer", no_install)
    noop = build(root)
    assert (noop.layer, noop.manifest) == (first.layer, first.manifest)
    (root / "lib.py").write_text("import six\n\nX = not six.PY2\n")
    edited = build(root)
    assert edited.modules_compiled == 1
    assert edited.layer == first.layer

    # A new pin is a new layer.
    monkeypatch.undo()
    (root / "requirements.lock").write_text("six==1.17.0\n")
    changed = build(root)
    assert changed.layer != first.layer
    assert changed.manifest != edited.manifest
    assert changed.modules_compiled == 0 and changed.bundles_built == 0
    assert "six-1.17.0.dist-info/METADATA" in _core.read_archive(store.get(changed.layer))

    # Back to the first pin: served from the action cache, same digest.
    monkeypatch.setattr(layer_mod, "build_layer", no_install)
    (root / "requirements.lock").write_text("# pinned again\nsix == 1.16.0\n")
    back = build(root)
    assert back.layer == first.layer


def test_uninstallable_pin_is_a_clear_error(tree):
    root = tree(
        {
            "requirements.lock": "six==99.0.0\n",
            "api/a.py": "handler = 1\n",
        }
    )
    with pytest.raises(LockError) as info:
        build(root)
    assert str(info.value).startswith(
        f"{root.resolve() / 'requirements.lock'}: installing the pinned packages failed:"
    )
    assert not (root / ".vega/state/build.msgpack").exists()
