"""vega-dag: deterministic, content-addressed builds and rollouts of Python APIs.

The pipeline, one subpackage per stage: ``scan`` → ``graph`` → ``compile`` →
``bundle`` → ``manifest`` → ``store``, run in that order by ``pipeline``; then
``rollout`` to ``regions``, driven by ``cli``. The hot path (hashing,
tree scans, archives, canonical bytecode, import scanning) is the Rust
extension ``vega_dag._core``.
"""

# The version without loading the extension (``from vega_dag import _core``
# loads it where it is used): the command line's fast paths (--version, a
# build the daemon runs) answer before any of it is needed. importlib.metadata
# would cost more than the whole no-op build.
from vega_dag._version import __version__

__all__ = ["__version__"]
