"""``vega-dag keys generate|trust|untrust|list``: signing keys and a fleet's trust."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from vega_dag.cli.options import json_output, project_path
from vega_dag.config import load_config
from vega_dag.errors import VegaError


@click.group("keys")
def keys_cmd() -> None:
    """Ed25519 keys that sign deployments, and the keys a fleet's regions trust."""


def _fail(err: VegaError) -> None:
    click.secho(f"✗ {err}", fg="red", err=True)
    sys.exit(1)


def _trust_dir(path: Path) -> Path:
    from vega_dag.regions.fleet import fleet_dir
    from vega_dag.rollout.signing import TRUST_DIR

    return fleet_dir(load_config(path)) / TRUST_DIR


@keys_cmd.command("generate")
@click.option("--name", default="deploy", show_default=True, help="The key files' name.")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write NAME.key and NAME.pub (default: VEGA_DAG_KEYS_DIR, else "
    "~/.config/vega-dag/keys).",
)
@json_output
def generate(name: str, directory: Path | None, as_json: bool) -> None:
    """Write a new Ed25519 key pair: NAME.key (private, 0600) and NAME.pub."""
    from vega_dag.rollout.signing import default_keys_dir
    from vega_dag.rollout.signing import generate as write_pair

    try:
        private, public, kid = write_pair(directory or default_keys_dir(), name)
    except VegaError as err:
        _fail(err)
        return
    if as_json:
        click.echo(json.dumps({"key_id": kid, "private": str(private), "public": str(public)}))
        return
    click.echo(click.style("✓", fg="green") + f" Generated {kid}")
    click.echo(f"  private  {private}   (keep it secret: it can make regions run code)")
    click.echo(f"  public   {public}")
    click.echo("Sign deploys with it: [tool.vega.signing] key = " + json.dumps(str(private)))
    click.echo(
        f"  (or VEGA_DAG_SIGNING_KEY); make regions require it: vega-dag keys trust {public}"
    )


@keys_cmd.command("trust")
@click.argument("public_key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@project_path
@json_output
def trust(public_key: Path, path: Path, as_json: bool) -> None:
    """Make the project's local regions serve only deployments signed by trusted keys.

    Adds PUBLIC_KEY to the keys the fleet's regions trust; from then on each
    refuses any deployment whose record no trusted key signed.
    """
    from vega_dag.rollout.signing import key_id, load_public

    try:
        public = load_public(public_key)
        kid = key_id(public)
        directory = _trust_dir(path)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{kid.replace(':', '-')}.pub"
        # Written whole, then renamed: a region never reads half a key.
        tmp = target.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(public_key.read_bytes())
        os.replace(tmp, target)
    except VegaError as err:
        _fail(err)
        return
    except OSError as err:
        _fail(VegaError(f"{public_key}: cannot add it to the fleet's trusted keys: {err}"))
        return
    if as_json:
        click.echo(json.dumps({"trusted": kid, "file": str(target)}))
        return
    click.echo(click.style("✓", fg="green") + f" The regions of {path} now trust {kid}")
    click.echo("  they serve only deployments signed by a trusted key")


@keys_cmd.command("untrust")
@click.argument("key_id")
@project_path
def untrust(key_id: str, path: Path) -> None:
    """Stop trusting KEY_ID (as `keys list` shows it); with none left, unsigned ones serve."""
    target = _trust_dir(path) / f"{key_id.replace(':', '-')}.pub"
    if not target.exists():
        _fail(VegaError(f"{key_id}: not a trusted key of {path} (see `vega-dag keys list`)"))
    target.unlink()
    click.echo(click.style("✓", fg="green") + f" The regions of {path} no longer trust {key_id}")


@keys_cmd.command("list")
@project_path
@json_output
def list_keys(path: Path, as_json: bool) -> None:
    """The keys the project's local regions trust."""
    from vega_dag.rollout.signing import Trust

    trust = Trust(_trust_dir(path))
    trust.refresh()
    if as_json:
        click.echo(json.dumps({"trusted": sorted(trust.keys), "problems": trust.problems}))
        return
    if not trust.enforced:
        click.echo("= No trusted keys: the regions serve unsigned deployments")
    for kid in sorted(trust.keys):
        click.echo(f"  {kid}")
    for problem in trust.problems:
        click.secho(f"  ! {problem}", fg="yellow")
