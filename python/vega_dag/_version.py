"""The package's version, importable without the extension.

Cargo.toml's ``[package] version`` is the source (pyproject.toml takes it
from there, and the extension reports it as ``_core.__version__``); this copy
exists because loading the 3.4 MB extension is most of ``vega-dag --version``.
tests/test_version.py fails the moment the two disagree.
"""

__version__ = "0.1.0"
