"""Canonical bytecode: the bytes depend on the code alone, not on refcounts."""

from __future__ import annotations

import importlib.util
import marshal
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import run_python
from vega_dag import _core
from vega_dag.compile.bytecode import compile_source
from vega_dag.errors import BytecodeFormatError

HEADER = importlib.util.MAGIC_NUMBER + (0b01).to_bytes(4, "little") + bytes(8)
STDLIB = Path(sysconfig.get_paths()["stdlib"])
SAMPLE = sorted(p for p in STDLIB.glob("*.py"))[:120]


def canonical(code: object) -> bytes:
    return _core.canonicalize_pyc(HEADER + marshal.dumps(code))


@pytest.mark.parametrize("path", SAMPLE[:40], ids=lambda p: p.name)
def test_refcount_independent_and_equal_on_load(path: Path):
    code = compile(path.read_bytes(), path.name, "exec", dont_inherit=True)
    fresh = marshal.dumps(code)
    # A loads/dumps round trip changes refcounts, hence FLAG_REF marks.
    round_tripped = marshal.dumps(marshal.loads(fresh))
    a = _core.canonicalize_pyc(HEADER + fresh)
    b = _core.canonicalize_pyc(HEADER + round_tripped)
    assert a == b
    assert len(a) == len(HEADER) + len(fresh)
    assert marshal.loads(a[16:]) == code
    assert _core.canonicalize_pyc(a) == a  # idempotent


def test_identical_across_processes_and_hash_seeds(tmp_path: Path):
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from vega_dag.compile.bytecode import compile_source\n"
        "out = b''.join(compile_source(Path(p).read_bytes(), Path(p).name) for p in sys.argv[1:])\n"
        "sys.stdout.buffer.write(out)\n"
    )
    outputs = set()
    for seed in ("0", "1", "4242"):
        proc = run_python(
            f"import sys; sys.argv[1:] = {[str(p) for p in SAMPLE]!r}\n" + script,
            cwd=tmp_path,
            env={"PYTHONHASHSEED": seed},
        )
        outputs.add(proc.stdout)
    here = b"".join(compile_source(p.read_bytes(), p.name) for p in SAMPLE)
    outputs.add(here)
    assert len(outputs) == 1


def test_compiled_module_names_its_relative_path():
    pyc = compile_source(b"def f():\n    return 1\n", "lib/util.py")
    code = marshal.loads(pyc[16:])
    assert code.co_filename == "lib/util.py"
    assert pyc[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(pyc[4:8], "little") == 0b01  # unchecked hash-based (PEP 552)


def test_trailing_comment_compiles_to_identical_bytes():
    a = compile_source(b"x = 1  # one\n", "m.py")
    b = compile_source(b"x = 1  # two, longer\n", "m.py")
    assert a == b


@pytest.mark.parametrize(
    "data",
    [
        b"",
        HEADER[:10],
        HEADER + b"\xff",
        HEADER + marshal.dumps((1, 2))[:-1],
        b"\x00\x00\r\n" + HEADER[4:] + b"N",
    ],
    ids=["empty", "short-header", "unknown-type", "truncated", "bad-magic"],
)
def test_bad_bytecode_is_a_specific_error(data: bytes):
    with pytest.raises(BytecodeFormatError):
        _core.canonicalize_pyc(data)


def test_interpreter_is_supported():
    assert sys.version_info[:2] >= (3, 11)
    _core.canonicalize_pyc(HEADER + marshal.dumps(compile("pass", "m", "exec")))
