"""The ``vega-dag`` console script: its fast paths, else the click CLI.

Start-up is most of a short command's time (click and its dependencies alone
import in ~40–65 ms), so what can be answered without click is answered here:
``--version``, ``status [PATH] [--json]`` with nothing to lay out in a table,
``rollback`` (a rollback is timed from the command's start), and a ``build``,
``drift`` or ``rollback`` the project's daemon runs (``daemon.client``).
Everything else, and any other spelling (``--version`` among other arguments,
``--probe``, a PATH that is not a directory), goes to click, which prints the
same text from the same code.
"""

# No `from __future__ import annotations`: it imports the __future__ module, on
# every command's path; this module's annotations need no deferring on 3.11.
import sys

PROG = "vega-dag"
#: click.version_option's message, used by both paths (one source of truth).
VERSION_MESSAGE = "%(prog)s, version %(version)s"
VERSION_FLAGS = ("-V", "--version")


def main() -> None:
    argv = sys.argv[1:]
    if len(argv) == 1 and argv[0] in VERSION_FLAGS:
        from vega_dag import __version__

        sys.stdout.write(VERSION_MESSAGE % {"prog": PROG, "version": __version__} + "\n")
        sys.stdout.flush()
        return
    if argv and argv[0] == "status" and _status(argv[1:]):
        return
    from vega_dag.daemon.client import run_via_daemon

    code = run_via_daemon(argv)
    if code is not None:
        sys.exit(code)
    if argv and argv[0] == "rollback":
        code = _rollback(argv[1:])
        if code is not None:
            sys.exit(code)
    from vega_dag.cli import main as cli

    cli(prog_name=PROG)


def _status(args: list[str]) -> bool:
    """``vega-dag status`` without click, if ``args`` are the plain forms; whether it answered."""
    import os

    as_json, paths = False, []
    for arg in args:
        if arg == "--json":
            as_json = True
        elif arg.startswith("-"):
            return False
        else:
            paths.append(arg)
    if len(paths) > 1 or not os.path.isdir(paths[0] if paths else "."):
        return False  # click reports it
    from vega_dag.rollout.status import NO_REGIONS, nothing_to_report

    if nothing_to_report(paths[0] if paths else "."):
        # Nothing to show, told without msgspec, pluggy or json: most of the start-up.
        sys.stdout.write((_NOTHING_JSON if as_json else NO_REGIONS) + "\n")
        sys.stdout.flush()
        return True
    from pathlib import Path

    from vega_dag.errors import VegaError
    from vega_dag.rollout.status import collect

    try:
        data = collect(Path(paths[0] if paths else "."))
    except VegaError:
        return False  # reported as the click command reports it
    if as_json:
        import json

        sys.stdout.write(json.dumps(data, sort_keys=True) + "\n")
    elif data["regions"] or data["rolling"] or data["interrupted"]:
        from vega_dag.cli.status_cmd import show

        show(data)
    else:
        sys.stdout.write(NO_REGIONS + "\n")
    sys.stdout.flush()
    return True


#: ``json.dumps(rollout.status.NOTHING, sort_keys=True)``, without importing json.
_NOTHING_JSON = '{"interrupted": [], "regions": [], "rolling": []}'

#: What click.echo strips from text for a stream that is not a terminal.
_ANSI = r"\033\[[0-?]*[ -/]*[@-~]"
_COLOURS = {"red": 31, "green": 32}


def _style(text: str, fg: str) -> str:
    """``click.style(text, fg=fg)`` for the two colours rollback uses."""
    return f"\033[{_COLOURS[fg]}m{text}\033[0m"


def _echo(text: str, err: bool = False) -> None:
    """``click.echo``: a line on stdout (stderr), without colour unless it is a terminal."""
    stream = sys.stderr if err else sys.stdout
    if "\033" in text and not stream.isatty():
        import re

        text = re.sub(_ANSI, "", text)
    stream.write(text + "\n")
    stream.flush()


def _rollback(args: list[str]) -> int | None:
    """``vega-dag rollback`` without click, for its plain forms; its exit status, or None.

    None (click then runs it, and reports any mistake) for anything but
    ``[DEPLOYMENT] [--path DIR] [--pointers URL] [--json] [-q|--quiet] [--lock-timeout S]``
    with an existing DIR and a number S >= 0.
    """
    import os

    deployment: str | None = None
    path, as_json, quiet, lock_timeout = ".", False, False, 10.0
    rest = iter(args)
    for arg in rest:
        name, eq, value = arg.partition("=")
        if arg == "--json":
            as_json = True
        elif arg in ("-q", "--quiet"):
            quiet = True
        elif name in ("--path", "--lock-timeout", "--pointers") and arg.startswith("--"):
            if not eq:
                value = next(rest, "")
                if not value or value.startswith("-"):
                    return None
            if name == "--path":
                path = value
                continue
            if name == "--pointers":
                os.environ["VEGA_DAG_POINTERS"] = value  # as the click option does
                continue
            try:
                lock_timeout = float(value)
            except ValueError:
                return None
            if not lock_timeout >= 0:
                return None
        elif arg.startswith("-") or deployment is not None:
            return None
        else:
            deployment = arg
    if not os.path.isdir(path):
        return None
    from pathlib import Path

    from vega_dag.rollout.rollback import run_command

    return run_command(
        Path(path),
        deployment,
        as_json=as_json,
        quiet=quiet,
        lock_timeout=lock_timeout,
        echo=_echo,
        style=_style,
    )
