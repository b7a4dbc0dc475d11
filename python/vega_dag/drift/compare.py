"""Compare the outputs of the drift builds with each other and with the store."""

from __future__ import annotations

from pathlib import Path

import msgspec

from vega_dag.drift.explain import bundle_diff, diffoscope, pyc_diff
from vega_dag.store.actions import ActionCache
from vega_dag.store.objects import CorruptObjectError, MissingObjectError, ObjectStore


class Drift(msgspec.Struct):
    """One output that is not the same under every set of conditions."""

    #: "module" (a compiled .pyc) or "bundle" (a route's archive)
    kind: str
    #: The module's source file, or the route pattern.
    name: str
    #: The source file: the module's, or the route's.
    file: str
    #: Build label ("a", "b", "store") -> output digest.
    outputs: dict[str, str]
    #: Source files whose compiled output differs (for a bundle: its entries').
    modules: list[str]
    #: A readable difference between the first two outputs that differ.
    difference: list[str]
    #: diffoscope's view of the same pair, when diffoscope is installed.
    diffoscope: list[str] | None = None


def _recorded(store: ObjectStore, actions: ActionCache, key: str) -> str | None:
    """The store's recorded output digest for action ``key``, if it holds the object."""
    digest = actions.get(key)
    return digest if digest is not None and store.has(digest) else None


def _store_copy(store: ObjectStore, digest: str, scratch: Path) -> Path | None:
    """The store's object ``digest`` (verified) as a file, for the diffs; None if damaged."""
    try:
        data = store.get(digest)
    except (MissingObjectError, CorruptObjectError):
        return None  # a damaged cache entry; the next build repairs it
    path = scratch / digest.removeprefix("blake3:")
    path.write_bytes(data)
    return path


def compare(
    results: dict[str, dict],
    store: ObjectStore,
    actions: ActionCache,
    scratch: Path,
) -> tuple[list[Drift], int]:
    """The drifting outputs, and how many outputs had a store record to compare with."""
    labels = list(results)
    first = results[labels[0]]
    drifts: list[Drift] = []
    with_store = 0
    drifting_modules: set[str] = set()
    for kind, section in (("module", "modules"), ("bundle", "bundles")):
        for name in sorted(first[section]):
            outputs: dict[str, str] = {}
            files: dict[str, Path] = {}
            for label in labels:
                entry = results[label][section][name]
                outputs[label] = entry["output"]
                files[label] = Path(entry["file"])
            recorded = _recorded(store, actions, first[section][name]["key"])
            if recorded is None and kind == "bundle" and store.is_tree(outputs[labels[0]]):
                # A rebuilt bundle whose entry names stayed is stored without
                # an action entry (bundle.bundles.patch_bundles): its digest is
                # its tree's, a function of the entries alone, so the store
                # holding it is the store recording it for these inputs.
                recorded = outputs[labels[0]]
            if recorded is not None:
                with_store += 1
                outputs["store"] = recorded
            if len(set(outputs.values())) == 1:
                continue
            # The first pair that differs: between builds, else build vs store.
            order = [*labels, "store"] if "store" in outputs else labels
            x = order[0]
            y = next(lbl for lbl in order[1:] if outputs[lbl] != outputs[x])
            if y == "store":
                # The store's bytes are read (and verified) only when they are needed.
                copy = _store_copy(store, outputs["store"], scratch)
                if copy is None:  # damaged: no record to compare with, and the builds agree
                    del outputs["store"]
                    with_store -= 1
                    continue
                files["store"] = copy
            data_x, data_y = files[x].read_bytes(), files[y].read_bytes()
            if kind == "module":
                difference = pyc_diff(data_x, data_y, x, y)
                modules = [name]
                drifting_modules.add(name)
                file = name
            else:
                members = first[section][name]["members"]
                known = {a for a, src in members.items() if src in drifting_modules}
                difference, modules = bundle_diff(data_x, data_y, x, y, members, known)
                file = first[section][name]["route_file"]
            drifts.append(
                Drift(
                    kind=kind,
                    name=name,
                    file=file,
                    outputs=outputs,
                    modules=sorted(set(modules)),
                    difference=difference,
                    diffoscope=diffoscope(files[x], files[y]),
                )
            )
    return drifts, with_store
