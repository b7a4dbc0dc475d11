"""An offline package index of a fake compile step, for registry-step tests.

``write_step_index`` writes wheels of ``vega-fake-step`` by hand (zipfile,
no build backend) into a directory that pip reads with ``--find-links``
(``PIP_FIND_LINKS``, with ``PIP_NO_INDEX=1``). Its function
``vega_fake_step:transform(source, filename, tag=...)`` appends a comment
naming its version (compiles to the same bytecode) before ``drift_from``, and
from ``drift_from`` on also adds ``VEGA_FAKE_STEP = True`` (changes it), so
a bisection over the versions finds ``drift_from``.

Sources containing ``VEGA_FAKE_RAISE`` make it raise ``ValueError``,
``VEGA_FAKE_CRASH`` make its process exit, ``VEGA_FAKE_PRINT`` make it print.
``vega_fake_step:shout`` is a second function: ``'quiet'`` → ``'LOUD'``.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

DIST = "vega-fake-step"
MODULE = "vega_fake_step"

_SOURCE = '''"""{dist} {version}: a compile step for tests."""

import os

VERSION = {version!r}
DRIFTS = {drifts!r}


def transform(source, filename=None, tag="{dist}"):
    if "VEGA_FAKE_RAISE" in source:
        raise ValueError(f"refused {{filename}}")
    if "VEGA_FAKE_CRASH" in source:
        os._exit(3)
    if "VEGA_FAKE_PRINT" in source:
        print("noise " * 10000)
    if DRIFTS:
        source += "\\nVEGA_FAKE_STEP = True\\n"
    return source + f"\\n# {{tag}} {{VERSION}}\\n"


def shout(source, filename=None, word="LOUD"):
    return source.replace("'quiet'", repr(word))
'''

_BROKEN = 'raise ImportError("{dist} {version} needs a newer Python")\n'


@dataclass
class StepIndex:
    #: The --find-links directory holding the wheels.
    links: Path
    versions: list[str]
    drift_from: str | None
    #: Versions whose Requires-Python excludes every interpreter in use.
    unsupported: dict[str, str] = field(default_factory=dict)
    #: Versions that install but fail on import.
    broken: list[str] = field(default_factory=list)
    dist: str = DIST

    def drifts(self, version: str) -> bool:
        """Whether ``version`` changes compiled code (is ``drift_from`` or later)."""
        if self.drift_from is None:
            return False
        order = self.versions
        return order.index(version) >= order.index(self.drift_from)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def write_wheel(
    links: Path, version: str, module_source: str, requires_python: str | None = None
) -> Path:
    """One wheel of ``vega-fake-step`` whose package is ``module_source``."""
    info = f"{MODULE}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {DIST}\nVersion: {version}\n"
    if requires_python:
        metadata += f"Requires-Python: {requires_python}\n"
    files = {
        f"{MODULE}/__init__.py": module_source.encode(),
        f"{info}/METADATA": metadata.encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: vega-dag-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = "".join(f"{name},{_record_hash(data)},{len(data)}\n" for name, data in files.items())
    files[f"{info}/RECORD"] = (record + f"{info}/RECORD,,\n").encode()
    path = links / f"{MODULE}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0)), data)
    return path


def write_step_index(
    links: Path,
    versions: list[str],
    drift_from: str | None = None,
    *,
    unsupported: dict[str, str] | None = None,
    broken: Iterable[str] = (),
) -> StepIndex:
    """Wheels of ``versions`` (oldest first) in ``links``; see the module docstring.

    ``unsupported`` maps extra versions to a Requires-Python they carry (e.g.
    ``{"0.9.0": "<3.8"}``); ``broken`` versions install but raise ImportError.
    """
    links.mkdir(parents=True, exist_ok=True)
    index = StepIndex(links, list(versions), drift_from, dict(unsupported or {}), list(broken))
    if drift_from is not None and drift_from not in index.versions:
        raise ValueError(f"drift_from {drift_from} is not one of {versions}")
    for version in index.versions:
        if version in index.broken:
            source = _BROKEN.format(dist=DIST, version=version)
        else:
            source = _SOURCE.format(dist=DIST, version=version, drifts=index.drifts(version))
        write_wheel(links, version, source)
    for version, spec in index.unsupported.items():
        write_wheel(links, version, _SOURCE.format(dist=DIST, version=version, drifts=False), spec)
    return index
