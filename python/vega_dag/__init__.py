"""vega-dag: deterministic, content-addressed builds and rollouts of Python APIs.

The pipeline, one subpackage per stage: ``scan`` → ``graph`` → ``compile`` →
``bundle`` → ``manifest`` → ``store``, run in that order by ``pipeline``; then
``rollout`` to ``regions``, driven by ``cli``. The hot path (hashing,
tree scans, archives, canonical bytecode, import scanning) is the Rust
extension ``vega_dag._core``.
"""

# One version for the package and its extension: pyproject.toml takes it from
# Cargo.toml (dynamic = ["version"]). Read from the extension rather than
# importlib.metadata, which costs more start-up than the whole no-op build.
from vega_dag._core import __version__

__all__ = ["__version__"]
