"""Options shared by several subcommands, defined once."""

from __future__ import annotations

from pathlib import Path

import click

project_path = click.argument(
    "path",
    required=False,
    default=".",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
json_output = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON object (a stable interface)."
)
quiet = click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
lock_timeout = click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds to wait for another deploy or rollback to release the pointer store.",
)
store_url = click.option(
    "--store",
    "store",
    metavar="s3://BUCKET/PREFIX",
    default=None,
    help="Share outputs through this S3 store (over VEGA_DAG_STORE and [tool.vega.backend] "
    "store); 'local': the project's store alone.",
)


def _pointers_override(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    # Through the environment, so that the regions and supervisor this command
    # starts watch the same store it writes (they inherit it).
    if value is not None:
        import os

        from vega_dag.rollout.jetstream import POINTERS_ENV

        os.environ[POINTERS_ENV] = value


pointers_url = click.option(
    "--pointers",
    metavar="nats://HOST:PORT",
    default=None,
    expose_value=False,
    callback=_pointers_override,
    is_eager=True,
    help="The pointer store on NATS JetStream (over VEGA_DAG_POINTERS and [tool.vega.backend] "
    "pointers); 'local': the project's SQLite file.",
)
