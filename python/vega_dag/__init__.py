"""vega-dag: deterministic, content-addressed builds and rollouts of Python APIs.

The pipeline, one subpackage per stage: ``scan`` → ``graph`` → ``compile`` →
``store`` → ``bundle`` → ``rollout``, driven by ``cli``. The hot path (hashing,
tree scans, archives, canonical bytecode, import scanning) is the Rust
extension ``vega_dag._core``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vega-dag")
except PackageNotFoundError:  # running from a source tree without install
    from vega_dag._core import __version__

__all__ = ["__version__"]
