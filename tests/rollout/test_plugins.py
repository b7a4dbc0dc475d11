"""Plugin points: hookspecs, entry-point discovery, the example plugin's hooks."""

from __future__ import annotations

import sys
from pathlib import Path

import pluggy

from tests.rollout.helpers import write_project
from vega_dag.config import load_config
from vega_dag.plugins import hookspecs
from vega_dag.plugins.manager import ENTRY_POINT_GROUP, LocalFleetPlugin, hookimpl
from vega_dag.regions.fleet import LocalFleet

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "plugin-example"


def _manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(LocalFleetPlugin(), name="local-fleet")
    return pm


def test_example_plugin_is_discovered_through_its_entry_point(tmp_path, monkeypatch):
    # An installed distribution is a package plus a .dist-info naming the entry point.
    site = tmp_path / "site"
    dist = site / "vega_dag_example_plugin-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vega-dag-example-plugin\n")
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: vega-dag-example-plugin\nVersion: 0.1.0\n"
    )
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nexample = vega_dag_example_plugin\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(EXAMPLE))
    monkeypatch.delitem(sys.modules, "vega_dag_example_plugin", raising=False)
    pm = _manager()
    assert pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP) == 1
    import vega_dag_example_plugin as plugin

    config = load_config(write_project(tmp_path / "proj"))
    checks = [c for group in pm.hook.vega_dag_health_checks(config=config) for c in group]
    assert checks == [plugin.banner_check]
    assert "vega_dag_health_checks" in plugin.CALLS
    steps = [s for group in pm.hook.vega_dag_compile_steps(config=config) for s in group]
    assert [(s.name, s.version) for s in steps] == [("drop-marked-lines", "1")]
    assert steps[0].transform("a.py", b"x = 1\ny = 2  # vega: drop-line\n") == b"x = 1\n"
    # No plugin offers a region target: the local fleet is the default.
    assert isinstance(pm.hook.vega_dag_region_target(config=config), LocalFleet)


def test_a_region_target_plugin_replaces_the_local_fleet(tmp_path):
    class RemoteFleet:
        name = "remote"

    class Plugin:
        @hookimpl
        def vega_dag_region_target(self, config):
            return RemoteFleet()

    pm = _manager()
    pm.register(Plugin())
    config = load_config(write_project(tmp_path / "proj"))
    assert isinstance(pm.hook.vega_dag_region_target(config=config), RemoteFleet)


def test_the_entry_point_prefilter_sees_what_importlib_metadata_sees(tmp_path, monkeypatch):
    """get_plugin_manager skips importlib.metadata only when no distribution names the group."""
    import importlib.metadata

    from vega_dag.plugins.manager import _may_declare_plugins

    def agree() -> bool:
        found = bool(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))
        assert _may_declare_plugins() or not found
        return found

    assert not agree()  # the test environment installs no plugin
    assert not _may_declare_plugins()
    dist = tmp_path / "site" / "some_plugin-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: some-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nsome = some_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert agree()
    assert _may_declare_plugins()
