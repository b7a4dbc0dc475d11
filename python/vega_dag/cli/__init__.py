"""The ``vega-dag`` command line.

Subcommands are imported only when invoked, so ``vega-dag build`` does not
pay for the imports of ``vega-dag deploy`` (networkx alone costs ~0.17 s).
"""

from __future__ import annotations

import importlib

import click

from vega_dag import __version__
from vega_dag.entry import PROG, VERSION_FLAGS, VERSION_MESSAGE

#: command name -> "module:attribute" of the click command implementing it
COMMANDS: dict[str, str] = {
    "build": "vega_dag.cli.build_cmd:build_cmd",
    "daemon": "vega_dag.cli.daemon_cmd:daemon_cmd",
    "deploy": "vega_dag.cli.deploy_cmd:deploy_cmd",
    "drift": "vega_dag.cli.drift_cmd:drift_cmd",
    "gc": "vega_dag.cli.gc_cmd:gc_cmd",
    "graph": "vega_dag.cli.graph_cmd:graph_cmd",
    "hash": "vega_dag.cli.hash_cmd:hash_cmd",
    "history": "vega_dag.cli.history_cmd:history_cmd",
    "keys": "vega_dag.cli.keys_cmd:keys_cmd",
    "logs": "vega_dag.cli.logs_cmd:logs_cmd",
    "plan": "vega_dag.cli.plan_cmd:plan_cmd",
    "region": "vega_dag.cli.region_cmd:region_cmd",
    "regions": "vega_dag.cli.regions_cmd:regions_cmd",
    "rollback": "vega_dag.cli.rollback_cmd:rollback_cmd",
    "status": "vega_dag.cli.status_cmd:status_cmd",
    "store": "vega_dag.cli.store_cmd:store_cmd",
    "toolchain": "vega_dag.cli.toolchain_cmd:toolchain_cmd",
}


class LazyGroup(click.Group):
    """A group whose subcommands live in modules imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except Exception as err:
            from vega_dag.errors import storage_error

            # A full disk (or quota, or read-only filesystem) met outside the
            # store's own write paths: the same clear error, never a traceback.
            full = storage_error(err)
            if full is None:
                raise
            click.secho(f"✗ {full}", fg="red", err=True)
            ctx.exit(1)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, *VERSION_FLAGS, prog_name=PROG, message=VERSION_MESSAGE)
def main() -> None:
    """Deterministic builds and multi-region rollouts for file-routed Python APIs."""
