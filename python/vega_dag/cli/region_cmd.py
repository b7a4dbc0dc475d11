"""``vega-dag region serve``: a region agent on this host (``regions.agent``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click


@click.group("region")
def region_cmd() -> None:
    """Run one region on this host, on the shared backends (an agent)."""


def _project_backend(path: Path | None) -> tuple[str | None, str | None]:
    """(store, pointers) of the project at ``path`` (or the current directory), if there is one."""
    from vega_dag.config import load_config

    root = path or Path.cwd()
    if path is None and not ((root / "pyproject.toml").is_file() or (root / "vega.toml").is_file()):
        return None, None
    config = load_config(root)
    from vega_dag.rollout.jetstream import pointers_url
    from vega_dag.store.remote import store_url

    return store_url(config), pointers_url(config)


def _default_dir(name: str) -> Path:
    state = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(state) / "vega-dag" / "agents" / name


@region_cmd.command("serve")
@click.option("--name", required=True, help="The region's name (its pointer's key).")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the agent keeps its store and code (default ~/.local/state/vega-dag/agents/NAME).",
)
@click.option(
    "--listen",
    default="127.0.0.1:0",
    show_default=True,
    help="HOST:PORT the region serves traffic on (admin endpoints that change state: "
    "loopback only).",
)
@click.option(
    "--url", default=None, help="The URL other hosts reach it at (default: from --listen)."
)
@click.option(
    "--store",
    "store",
    default=None,
    metavar="s3://BUCKET/PREFIX",
    help="The shared store (over VEGA_DAG_STORE and [tool.vega.backend] store).",
)
@click.option(
    "--pointers",
    "pointers",
    default=None,
    metavar="nats://HOST:PORT",
    help="The NATS pointer store (over VEGA_DAG_POINTERS and [tool.vega.backend] pointers).",
)
@click.option(
    "--control",
    default=None,
    metavar="nats://HOST:PORT",
    help="The NATS servers it answers prefetches on and writes its status to (default: "
    "--pointers; the hub's, when --pointers is a leaf node on this host).",
)
@click.option(
    "--trust",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A directory of trusted public keys (.pub): only deployments they signed serve "
    "(over VEGA_DAG_TRUST).",
)
@click.option(
    "--path",
    "project",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="A project whose [tool.vega.backend] gives the defaults (default: the current "
    "directory, if it is one).",
)
def serve(
    name: str,
    directory: Path | None,
    listen: str,
    url: str | None,
    store: str | None,
    pointers: str | None,
    control: str | None,
    trust: Path | None,
    project: Path | None,
) -> None:
    """Serve one region from the shared store (S3) and pointers (NATS), until stopped."""
    from vega_dag.errors import VegaError
    from vega_dag.regions import agent
    from vega_dag.rollout.jetstream import POINTERS_ENV, parse_pointers_url
    from vega_dag.store.remote import LOCAL, STORE_ENV, parse_store_url

    try:
        if not agent.valid_name(name):
            raise VegaError(f"--name {name!r}: letters, digits, '-' and '_' only")
        configured_store, configured_pointers = _project_backend(project)
        store = store or os.environ.get(STORE_ENV) or configured_store
        if store == LOCAL:
            store = None
        pointers = pointers or os.environ.get(POINTERS_ENV) or configured_pointers
        if not pointers or pointers == "local":
            raise VegaError(
                "a region agent learns its pointer from NATS: give --pointers nats://HOST:PORT "
                f"(or {POINTERS_ENV})"
            )
        parse_pointers_url(pointers)
        if control is not None:
            parse_pointers_url(control)
        if store is not None:
            parse_store_url(store)
        trust = trust or (
            Path(os.environ["VEGA_DAG_TRUST"]) if os.environ.get("VEGA_DAG_TRUST") else None
        )
        if trust is not None and not trust.is_dir():
            raise VegaError(f"--trust {trust}: not a directory of public keys")
        agent.parse_listen(listen)
    except (VegaError, ValueError) as err:
        click.secho(f"✗ {err}", fg="red", err=True)
        sys.exit(2)
    agent.serve(
        name, directory or _default_dir(name), listen, url, store, pointers, trust, None, control
    )
