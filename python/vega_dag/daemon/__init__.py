"""The build daemon: a resident ``vega-dag build`` per project, kept warm.

A one-shot build pays for the interpreter, its imports and reading its state
and caches every time; on a 20,000-module project that is most of a no-op.
``vega-dag daemon start`` runs a build process that keeps all of it in memory
(``vega_dag.daemon.warm``), as Bazel's server and Turborepo's daemon do, and
``vega-dag build`` hands the build to it when it runs (the client imports
almost nothing). Outputs are the same either way: the daemon runs the same
build, and reuses nothing whose file changed under it.

    paths.py    where a project's daemon listens
    client.py   the ``vega-dag`` entry point's fast path (stdlib only)
    server.py   the daemon
"""
