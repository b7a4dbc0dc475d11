"""A bisection's result as JSON (for machines) and Markdown (for the upgrade's review)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from vega_dag.toolchain.bisect import BisectResult


def to_json(result: BisectResult) -> str:
    return json.dumps(msgspec.to_builtins(result), indent=2, sort_keys=True) + "\n"


def to_markdown(result: BisectResult) -> str:
    name = Path(result.project).name
    lines = [f"# Toolchain bisection: {result.component} on {name}", ""]
    if result.first_drifting is None:
        lines.append(
            f"No version from {result.versions[1]} to {result.versions[-1]} changes any output "
            f"compared with the known-good {result.good}."
        )
    else:
        lines.append(
            f"First version whose outputs differ from the known-good {result.good}: "
            f"**{result.first_drifting}** (the last that does not: {result.last_same})."
        )
    lines += [
        "",
        f"{len(result.builds)} builds for {len(result.versions)} versions "
        f"(at most ⌈log2 {len(result.versions)}⌉ + 1 = {result.max_builds}), "
        f"{result.seconds:.1f}s in all.",
        "",
        "| version | built | outputs vs known-good | modules compiled | from cache | seconds |",
        "|---|---|---|---:|---:|---:|",
    ]
    built = {b.version: b for b in result.builds}
    for version in result.versions:
        b = built.get(version)
        if b is None:
            lines.append(f"| {version} | no | (not needed) | | | |")
            continue
        verdict = "known good" if version == result.good else ("differ" if b.differs else "same")
        lines.append(
            f"| {version} | yes | {verdict} | {b.modules_compiled} | {b.modules_cached} "
            f"| {b.seconds:.2f} |"
        )
    if result.first_drifting is not None:
        lines += [
            "",
            f"## Drifting outputs: {len(result.drifting_modules)} modules, "
            f"{len(result.drifting_bundles)} bundles",
            "",
            "Bundles: " + (", ".join(f"`{r}`" for r in result.drifting_bundles) or "none"),
        ]
        for m in result.drifting_modules:
            lines += ["", f"### `{m.path}`", ""]
            if not m.source_diff and not m.code_diff:
                lines.append("(not shown: see the JSON report's digests)")
                continue
            if m.source_diff:
                lines += ["Source after the compile steps:", "", "```diff", *m.source_diff, "```"]
            lines += ["", "Compiled code:", "", "```diff", *m.code_diff, "```"]
    return "\n".join(lines) + "\n"


def write_reports(result: BisectResult, prefix: Path) -> tuple[Path, Path]:
    """Write ``prefix.json`` and ``prefix.md``; return their paths."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    json_path = prefix.with_name(prefix.name + ".json")
    md_path = prefix.with_name(prefix.name + ".md")
    json_path.write_text(to_json(result))
    md_path.write_text(to_markdown(result))
    return json_path, md_path
