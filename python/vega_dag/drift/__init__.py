"""The drift check: are the build's outputs a function of its inputs alone?

``vega-dag drift`` rebuilds what the working-tree change touches twice, in
isolated copies of the project under deliberately different conditions
(path, TZ, umask, locale, hash seed, file creation order and mtimes,
SOURCE_DATE_EPOCH), and compares every output with the other build's and
with the store's recorded output for the same input and toolchain.

    changes.py    which files the working-tree change touches (git, or the last build)
    sandbox.py    the isolated copies and the conditions each build runs under
    worker.py     the build inside one sandbox (a subprocess; prints JSON)
    compare.py    digests across builds and the store → drifting outputs
    explain.py    readable differences: code-object dumps, bundle entries, diffoscope
    check.py      the whole check, as the CLI and the pre-commit hook run it
"""
