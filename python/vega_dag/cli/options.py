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
