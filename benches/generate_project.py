#!/usr/bin/env python3
"""Generate synthetic file-routed API projects for vega-dag benchmarks.

    python benches/generate_project.py OUT_DIR --modules N [--seed S] [--force]

or, from Python::

    from generate_project import generate, touch_modules, touch_comment
    project = generate(Path("/tmp/p2000"), 2000, seed=0)
    touch_modules(project, 10, seed=1)     # real code changes
    touch_comment(project, 10, seed=1)     # comment-only changes

Shape of a generated project of N modules (every ``.py`` file counts):

* about 15% are routes under ``api/``: nested groups (``v1/``, ``admin/`` ...),
  ``index.py`` files and ``[param]`` dynamic segments, each exporting
  ``handler(request)`` that returns a dict;
* the rest are shared modules in packages (``lib/``, ``models/``,
  ``services/`` ... with nested subpackages, at most 50 modules each, plus one
  namespace package without ``__init__.py``). Each package has an
  ``__init__.py`` that re-exports a few names from a dependency-free leaf
  module (``constants.py``, ``errors.py`` ...);
* every shared module imports 2-6 others, mostly from earlier "layers", so the
  graph is mostly a DAG; about 10% of modules add one back-edge that closes a
  cycle of length 2 or 3. Imports mix ``import a.b``, ``import a.b as c``,
  ``from a import b``, ``from a.b import name``, relative ``from . import b``
  / ``from ..x.y import name``, imports inside functions and
  ``if TYPE_CHECKING:`` imports; each route imports 3-8 shared modules.

Cycles are kept importable by construction: an import that binds a *name*
(``from a.b import name``) is only emitted when the target is outside the
importer's strongly connected component; inside a component only module
imports are used, and imported modules are only dereferenced inside function
bodies. Package ``__init__`` files import only their dependency-free leaf.

Everything is derived from ``random.Random`` instances seeded with ints or
strings (no ``hash()``, no set iteration), so the same ``(modules, seed)``
always produces byte-identical trees.
"""

from __future__ import annotations

import argparse
import math
import random
import re
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

ROUTE_SHARE = 0.15
MIN_MODULES = 30
MAX_PACKAGE_MODULES = 50
TARGET_PACKAGE_MODULES = 36
MAX_SUBPACKAGES = 10
MAX_PACKAGE_DEPTH = 4
BACK_EDGE_MODULE_RATE = 1.0  # share of the eligible modules that get one
FUNCTION_IMPORT_RATE = 0.06
TYPE_CHECKING_RATE = 0.04
PACKAGE_DEP_WINDOW = 6

MARKER_TABLE = "[tool.vega-bench]"
TUNABLE_RE = re.compile(r"^(\s*factor = )(\d+)(  # vega-bench: tunable)$", re.MULTILINE)
REVISION_RE = re.compile(r"^# revision: (\d+)$", re.MULTILINE)

# (name, layer band): lower bands are imported by higher ones.
TOP_PACKAGES: tuple[tuple[str, int], ...] = (
    ("lib", 1),
    ("models", 2),
    ("services", 3),
    ("core", 0),
    ("utils", 0),
    ("storage", 2),
    ("integrations", 3),
    ("workflows", 4),
)
NAMESPACE_PACKAGE = ("plugins", 4)

SUBPACKAGE_WORDS: tuple[str, ...] = (
    "analytics", "auditing", "billing", "catalog", "checkout", "compliance", "experiments",
    "forecasting", "fulfillment", "geo", "identity", "inventory", "ledger", "logistics",
    "loyalty", "marketing", "media", "memberships", "messaging", "moderation", "onboarding",
    "partnerships", "payouts", "pricing", "procurement", "recommendations", "reporting",
    "returns", "scheduling", "search", "support", "taxation", "warehousing",
)  # fmt: skip
MODULE_NOUNS: tuple[str, ...] = (
    "accounts", "adapters", "aggregates", "alerts", "allocations", "analyzers", "archives",
    "assets", "balances", "batches", "bindings", "blobs", "budgets", "buffers", "builders",
    "buckets", "caches", "channels", "checkpoints", "claims", "clients", "codecs", "cohorts",
    "commands", "comments", "connectors", "contracts", "converters", "counters",
    "credentials", "cursors", "dashboards", "datasets", "decoders", "digests", "discounts",
    "documents", "drafts", "encoders", "endpoints", "entries", "estimates", "exports",
    "features", "feeds", "fields", "filters", "formatters", "gateways", "grants", "graphs",
    "handlers", "headers", "histories", "hooks", "indexes", "invoices", "issuers", "jobs",
    "journals", "labels", "ledgers", "limits", "links", "listings", "loaders", "locales",
    "mappers", "markers", "matchers", "members", "messages", "metrics", "migrations",
    "monitors", "notes", "offers", "outbox", "pages", "parsers", "partners", "payloads",
    "permissions", "pipelines", "policies", "pools", "previews", "prices", "probes",
    "profiles", "projections", "quotas", "ranking", "readers", "receipts", "records",
    "refunds", "regions", "registry", "reports", "resolvers", "retries", "reviews", "roles",
    "rules", "samplers", "scanners", "schedules", "schemas", "scores", "segments", "sessions",
    "settings", "shards", "shipments", "snapshots", "sources", "streams", "subscriptions",
    "summaries", "tags", "tasks", "templates", "tenants", "thresholds", "tickets",
    "timelines", "tokens", "tracking", "transfers", "transforms", "triggers", "usage",
    "validators", "vaults", "versions", "views", "votes", "webhooks", "widgets", "windows",
    "workers", "writers", "zones",
)  # fmt: skip
LEAF_NAMES: tuple[str, ...] = ("constants", "defaults", "errors", "common", "enums")
VERBS: tuple[str, ...] = (
    "normalize", "score", "bucket", "rank", "merge", "split", "encode", "decode", "estimate",
    "validate", "resolve", "compact", "expand", "limit", "measure", "shift", "blend",
    "project", "route", "sample",
)  # fmt: skip
CLASS_SUFFIXES: tuple[str, ...] = ("Record", "State", "Policy", "Snapshot", "Spec", "Summary")
ROUTE_GROUPS: tuple[str, ...] = (
    "", "v1", "admin", "v2", "internal", "partner", "public", "mobile", "ops", "beta", "legacy",
)  # fmt: skip
ROUTE_ACTIONS: tuple[str, ...] = (
    "history", "preview", "status", "approve", "archive", "comments", "summary",
    "attachments", "events", "audit", "restore", "duplicate",
)  # fmt: skip
ROUTE_STATICS: tuple[str, ...] = ("search", "stats", "bulk", "export", "recent", "schema")
DOC_SENTENCES: tuple[str, ...] = (
    "Keeps the {noun} logic in one place so routes stay thin.",
    "Pure helpers around {noun}; no I/O happens at import time.",
    "Computes derived values for {noun} from their raw inputs.",
    "Small, composable functions used when handling {noun}.",
    "Bookkeeping for {noun}, shared by several services.",
)
# Names bound inside generated function bodies; imports must never use them.
RESERVED_LOCALS = frozenset(
    {"value", "total", "seed", "payload", "step", "parts", "ordered", "text", "digest",
     "bucket", "table", "key", "other", "index", "request", "params", "raw", "name",
     "default", "limit", "factor", "shift", "cls", "self", "part", "window"}
)  # fmt: skip

_vocabularies = (SUBPACKAGE_WORDS, MODULE_NOUNS, LEAF_NAMES, tuple(n for n, _ in TOP_PACKAGES))
assert sum(len(v) for v in _vocabularies) == len({w for v in _vocabularies for w in v}), (
    "vocabularies overlap"
)
assert not set(MODULE_NOUNS) & RESERVED_LOCALS


# --------------------------------------------------------------------------- #
# Public result types
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class ImportEdge:
    """One import statement, as paths relative to the project root."""

    source: str
    target: str
    kind: str  # "top", "function" or "type_checking"


@dataclass
class GeneratedProject:
    root: Path
    modules: int
    seed: int
    routes: list[Path]  # absolute paths of route files, sorted
    shared: list[Path]  # absolute paths of shared modules (incl. __init__.py), sorted
    route_urls: dict[str, str]  # route file (relative posix path) -> URL pattern
    edges: list[ImportEdge]
    cycles: list[list[str]]  # strongly connected components (size > 1) of run-time imports

    @property
    def files(self) -> list[Path]:
        return [*self.routes, *self.shared]

    @property
    def touchable(self) -> list[Path]:
        """Shared modules that :func:`touch_modules` / :func:`touch_comment` may edit."""
        return [path for path in self.shared if path.name != "__init__.py"]


# --------------------------------------------------------------------------- #
# Internal model
# --------------------------------------------------------------------------- #


@dataclass(eq=False)
class _Package:
    parts: tuple[str, ...]
    band: int
    has_init: bool = True
    children: list[str] = field(default_factory=list)
    init: _Module | None = None
    leaf: _Module | None = None
    modules: list[_Module] = field(default_factory=list)

    @property
    def dotted(self) -> str:
        return ".".join(self.parts)

    @property
    def word(self) -> str:
        return self.parts[-1]


@dataclass(eq=False)
class _Module:
    kind: str  # "init", "leaf", "module" or "route"
    path: PurePosixPath
    dotted: str = ""  # import name; "" for routes
    package: _Package | None = None
    noun: str = ""
    constants: list[str] = field(default_factory=list)  # int-valued, importable
    functions: list[str] = field(default_factory=list)  # (int) -> int, importable
    class_name: str | None = None  # dataclass with from_value(int) and score()
    imports: list[_Import] = field(default_factory=list)
    url: str = ""
    scc: int = -1


@dataclass(eq=False)
class _Import:
    target: _Module
    kind: str  # "top", "function" or "type_checking"
    form: str = ""  # how it was written; set while rendering


NAME_FORMS = frozenset({"from_names", "relative_names"})


# --------------------------------------------------------------------------- #
# Small helpers
# --------------------------------------------------------------------------- #


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(("sses", "xes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _article(word: str) -> str:
    return f"an {word}" if word[:1] in "aeiou" else f"a {word}"


def _sorted_imports(statements: list[str]) -> list[str]:
    """isort-like order: absolute imports first, then relative ones."""
    return sorted(
        statements, key=lambda line: (line.split()[1].startswith("."), line.split()[1], line)
    )


def _camel(word: str) -> str:
    return "".join(part.capitalize() for part in word.split("_"))


def _module_rng(seed: int, name: str) -> random.Random:
    return random.Random(f"{seed}:{name}")


def _common_prefix(a: Sequence[str], b: Sequence[str]) -> int:
    count = 0
    for left, right in zip(a, b, strict=False):
        if left != right:
            break
        count += 1
    return count


def _strongly_connected(nodes: list[_Module]) -> None:
    """Tarjan's algorithm over run-time ("top") imports between regular modules."""
    index_of: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[_Module] = []
    counter = 0
    component = 0

    def successors(module: _Module) -> list[_Module]:
        return [
            imp.target
            for imp in module.imports
            if imp.kind == "top" and imp.target.kind == "module"
        ]

    for root in nodes:
        if id(root) in index_of:
            continue
        work: list[tuple[_Module, int]] = [(root, 0)]
        while work:
            node, child_index = work.pop()
            if child_index == 0:
                index_of[id(node)] = low[id(node)] = counter
                counter += 1
                stack.append(node)
                on_stack.add(id(node))
            children = successors(node)
            if child_index < len(children):
                work.append((node, child_index + 1))
                child = children[child_index]
                if id(child) not in index_of:
                    work.append((child, 0))
                elif id(child) in on_stack:
                    low[id(node)] = min(low[id(node)], index_of[id(child)])
                continue
            if low[id(node)] == index_of[id(node)]:
                while True:
                    member = stack.pop()
                    on_stack.discard(id(member))
                    member.scc = component
                    if member is node:
                        break
                component += 1
            if work:
                parent = work[-1][0]
                low[id(parent)] = min(low[id(parent)], low[id(node)])


# --------------------------------------------------------------------------- #
# Planning: packages, modules, routes, imports
# --------------------------------------------------------------------------- #


def _plan_packages(rng: random.Random, shared_count: int) -> list[_Package]:
    total = max(3, math.ceil(shared_count / TARGET_PACKAGE_MODULES))
    top_count = min(len(TOP_PACKAGES), max(3, total // 2))
    packages = [_Package((name,), band) for name, band in TOP_PACKAGES[:top_count]]
    remaining = total - top_count
    if remaining >= 2:
        packages.append(_Package((NAMESPACE_PACKAGE[0],), NAMESPACE_PACKAGE[1], has_init=False))
        remaining -= 1
    for _ in range(remaining):
        parents = [
            p for p in packages
            if p.has_init and len(p.parts) < MAX_PACKAGE_DEPTH and len(p.children) < MAX_SUBPACKAGES
        ]  # fmt: skip
        if not parents:
            raise ValueError("project too large for the package vocabulary")
        parent = rng.choices(parents, weights=[1.0 / len(p.parts) ** 3 for p in parents])[0]
        word = rng.choice(
            [w for w in SUBPACKAGE_WORDS if w not in parent.children and w != parent.word]
        )
        parent.children.append(word)
        packages.append(_Package((*parent.parts, word), parent.band))
    return sorted(packages, key=lambda p: (p.band, p.parts))


def _distribute(rng: random.Random, packages: list[_Package], shared_count: int) -> list[int]:
    """How many regular modules each package gets (besides __init__ and leaf)."""
    overhead = [2 if p.has_init else 1 for p in packages]
    regular_total = shared_count - sum(overhead)
    if regular_total < len(packages):
        raise ValueError(f"{shared_count} shared modules are too few for {len(packages)} packages")
    capacity = [MAX_PACKAGE_MODULES - o for o in overhead]
    weights = [rng.uniform(0.5, 1.5) for _ in packages]
    scale = (regular_total - len(packages)) / sum(weights)
    counts = [min(cap, 1 + int(w * scale)) for w, cap in zip(weights, capacity, strict=True)]
    order = list(range(len(packages)))
    rng.shuffle(order)
    position = 0
    while sum(counts) < regular_total:
        slot = order[position % len(order)]
        if counts[slot] < capacity[slot]:
            counts[slot] += 1
        position += 1
        if position > 10 * len(order) * MAX_PACKAGE_MODULES:
            raise ValueError("not enough package capacity")
    return counts


def _plan_shared(
    seed: int, rng: random.Random, shared_count: int
) -> tuple[list[_Package], list[_Module]]:
    packages = _plan_packages(rng, shared_count)
    counts = _distribute(rng, packages, shared_count)
    ranked: list[_Module] = []  # leaves and regular modules in layer order
    for package, count in zip(packages, counts, strict=True):
        base = PurePosixPath(*package.parts)
        word = package.word
        leaf_name = rng.choice(LEAF_NAMES)
        leaf = _Module(
            "leaf",
            base / f"{leaf_name}.py",
            dotted=f"{package.dotted}.{leaf_name}",
            package=package,
            noun=word,
            constants=[f"{word.upper()}_MAX_ITEMS", f"{word.upper()}_TIMEOUT_MS"],
            functions=[f"clamp_{word}"],
        )
        package.leaf = leaf
        ranked.append(leaf)
        if package.has_init:
            exported = rng.sample([*leaf.constants, *leaf.functions], rng.randint(1, 3))
            init = _Module(
                "init",
                base / "__init__.py",
                dotted=package.dotted,
                package=package,
                noun=word,
                constants=[n for n in exported if n.isupper()],
                functions=[n for n in exported if not n.isupper()],
            )
            init.imports.append(_Import(leaf, "top"))
            package.init = init
        nouns = rng.sample(MODULE_NOUNS, min(count, len(MODULE_NOUNS)))
        nouns += [f"{rng.choice(MODULE_NOUNS)}_{n}" for n in range(2, 2 + count - len(nouns))]
        for noun in nouns:
            mrng = _module_rng(seed, f"{package.dotted}.{noun}")
            single = _singular(noun.split("_")[0])
            verbs = mrng.sample(VERBS, mrng.randint(2, 7))
            module = _Module(
                "module",
                base / f"{noun}.py",
                dotted=f"{package.dotted}.{noun}",
                package=package,
                noun=noun,
                constants=[f"{noun.upper()}_LIMIT", f"{noun.upper()}_WINDOW"],
                functions=[f"{verb}_{single}" for verb in verbs],
                class_name=_camel(single) + mrng.choice(CLASS_SUFFIXES),
            )
            package.modules.append(module)
            ranked.append(module)
    return packages, ranked


def _plan_routes(rng: random.Random, route_count: int) -> list[_Module]:
    routes: list[_Module] = [_Module("route", PurePosixPath("api/index.py"), url="/api")]
    resources = list(MODULE_NOUNS)
    rng.shuffle(resources)
    groups: list[str] = list(ROUTE_GROUPS)
    for first in ROUTE_GROUPS[1:]:
        groups += [f"{first}/{second}" for second in ROUTE_GROUPS[1:] if second != first]
    for group in groups:
        for resource in resources:
            if len(routes) >= route_count:
                return routes[:route_count]
            base = (
                PurePosixPath("api", *group.split("/"), resource)
                if group
                else PurePosixPath("api", resource)
            )
            param = f"{_singular(resource)}_id" if rng.random() < 0.8 else "slug"
            files = ["index.py"]
            actions = rng.sample(ROUTE_ACTIONS, rng.choice((0, 0, 1, 2, 3)))
            if actions:
                files.append(f"[{param}]/index.py")
                files += [f"[{param}]/{action}.py" for action in actions]
                if rng.random() < 0.15:
                    files.append(f"[{param}]/{rng.choice(MODULE_NOUNS)}/[item_id].py")
            elif rng.random() < 0.85:
                files.append(f"[{param}].py")
            files += [f"{s}.py" for s in rng.sample(ROUTE_STATICS, rng.choice((0, 0, 1, 2)))]
            for name in files:
                path = base / name
                segments = [p.removesuffix(".py") for p in path.parts[1:]]
                if segments[-1] == "index":
                    segments.pop()
                url = "/api/" + "/".join(
                    "{" + s[1:-1] + "}" if s.startswith("[") else s for s in segments
                )
                routes.append(_Module("route", path, url=url.rstrip("/")))
    if len(routes) < route_count:
        raise ValueError("project too large for the route vocabulary")
    return routes[:route_count]


def _plan_imports(
    rng: random.Random, packages: list[_Package], ranked: list[_Module], routes: list[_Module]
) -> None:
    regular = [m for m in ranked if m.kind == "module"]
    position = {id(m): i for i, m in enumerate(regular)}
    inits = [p.init for p in packages if p.init is not None]
    leaves = [p.leaf for p in packages if p.leaf is not None]

    def pick_kind(target: _Module) -> str:
        roll = rng.random()
        if roll < FUNCTION_IMPORT_RATE:
            return "function"
        if roll < FUNCTION_IMPORT_RATE + TYPE_CHECKING_RATE and target.class_name:
            return "type_checking"
        return "top"

    # Each package depends on its parent package and one or two packages just
    # before it (same layer or lower); modules reach outside their package
    # only into those. This keeps a route's import closure to a few packages,
    # as in real services, instead of most of the project.
    deps_of: dict[int, list[_Package]] = {}
    for i, pkg in enumerate(packages):
        parent = [q for q in packages[:i] if q.parts == pkg.parts[:-1] and rng.random() < 0.5]
        window = [
            q
            for q in packages[max(0, i - PACKAGE_DEP_WINDOW) : i]
            if q not in parent and q.parts[:-1] == pkg.parts[:-1]
        ]
        extra = rng.sample(window, min(len(window), rng.randint(0, 1)))
        deps_of[id(pkg)] = parent + extra

    bands = sorted({p.band for p in packages})
    leaves_by_band = {b: [m for m in leaves if m.package and m.package.band <= b] for b in bands}
    inits_by_band = {b: [m for m in inits if m.package and m.package.band <= b] for b in bands}
    importers: dict[int, list[_Module]] = {}
    for module in regular:
        package = module.package
        assert package is not None and package.leaf is not None
        index = position[id(module)]
        siblings = [m for m in package.modules if position[id(m)] < index]
        # Cross-package shortcuts (dependency-free leaves, package inits) stay
        # in the module's own top-level domain, plus the top-level packages.
        lower_leaves = [
            m for m in leaves_by_band[package.band]
            if m.package and (m.package.parts[0] == package.parts[0] or len(m.package.parts) == 1)
        ]  # fmt: skip
        lower_inits = [
            m for m in inits_by_band[package.band]
            if m.package and (m.package.parts[0] == package.parts[0] or len(m.package.parts) == 1)
        ]  # fmt: skip
        wanted = rng.randint(2, 6)
        chosen: list[_Module] = []
        for _ in range(wanted * 6):
            if len(chosen) >= wanted:
                break
            roll = rng.random()
            if roll < 0.40 and siblings:
                target = rng.choice(siblings)
            elif roll < 0.50:
                target = package.leaf if rng.random() < 0.6 else rng.choice(lower_leaves)
            elif roll < 0.55 and lower_inits:
                target = rng.choice(lower_inits)
            elif index > 0:
                pool = [
                    m
                    for dep in deps_of[id(package)]
                    for m in dep.modules
                    if m.kind == "module" and position[id(m)] < index
                ]
                target = rng.choice(pool) if pool else rng.choice(lower_leaves)
            else:
                target = rng.choice(lower_leaves)
            if target is module or any(t is target for t in chosen):
                continue
            chosen.append(target)
        for target in chosen:
            module.imports.append(_Import(target, pick_kind(target)))
            if target.kind == "module":
                importers.setdefault(id(target), []).append(module)

    # Back-edges: close a cycle of length 2 (u -> v -> u) or 3 (u -> w -> v -> u).
    # Only when v is u's sole importer (and w v's), and none of them is in a
    # cycle yet: then the new strongly connected component is exactly the
    # chain, so cycles stay small instead of merging into one giant component.
    in_cycle: set[int] = set()
    for module in regular:
        if rng.random() >= BACK_EDGE_MODULE_RATE or id(module) in in_cycle:
            continue
        chain = [module]
        length = 2 if rng.random() < 0.6 else 3
        while len(chain) < length:
            above = importers.get(id(chain[-1]), [])
            if len(above) != 1 or id(above[0]) in in_cycle:
                break
            chain.append(above[0])
        if len(chain) < 2:
            continue
        target = chain[-1]
        module.imports.append(_Import(target, "top" if rng.random() < 0.75 else "function"))
        importers.setdefault(id(target), []).append(module)
        in_cycle.update(id(m) for m in chain)

    # A route belongs to one "home" package, mostly in the upper layers
    # (services, workflows), and imports from them and what they depend on.
    homes_pool = [p for p in packages if any(m.kind == "module" for m in p.modules)]
    weights = [1.0 + p.band for p in homes_pool]
    for route in routes:
        homes = {id(h): h for h in rng.choices(homes_pool, weights=weights, k=1)}
        near = [m for h in homes.values() for m in h.modules if m.kind == "module"]
        around = [
            m
            for h in homes.values()
            for d in deps_of[id(h)]
            for m in d.modules
            if m.kind == "module"
        ]
        wanted = rng.randint(3, 8)
        chosen = []
        for _ in range(wanted * 6):
            if len(chosen) >= wanted:
                break
            roll = rng.random()
            if roll < 0.70:
                target = rng.choice(near)
            elif roll < 0.90 and around:
                target = rng.choice(around)
            else:
                target = rng.choice(inits) if inits else rng.choice(near)
            if not any(t is target for t in chosen):
                chosen.append(target)
        route.imports = [_Import(t, pick_kind(t)) for t in chosen]


# --------------------------------------------------------------------------- #
# Rendering
# --------------------------------------------------------------------------- #


class _Namespace:
    """Top-level names bound in one generated module, with conflict aliasing."""

    def __init__(self, reserved: list[str]) -> None:
        self.bound: dict[str, str] = dict.fromkeys(reserved, "own")

    def bind(self, name: str, origin: str, prefix: str) -> str:
        """Bind ``name`` (or an alias of it); return the name to use in code."""
        if self.bound.get(name, origin) == origin and name not in RESERVED_LOCALS:
            self.bound[name] = origin
            return name
        if name[:1].isupper() and not name.isupper():
            candidate = _camel(prefix) + name
        elif name.isupper():
            candidate = f"{prefix.upper()}_{name}"
        else:
            candidate = f"{prefix}_{name}"
        number = 2
        alias = candidate
        while alias in self.bound or alias in RESERVED_LOCALS:
            alias = f"{candidate}_{number}"
            number += 1
        self.bound[alias] = origin
        return alias


def _relative_base(source: _Module, target_package: _Package) -> str | None:
    """``from <this> import ...`` prefix reaching ``target_package`` relatively."""
    if source.package is None:
        return None
    own = source.package.parts
    other = target_package.parts
    common = _common_prefix(own, other)
    if common == 0:
        return None
    level = len(own) - common + 1
    if level > 3:
        return None
    return "." * level + ".".join(other[common:])


def _join_relative(base: str, name: str) -> str:
    return base + name if base.endswith(".") else f"{base}.{name}"


@dataclass
class _Rendered:
    statements: list[str] = field(default_factory=list)  # top-level import lines
    checking: list[str] = field(default_factory=list)  # under `if TYPE_CHECKING:`
    uses: list[str] = field(default_factory=list)  # int expressions of `seed`
    lazy: list[list[str]] = field(default_factory=list)  # functions with deferred imports
    hooks: list[list[str]] = field(default_factory=list)  # functions typed via TYPE_CHECKING
    name_imports: list[tuple[str, str]] = field(default_factory=list)  # (kind, bound name)


def _usage(rng: random.Random, ref: str, target: _Module) -> str:
    """An int expression using ``ref`` (a module reference) and ``seed``."""
    choices = [f"{ref}.{f}(seed)" for f in target.functions]
    choices += [f"{ref}.{c}" for c in target.constants[:1]]
    if target.class_name:
        choices.append(f"{ref}.{target.class_name}.from_value(seed).score()")
    return rng.choice(choices)


def _render_imports(rng: random.Random, module: _Module, names: _Namespace) -> _Rendered:
    out = _Rendered()
    lazy_counter = 0
    for imp in module.imports:
        target = imp.target
        assert target.package is not None
        prefix = target.package.word
        relative = _relative_base(module, target.package) if module.kind != "route" else None
        if imp.kind == "type_checking":
            assert target.class_name
            bound = names.bind(target.class_name, target.dotted + ":" + target.class_name, prefix)
            alias = "" if bound == target.class_name else f" as {bound}"
            source = target.dotted
            if relative is not None and rng.random() < 0.4:
                source = _join_relative(relative, target.path.stem)
            out.checking.append(f"from {source} import {target.class_name}{alias}")
            imp.form = "type_checking"
            single = _singular(target.noun.split("_")[0])
            hook = f"attach_{single}"
            while hook in names.bound:
                hook += "_x"
            names.bound[hook] = "own"
            out.hooks.append(
                [
                    f"def {hook}(other: {bound} | None = None) -> int:",
                    '    """Typed hook; its import exists only for type checkers."""',
                    "    return 0 if other is None else other.score()",
                ]
            )
            continue
        if imp.kind == "function":
            lazy_counter += 1
            helper = f"load_{prefix}_{target.path.stem}"
            while helper in names.bound:
                helper += "_x"
            names.bound[helper] = "own"
            parent, _, leaf_name = target.dotted.rpartition(".")
            if target.kind == "init" or rng.random() < 0.5:
                symbol = rng.choice([*target.functions, *target.constants])
                statement = f"from {target.dotted} import {symbol}"
                expr = f"{symbol}(value)" if symbol in target.functions else f"{symbol} + value"
            else:
                statement = f"from {parent} import {leaf_name}"
                expr = f"{leaf_name}.{rng.choice(target.functions)}(value)"
            out.lazy.append(
                [
                    f"def {helper}(value: int) -> int:",
                    '    """Deferred import: only this code path needs it."""',
                    f"    {statement}",
                    "",
                    f"    return {expr} + {rng.randint(1, 9)}",
                ]
            )
            out.uses.append(f"{helper}(seed)")
            imp.form = "function"
            continue

        # A run-time import at module level.
        same_component = (
            module.kind == "module" and target.kind == "module" and module.scc == target.scc
        )
        forms = ["import", "import_as", "from_module"] if target.kind != "init" else []
        weights = [15, 5, 25] if target.kind != "init" else []
        if relative is not None and target.kind != "init":
            forms.append("relative_module")
            weights.append(15)
        if not same_component:
            forms.append("from_names")
            weights.append(40)
            if relative is not None:
                forms.append("relative_names")
                weights.append(20)
        form = rng.choices(forms, weights=weights)[0]
        imp.form = form
        parent, _, leaf_name = target.dotted.rpartition(".")
        if form == "import":
            top = target.dotted.split(".")[0]
            if names.bound.get(top, "package") == "package" and top not in RESERVED_LOCALS:
                names.bound[top] = "package"
                out.statements.append(f"import {target.dotted}")
                out.uses.append(_usage(rng, target.dotted, target))
                continue
            form = imp.form = "import_as"
        if form == "import_as":
            alias = names.bind(f"{prefix}_{leaf_name}", target.dotted, "mod")
            out.statements.append(f"import {target.dotted} as {alias}")
            out.uses.append(_usage(rng, alias, target))
        elif form in ("from_module", "relative_module"):
            source = parent if form == "from_module" else (relative or parent)
            bound = names.bind(leaf_name, target.dotted, prefix)
            alias = "" if bound == leaf_name else f" as {bound}"
            out.statements.append(f"from {source} import {leaf_name}{alias}")
            out.uses.append(_usage(rng, bound, target))
        else:
            source = target.dotted
            if form == "relative_names" and relative is not None:
                source = relative if target.kind == "init" else _join_relative(relative, leaf_name)
            pool = [*target.functions, *target.constants]
            if target.class_name:
                pool.append(target.class_name)
            picked = rng.sample(pool, min(len(pool), rng.randint(1, 3)))
            parts = []
            for symbol in picked:
                bound = names.bind(symbol, f"{target.dotted}:{symbol}", prefix)
                parts.append(symbol if bound == symbol else f"{symbol} as {bound}")
                if symbol in target.functions:
                    out.uses.append(f"{bound}(seed)")
                    out.name_imports.append(("function", bound))
                elif symbol == target.class_name:
                    out.uses.append(f"{bound}.from_value(seed).score()")
                    out.name_imports.append(("class", bound))
                else:
                    out.uses.append(bound)
                    out.name_imports.append(("constant", bound))
            out.statements.append(f"from {source} import {', '.join(parts)}")
    return out


def _pure_function(
    rng: random.Random, name: str, limit: str, window: str
) -> tuple[list[str], set[str]]:
    """A plausible (int) -> int helper and the stdlib modules it needs."""
    subject = name.split("_", 1)[1].replace("_", " ")
    variant = rng.randrange(7)
    a, b, mod = rng.randint(3, 97), rng.randint(1, 50), rng.choice((997, 1009, 4093, 65521))
    needs: set[str] = set()
    if variant == 0:
        body = [
            f'"""Fold ``value`` through a short linear recurrence ({subject})."""',
            "total = value",
            f"for step in range({window}):",
            f"    total = (total * {a} + step) % {mod}",
            "return total",
        ]
    elif variant == 1:
        needs = {"hashlib"}
        body = [
            f'"""Stable pseudo-random bucket for {_article(subject)}."""',
            f'key = f"{subject}:{{value}}".encode()',
            "digest = hashlib.blake2s(key, digest_size=4).digest()",
            f'return int.from_bytes(digest, "big") % max(1, {limit})',
        ]
    elif variant == 2:
        body = [
            f'"""Clamp and quantise {_article(subject)} value."""',
            "if value < 0:",
            "    return 0",
            f"if value > {limit}:",
            f"    value %= {limit}",
            f"bucket = value // {a}",
            f"return bucket * {a} + {b}",
        ]
    elif variant == 3:
        body = [
            f'"""Byte-wise weighting of {_article(subject)}."""',
            "parts = [value >> shift & 0xFF for shift in (0, 8, 16, 24)]",
            f"ordered = sorted(parts, reverse={rng.choice(('True', 'False'))})",
            f"return sum(part * (index + {b}) for index, part in enumerate(ordered))",
        ]
    elif variant == 4:
        needs = {"re"}
        body = [
            f'"""Count word tokens in the rendered {subject}."""',
            f'text = "{subject.replace(" ", "-")}-" + "-".join(str(value + n) for n in range(3))',
            f"return len(_WORD_RE.findall(text)) * {a} + value % {b + 1}",
        ]
    elif variant == 5:
        needs = {"math"}
        body = [
            f'"""Square-root damping for large {subject} values."""',
            f"return int(math.sqrt(abs(value)) * {a}) % {mod} + {b}",
        ]
    else:
        weights = ", ".join(
            f'"{k}": {rng.randint(1, 40)}' for k in ("alpha", "beta", "gamma", "delta")
        )
        body = [
            f'"""Look up the weight class of {_article(subject)}."""',
            f"table = {{{weights}}}",
            'key = ("alpha", "beta", "gamma", "delta")[value % 4]',
            f"return table[key] * (value % {mod}) + {b}",
        ]
    return [f"def {name}(value: int) -> int:", *(f"    {line}" for line in body)], needs


def _render_leaf(rng: random.Random, leaf: _Module) -> str:
    word = leaf.noun
    upper, camel = word.upper(), _camel(word)
    package = leaf.package.dotted if leaf.package else word
    labels = ", ".join(
        f'"{w}"' for w in rng.sample(("alpha", "beta", "gamma", "delta", "eps", "zeta"), 3)
    )
    lines = [
        f'"""Constants and errors shared by the ``{package}`` package.',
        "",
        "Dependency-free on purpose: the package ``__init__`` re-exports from here.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "# revision: 0",
        "",
        f"{upper}_MAX_ITEMS = {rng.randint(50, 500)}",
        f"{upper}_TIMEOUT_MS = {rng.choice((250, 500, 1000, 2500, 5000))}",
        f"{upper}_LABELS = ({labels})",
        f"{upper}_ENABLED = {rng.choice(('True', 'False'))}",
        "",
        "",
        f"class {camel}Error(Exception):",
        f'    """Base error of the {word} package."""',
        "",
        f'    code = "{word}_error"',
        "",
        "    def __init__(self, message: str, *, retryable: bool = False) -> None:",
        "        super().__init__(message)",
        "        self.retryable = retryable",
        "",
        "",
        f"class {camel}NotFound({camel}Error):",
        f'    code = "{word}_not_found"',
        "",
        "",
        f"def clamp_{word}(value: int) -> int:",
        '    """Clamp ``value`` into the accepted range."""',
        f"    factor = {rng.randint(2, 97)}  # vega-bench: tunable",
        "    if value < 0:",
        "        return 0",
        f"    return min(value * factor, {upper}_MAX_ITEMS * 100)",
    ]
    return "\n".join(lines) + "\n"


def _render_init(rng: random.Random, init: _Module) -> str:
    package = init.package
    assert package is not None and package.leaf is not None
    exported = [*init.constants, *init.functions]
    flags = rng.sample(
        ("async_io", "batching", "caching", "dry_run", "metrics", "strict", "tracing"), 3
    )
    submodules = sorted(m.path.stem for m in package.modules)[:6]
    all_names = ", ".join(f'"{name}"' for name in exported)
    submodule_names = "".join(f'"{name}", ' for name in submodules).rstrip()
    lines = [
        f'"""The ``{package.dotted}`` package ({package.word}).',
        "",
        "Submodules are imported explicitly by their users; only a few",
        "dependency-free names are re-exported here, so importing the package",
        "stays cheap and never triggers an import cycle.",
        '"""',
        "",
        "from __future__ import annotations",
        "",
        f"from .{package.leaf.path.stem} import {', '.join(exported)}",
        "",
        f"__all__ = [{all_names}]",
        f'__version__ = "{rng.randint(0, 3)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"',
        "",
        "FEATURE_FLAGS: dict[str, bool] = {",
        *(f'    "{flag}": {rng.choice(("True", "False"))},' for flag in flags),
        "}",
        f"SUBMODULES: tuple[str, ...] = ({submodule_names})",
        "",
        "",
        "def package_info() -> dict[str, object]:",
        '    """Describe the package for diagnostics endpoints."""',
        "    return {",
        '        "name": __name__,',
        '        "version": __version__,',
        '        "exports": list(__all__),',
        '        "flags": {name: on for name, on in sorted(FEATURE_FLAGS.items()) if on},',
        "    }",
        "",
        "",
        "def enabled(flag: str) -> bool:",
        '    """Whether ``flag`` is switched on for this package."""',
        "    return FEATURE_FLAGS.get(flag, False)",
    ]
    return "\n".join(lines) + "\n"


def _render_module(seed: int, module: _Module) -> str:
    rng = _module_rng(seed, module.dotted + ":body")
    assert module.package is not None and module.class_name
    upper = module.noun.upper()
    limit, window = module.constants
    own = [
        *module.constants,
        *module.functions,
        module.class_name,
        "run",
        "logger",
        "_WORD_RE",
        "annotations",
    ]
    names = _Namespace(
        [*own, "dataclasses", "hashlib", "logging", "math", "re", "TYPE_CHECKING", "Any"]
    )
    rendered = _render_imports(rng, module, names)

    stdlib = {"dataclasses", "logging"}
    bodies: list[list[str]] = []
    tunable = module.functions[0]
    bodies.append(
        [
            f"def {tunable}(value: int) -> int:",
            '    """Weight ``value`` by the module\'s tuning factor."""',
            f"    factor = {rng.randint(2, 97)}  # vega-bench: tunable",
            f"    return (value * factor + {limit}) % {rng.choice((1009, 4093, 65521))}",
        ]
    )
    for name in module.functions[1:]:
        body, needs = _pure_function(rng, name, limit, window)
        bodies.append(body)
        stdlib |= needs

    base_class = next((b for kind, b in rendered.name_imports if kind == "class"), None)
    base = base_class if base_class and rng.random() < 0.3 else None
    derived_constant = next((b for kind, b in rendered.name_imports if kind == "constant"), None)
    limit_value = (
        f"{derived_constant} + {rng.randint(1, 50)}"
        if derived_constant
        else str(rng.randint(50, 900))
    )
    single = _singular(module.noun.split("_")[0])
    doc = rng.choice(DOC_SENTENCES).format(noun=module.noun.replace("_", " "))

    lines = [f'"""{_camel(single)} helpers for ``{module.package.dotted}``.', "", doc, '"""', ""]
    lines += ["from __future__ import annotations", "", "# revision: 0", ""]
    std_lines = [f"import {name}" for name in sorted(stdlib)]
    typing_names = ["TYPE_CHECKING", "Any"] if rendered.checking else ["Any"]
    lines += [*std_lines, f"from typing import {', '.join(typing_names)}", ""]
    if rendered.statements:
        lines += [*_sorted_imports(rendered.statements), ""]
    if rendered.checking:
        lines += ["if TYPE_CHECKING:", *(f"    {s}" for s in rendered.checking), ""]
    lines += ["logger = logging.getLogger(__name__)", ""]
    lines += [
        f"{limit} = {limit_value}",
        f"{window} = {rng.randint(3, 24)}",
        f'{upper}_PREFIX = "{single[:4]}"',
    ]
    if "re" in stdlib:
        lines.append('_WORD_RE = re.compile(r"[a-z]+")')
    lines += ["", ""]
    mod = rng.choice((997, 1009, 4093))
    lines += [
        "@dataclasses.dataclass",
        f"class {module.class_name}{f'({base})' if base else ''}:",
        f'    """One {single.replace("_", " ")} as seen by ``{module.dotted}``."""',
        "",
        '    key: str = ""',
        "    weight: int = 1",
        "    tags: list[str] = dataclasses.field(default_factory=list)",
        "",
        "    def score(self) -> int:",
        f"        base = sum(ord(ch) for ch in self.key) % {mod}",
        "        return base * self.weight + len(self.tags)",
        "",
        "    def label(self) -> str:",
        f'        return f"{{{upper}_PREFIX}}:{{self.key}}:{{self.weight}}"',
        "",
        "    @classmethod",
        f"    def from_value(cls, value: int) -> {module.class_name}:",
        f'        return cls(key=f"{single}-{{value}}", weight=value % {rng.randint(3, 11)} + 1)',
    ]
    for body in [*bodies, *rendered.lazy, *rendered.hooks]:
        lines += ["", "", *body]
    lines += [
        "",
        "",
        "def run(payload: dict[str, Any]) -> dict[str, Any]:",
        '    """Combine this module\'s helpers with those of its dependencies."""',
        '    seed = int(payload.get("seed", 0)) % 1000',
        f"    total = {tunable}(seed)",
    ]
    lines += [f"    total += {expr}" for expr in rendered.uses]
    lines += [f"    total += {name}(seed)" for name in module.functions[1:3]]
    lines += [
        f'    logger.debug("%s total=%d", "{module.dotted}", total)',
        f"    label = {module.class_name}.from_value(seed).label()",
        f'    return {{"module": "{module.dotted}", "total": total, "label": label}}',
    ]
    return "\n".join(lines) + "\n"


def _render_route(seed: int, route: _Module) -> str:
    rng = _module_rng(seed, str(route.path) + ":body")
    names = _Namespace(["ROUTE", "DEFAULT_LIMIT", "CACHE_SECONDS", "handler", "_query_int", "Any",
                        "TYPE_CHECKING", "annotations"])  # fmt: skip
    rendered = _render_imports(rng, route, names)
    method = (
        rng.choice(("GET", "GET", "GET", "POST", "PATCH", "DELETE")) if "{" in route.url else "GET"
    )
    lines = [
        f'"""{method} {route.url} (synthetic route)."""',
        "",
        "from __future__ import annotations",
        "",
    ]
    lines += ["# revision: 0", ""]
    typing_names = ["TYPE_CHECKING", "Any"] if rendered.checking else ["Any"]
    lines += [f"from typing import {', '.join(typing_names)}", ""]
    if rendered.statements:
        lines += [*_sorted_imports(rendered.statements), ""]
    if rendered.checking:
        lines += ["if TYPE_CHECKING:", *(f"    {s}" for s in rendered.checking), ""]
    lines += [
        f'ROUTE = "{route.url}"',
        f"DEFAULT_LIMIT = {rng.choice((10, 20, 25, 50))}",
        f"CACHE_SECONDS = {rng.choice((0, 5, 30, 60, 300))}",
        "",
        "",
        "def _query_int(request: Any, name: str, default: int) -> int:",
        '    raw = request.query.get(name, "")',
        "    return int(raw) if raw.isdigit() else default",
    ]
    for body in [*rendered.lazy, *rendered.hooks]:
        lines += ["", "", *body]
    lines += [
        "",
        "",
        "def handler(request: Any) -> dict[str, Any]:",
        f'    """Serve ``{method} {route.url}``."""',
        f'    seed = _query_int(request, "seed", {rng.randint(1, 99)})',
        '    limit = min(_query_int(request, "limit", DEFAULT_LIMIT), 100)',
        "    params = dict(request.path_params)",
        "    total = len(params)",
    ]
    lines += [f"    total += {expr}" for expr in rendered.uses]
    lines += [
        "    return {",
        '        "route": ROUTE,',
        '        "method": request.method,',
        '        "params": params,',
        '        "limit": limit,',
        '        "cache_seconds": CACHE_SECONDS,',
        '        "total": total,',
        '        "items": [{"id": n, "score": (total + n) % 997} for n in range(min(limit, 5))],',
        "    }",
    ]
    return "\n".join(lines) + "\n"


def _render_pyproject(modules: int, seed: int, routes: list[_Module]) -> str:
    lines = [
        "[project]",
        f'name = "synthetic-api-{modules}"',
        'version = "0.1.0"',
        'requires-python = ">=3.11"',
        "dependencies = []",
        "",
        "[tool.vega]",
        'routes = "api"',
        'source_roots = ["."]',
        "",
        "[tool.vega.health]",
        "p99_ms = 250",
        "min_samples = 5",
        "timeout_s = 2.0",
        "",
        "[tool.vega.health.probes]",
    ]
    for route in routes:
        if "{" in route.url:
            probe = re.sub(r"\{[^}]+\}", "1", route.url)
            lines.append(f'"{route.url}" = ["{probe}"]')
    lines += [
        "",
        MARKER_TABLE,
        'generator = "benches/generate_project.py"',
        f"modules = {modules}",
        f"seed = {seed}",
    ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #


def as_a_fleet(root: Path, regions: int, extra: str = "") -> None:
    """Make a generated project a rollout bench's: ``regions`` regions in three waves (fra;
    iad, sfo, lhr; the rest), gates loosened so that a shared 2-core machine's latency (its
    neighbours', not the routes') fails none, and ``extra`` appended to its pyproject.toml."""
    path = root / "pyproject.toml"
    text = path.read_text()
    text = text.replace("p99_ms = 250", "p99_ms = 60000\nload_timeout_s = 60")
    text = text.replace("timeout_s = 2.0", "timeout_s = 10.0")
    text += (
        f"\n[tool.vega.rollout]\nregions = {regions}\n"
        'waves = [["fra"], ["iad", "sfo", "lhr"], ["*"]]\n'
    )
    path.write_text(text + extra)


def generate(out_dir: Path, modules: int, seed: int = 0) -> GeneratedProject:
    """Write a synthetic project of ``modules`` Python files into ``out_dir``.

    ``out_dir`` must be missing or empty. The result is a pure function of
    ``(modules, seed)``.
    """
    if modules < MIN_MODULES:
        raise ValueError(f"modules must be at least {MIN_MODULES}")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty")
    rng = random.Random(seed)
    route_count = max(1, round(modules * ROUTE_SHARE))
    packages, ranked = _plan_shared(seed, rng, modules - route_count)
    routes = _plan_routes(rng, route_count)
    _plan_imports(rng, packages, ranked, routes)
    regular = [m for m in ranked if m.kind == "module"]
    _strongly_connected(regular)

    files: dict[PurePosixPath, str] = {}
    for package in packages:
        if package.init is not None:
            files[package.init.path] = _render_init(
                _module_rng(seed, package.dotted + ":init"), package.init
            )
    for module in ranked:
        if module.kind == "leaf":
            files[module.path] = _render_leaf(_module_rng(seed, module.dotted + ":leaf"), module)
        else:
            files[module.path] = _render_module(seed, module)
    for route in routes:
        files[route.path] = _render_route(seed, route)
    assert len(files) == modules, (len(files), modules)
    _check_cycle_safety(regular)

    out_dir.mkdir(parents=True, exist_ok=True)
    for relative in sorted({p.parent for p in files}):
        (out_dir / relative).mkdir(parents=True, exist_ok=True)
    for relative, text in files.items():
        (out_dir / relative).write_text(text, encoding="utf-8")
    (out_dir / "pyproject.toml").write_text(
        _render_pyproject(modules, seed, routes), encoding="utf-8"
    )

    edges = [
        ImportEdge(str(m.path), str(imp.target.path), imp.kind)
        for m in [*(p.init for p in packages if p.init), *ranked, *routes]
        for imp in m.imports
    ]
    components: dict[int, list[str]] = {}
    for module in regular:
        components.setdefault(module.scc, []).append(str(module.path))
    cycles = sorted(
        (sorted(c) for c in components.values() if len(c) > 1), key=lambda c: (-len(c), c)
    )
    return GeneratedProject(
        root=out_dir,
        modules=modules,
        seed=seed,
        routes=sorted(out_dir / r.path for r in routes),
        shared=sorted(out_dir / p for p in files if p.parts[0] != "api"),
        route_urls={str(r.path): r.url for r in sorted(routes, key=lambda r: r.path)},
        edges=edges,
        cycles=cycles,
    )


def _check_cycle_safety(regular: list[_Module]) -> None:
    """A run-time name import must never point into the importer's own cycle.

    ``from a.b import name`` on a partially initialised ``a.b`` fails, while
    module imports (``import a.b``, ``from a import b``) resolve through
    ``sys.modules``; see the module docstring.
    """
    for module in regular:
        for imp in module.imports:
            in_cycle = imp.target.kind == "module" and imp.target.scc == module.scc
            if imp.kind == "top" and in_cycle and imp.form in NAME_FORMS:
                raise AssertionError(
                    f"{module.dotted} name-imports {imp.target.dotted} inside its own cycle"
                )


def touch_modules(project: GeneratedProject, count: int, seed: int) -> list[Path]:
    """Change a constant inside a function body of ``count`` shared modules.

    The change alters the compiled code (not just comments). Which modules are
    touched, and the new values, depend only on ``seed`` and the files' contents.
    """
    chosen = _choose(project, count, seed)
    rng = random.Random(f"touch-modules:{seed}")
    for path in chosen:
        text = path.read_text(encoding="utf-8")
        match = TUNABLE_RE.search(text)
        if match is None:
            raise ValueError(f"{path} has no tunable constant")
        old = int(match.group(2))
        new = old + rng.randint(1, 50)
        text = text[: match.start(2)] + str(new) + text[match.end(2) :]
        path.write_text(text, encoding="utf-8")
    return chosen


def touch_comment(project: GeneratedProject, count: int, seed: int) -> list[Path]:
    """Bump the ``# revision: N`` comment of ``count`` shared modules.

    Only a comment changes: line numbers and compiled code stay identical.
    """
    chosen = _choose(project, count, seed)
    for path in chosen:
        text = path.read_text(encoding="utf-8")
        match = REVISION_RE.search(text)
        if match is None:
            raise ValueError(f"{path} has no revision comment")
        text = text[: match.start(1)] + str(int(match.group(1)) + 1) + text[match.end(1) :]
        path.write_text(text, encoding="utf-8")
    return chosen


def _choose(project: GeneratedProject, count: int, seed: int) -> list[Path]:
    candidates = project.touchable
    if not 0 <= count <= len(candidates):
        raise ValueError(f"count must be between 0 and {len(candidates)}")
    return sorted(random.Random(seed).sample(candidates, count))


# --------------------------------------------------------------------------- #
# CLI
# --------------------------------------------------------------------------- #


def _is_generated(path: Path) -> bool:
    pyproject = path / "pyproject.toml"
    return pyproject.is_file() and MARKER_TABLE in pyproject.read_text(encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument(
        "--modules", type=int, required=True, help="number of .py files to generate"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--force", action="store_true", help="replace OUT_DIR if it holds a generated project"
    )
    args = parser.parse_args(argv)

    out_dir: Path = args.out_dir
    if args.force and out_dir.exists() and any(out_dir.iterdir()):
        if not _is_generated(out_dir):
            parser.error(f"{out_dir} does not look like a generated project; refusing to delete it")
        shutil.rmtree(out_dir)
    started = time.perf_counter()
    try:
        project = generate(out_dir, args.modules, args.seed)
    except (ValueError, FileExistsError) as exc:
        parser.error(str(exc))
    elapsed = time.perf_counter() - started
    kinds: dict[str, int] = {}
    for edge in project.edges:
        kinds[edge.kind] = kinds.get(edge.kind, 0) + 1
    dynamic = sum(1 for url in project.route_urls.values() if "{" in url)
    largest = max((len(c) for c in project.cycles), default=0)
    by_kind = ", ".join(f"{kind} {count}" for kind, count in sorted(kinds.items()))
    print(
        f"{project.root}: {len(project.routes)} routes ({dynamic} dynamic), "
        f"{len(project.shared)} shared modules, {len(project.edges)} imports ({by_kind}), "
        f"{len(project.cycles)} run-time cycles (largest {largest}) in {elapsed:.2f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
