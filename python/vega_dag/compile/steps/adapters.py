"""Built-in adapters: how to call a known dist, so ``"dist==version"`` is all a user writes.

An adapter names the function that transforms a module, called as
``function(source: str, filename=<project-relative path>, **options) -> str``
inside the step's virtualenv, and the options it is called with. Changing an
adapter changes compiled output without changing any step's identity: bump
``COMPILER_VERSION`` (vega_dag.compile.toolchain) with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Adapter:
    #: ``module:function``, the function imported inside the step's virtualenv.
    call: str
    #: Keyword arguments passed on every call (JSON values).
    options: dict[str, object] = field(default_factory=dict)


#: PEP 503-normalised dist name → adapter.
ADAPTERS: dict[str, Adapter] = {
    # Served modules keep their public API and runtime behaviour:
    # - remove_annotations=False: annotations are runtime data (FastAPI and
    #   pydantic read them to validate requests, dataclasses to find fields);
    # - rename_globals=False: module-level names are the module's API
    #   (`from lib.money import Price`, a route's `app`/`handler`);
    # - remove_literal_statements=False: docstrings are runtime data too
    #   (FastAPI's endpoint descriptions, `__doc__`).
    # All three keywords exist, with these meanings, in every release that
    # installs on Python ≥ 3.11 (2.7.0 … 3.4.0): 3.x also accepts a
    # RemoveAnnotationsOptions for remove_annotations, and False still means
    # "remove none". Every other option keeps the release's own default, so
    # releases differ in what they do (2.9.0 drops `return None`, 2.10.0 folds
    # constants and `raise E()` → `raise E`, 3.3.0 removes dead branches).
    "python-minifier": Adapter(
        call="python_minifier:minify",
        options={
            "remove_annotations": False,
            "rename_globals": False,
            "remove_literal_statements": False,
        },
    ),
}
