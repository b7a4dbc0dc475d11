"""The import graph as a networkx DiGraph, condensed to a DAG.

Python import graphs have cycles; a cycle is never an error. Strongly
connected components are condensed so the scheduler runs on a DAG, and each
route's closure (every module its bundle must hold) is computed once per
component, bottom-up, instead of one traversal per route.

networkx costs ~0.17 s to import, so this module is only imported when the
graph's edges changed (see ``vega_dag.pipeline``); an edit that keeps every
import as it was reuses the cached closures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import networkx as nx


def import_graph(edges: Mapping[str, Iterable[str]]) -> nx.DiGraph:
    """Nodes are modules; an edge a → b means a imports b."""
    graph = nx.DiGraph()
    graph.add_nodes_from(sorted(edges))
    for source in sorted(edges):
        graph.add_edges_from((source, target) for target in sorted(edges[source]))
    return graph


def components(graph: nx.DiGraph) -> list[list[str]]:
    """Strongly connected components with more than one module, each sorted."""
    return sorted(sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1)


def closures(graph: nx.DiGraph, roots: Iterable[str]) -> dict[str, list[str]]:
    """root → sorted list of every module reachable from it, itself included.

    One walk per root over the condensation: memory stays proportional to
    the closures asked for, not to every module's reach.
    """
    dag = nx.condensation(graph)
    mapping = dag.graph["mapping"]
    members = {n: dag.nodes[n]["members"] for n in dag.nodes}
    successors = {n: list(dag.successors(n)) for n in dag.nodes}
    out: dict[str, list[str]] = {}
    for root in roots:
        start = mapping[root]
        seen = {start}
        stack = [start]
        found: list[str] = []
        while stack:
            node = stack.pop()
            found.extend(members[node])
            for succ in successors[node]:
                if succ not in seen:
                    seen.add(succ)
                    stack.append(succ)
        out[root] = sorted(found)
    return out


def dependents(closure_of: Mapping[str, Iterable[str]], module: str) -> list[str]:
    """The roots whose closure contains ``module``, sorted."""
    return sorted(root for root, closure in closure_of.items() if module in set(closure))


def to_dot(graph: nx.DiGraph, routes: Mapping[str, str]) -> str:
    """The graph in DOT, routes drawn as boxes labelled with their URL."""
    route_of = {module: pattern for pattern, module in routes.items()}
    lines = ["digraph imports {", "  rankdir=LR;", '  node [shape=ellipse, fontname="Helvetica"];']
    for node in sorted(graph.nodes):
        if node in route_of:
            lines.append(f'  "{node}" [shape=box, label="{route_of[node]}\\n{node}"];')
        else:
            lines.append(f'  "{node}";')
    for source, target in sorted(graph.edges):
        lines.append(f'  "{source}" -> "{target}";')
    lines.append("}")
    return "\n".join(lines) + "\n"
