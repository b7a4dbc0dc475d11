"""``vega-dag hash``: BLAKE3 digests of files, computed in parallel by the core."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

import click

from vega_dag import _core


@click.command("hash")
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--from-file",
    "list_file",
    type=click.File("r"),
    help="Read the paths to hash from this file, one per line ('-' for stdin).",
)
@click.option("-q", "--quiet", is_flag=True, help="Hash, but print nothing (for timing).")
def hash_cmd(files: tuple[Path, ...], list_file: IO[str] | None, quiet: bool) -> None:
    """Print `blake3:<hex>  PATH` for each file, in the order given."""
    paths = [str(p) for p in files]
    if list_file is not None:
        paths.extend(line.rstrip("\n") for line in list_file if line.strip())
    if not paths:
        raise click.UsageError("no files given (pass FILES or --from-file)")
    try:
        digests = _core.hash_files(paths)
    except OSError as err:
        raise click.ClickException(f"{err.filename}: {err.strerror}") from err
    if not quiet:
        sys.stdout.write("".join(f"{d}  {p}\n" for d, p in zip(digests, paths, strict=True)))
