"""docs/configuration.md against config.py, in both directions.

The expected keys come from walking ``VegaConfig``'s msgspec schema, not from
a list kept here: a key added to config.py without its row in the reference,
a row for a key that does not exist, or a row whose type or default is not
config.py's fails one of these tests.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import msgspec
import msgspec.inspect as mi
import pytest

from tests.examples import REPO
from vega_dag.config import VegaConfig, load_config

DOCS = REPO / "docs"
REFERENCE = DOCS / "configuration.md"

#: A heading's backticked table name: `[tool.vega.health]`, `tool.vega.compile_steps[]`.
#: A table of tables (`per_route` → its tables) is named with `*`: `[tool.vega.per_route.*]`.
TABLE_NAME = re.compile(r"\[?(tool\.vega(?:\.\w+|\.\*)*(?:\[\])?)\]?")
#: A reference row: | `key` | type | default | meaning |
ROW = re.compile(r"\|\s*`(\w+)`\s*\|([^|]*)\|([^|]*)\|")


def schema_tables() -> dict[str, dict[str, mi.Field]]:
    """Table name ("tool.vega", "tool.vega.health", "tool.vega.compile_steps[]") → its fields."""
    tables: dict[str, dict[str, mi.Field]] = {}

    def structs_in(t: mi.Type, suffix: str = ""):
        if isinstance(t, mi.StructType):
            yield t, suffix
        elif isinstance(t, mi.UnionType):
            for member in t.types:
                yield from structs_in(member, suffix)
        elif isinstance(t, mi.ListType):
            yield from structs_in(t.item_type, suffix + "[]")
        elif isinstance(t, mi.DictType):
            yield from structs_in(t.value_type, suffix + ".*")

    def walk(name: str, struct: mi.StructType) -> None:
        tables[name] = {f.encode_name: f for f in struct.fields}
        for f in struct.fields:
            for sub, suffix in structs_in(f.type):
                walk(f"{name}.{f.encode_name}{suffix}", sub)

    walk("tool.vega", mi.type_info(VegaConfig))
    return tables


def documented_tables(text: str) -> dict[str, dict[str, tuple[str, str]]]:
    """Table name → key → (type cell, default cell), from the reference's headed tables."""
    tables: dict[str, dict[str, tuple[str, str]]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            names = [m[1] for t in re.findall(r"`([^`]+)`", line) if (m := TABLE_NAME.fullmatch(t))]
            current = names[-1] if names else None
            if current is not None:
                tables.setdefault(current, {})
        elif current is not None and (row := ROW.match(line)):
            tables[current][row[1]] = (row[2].strip(), row[3].strip())
    return tables


def toml_type(t: mi.Type) -> str:
    """A schema type in the reference's words (TOML's type names)."""
    if isinstance(t, mi.StrType):
        return "string"
    if isinstance(t, mi.BoolType):
        return "boolean"
    if isinstance(t, mi.IntType):
        return "integer"
    if isinstance(t, mi.FloatType):
        return "float"
    if isinstance(t, mi.StructType):
        return "table"
    if isinstance(t, mi.ListType):
        return f"array of {toml_type(t.item_type)}"
    if isinstance(t, mi.DictType):
        return f"table of {toml_type(t.value_type)}"
    if isinstance(t, mi.UnionType):
        return " or ".join(toml_type(m) for m in t.types if not isinstance(m, mi.NoneType))
    if isinstance(t, mi.AnyType) or (isinstance(t, mi.CustomType) and t.cls is object):
        return "any"
    raise AssertionError(f"no words for {t!r} yet: add them here and in the reference")


def documented_default(cell: str) -> object:
    """The value a default cell states: `"api"` (a TOML literal), unset (None), required."""
    if cell == "unset":
        return None
    if cell == "required":
        return msgspec.NODEFAULT
    literal = re.fullmatch(r"`([^`]+)`", cell)
    assert literal, f"a default is a TOML literal in backticks, 'unset' or 'required': {cell!r}"
    return tomllib.loads(f"v = {literal[1]}")["v"]


def schema_default(f: mi.Field) -> object:
    if f.required:
        return msgspec.NODEFAULT
    value = f.default_factory() if f.default is msgspec.NODEFAULT else f.default
    return msgspec.to_builtins(value)


@pytest.fixture(scope="module")
def documented() -> dict[str, dict[str, tuple[str, str]]]:
    return documented_tables(REFERENCE.read_text())


def test_every_key_in_config_py_is_documented(documented):
    missing = [
        f"{table}.{key}"
        for table, fields in schema_tables().items()
        for key in fields
        if key not in documented.get(table, {})
    ]
    assert not missing, f"keys of config.py without a row in {REFERENCE.name}: {missing}"


def test_every_documented_key_exists(documented):
    schema = schema_tables()
    unknown = [
        f"{table}.{key}"
        for table, rows in documented.items()
        for key in rows
        if key not in schema.get(table, {})
    ]
    assert not unknown, f"rows of {REFERENCE.name} that config.py does not have: {unknown}"
    assert set(documented) == set(schema), "documented tables differ from config.py's"


def test_documented_types_and_defaults_are_config_pys(documented):
    wrong = []
    for table, fields in schema_tables().items():
        for key, f in fields.items():
            if key not in documented.get(table, {}):
                continue  # reported by the test above
            type_cell, default_cell = documented[table][key]
            if type_cell != toml_type(f.type):
                wrong.append(f"{table}.{key}: type {type_cell!r}, config.py: {toml_type(f.type)!r}")
            if isinstance(f.type, mi.StructType):
                # A sub-table's default is its own section's defaults: the cell links to it.
                if f"`[{table}.{key}]`" not in default_cell:
                    wrong.append(f"{table}.{key}: the default cell should link `[{table}.{key}]`")
            elif documented_default(default_cell) != schema_default(f):
                wrong.append(
                    f"{table}.{key}: default {default_cell}, config.py: {schema_default(f)!r}"
                )
    assert not wrong, "\n".join(wrong)


def toml_blocks(path: Path) -> list[str]:
    return re.findall(r"^```toml\n(.*?)^```", path.read_text(), flags=re.M | re.S)


CONFIG_EXAMPLES = [
    pytest.param(block, id=f"{path.relative_to(REPO)}[{i}]")
    for path in [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
    for i, block in enumerate(toml_blocks(path))
    if "[tool.vega" in block
]


@pytest.mark.parametrize("block", CONFIG_EXAMPLES)
def test_documented_examples_load(block: str, tmp_path: Path):
    """Each ```toml example of [tool.vega] in the docs is accepted by load_config."""
    (tmp_path / "pyproject.toml").write_text(block)
    config = load_config(tmp_path)
    assert config.source == tmp_path / "pyproject.toml"


def test_the_complete_example_sets_every_key():
    (block,) = [b for b in toml_blocks(REFERENCE) if "[tool.vega.health]" in b]
    data = tomllib.loads(block)["tool"]["vega"]
    for table, fields in schema_tables().items():
        if table.endswith("[]"):
            continue  # compile_steps' tables have their own example
        section = data
        for part in table.split(".")[2:]:
            section = next(iter(section.values())) if part == "*" else section[part]
        assert set(fields) <= set(section), f"{table}: {set(fields) - set(section)} not shown"


def test_the_reference_parser_sees_every_table(documented):
    # Guards the parser itself: a heading it fails to read would hide rows.
    assert {"tool.vega", "tool.vega.health", "tool.vega.compile_steps[]"} <= set(documented)
    assert all(documented.values()), "a documented table without rows"
