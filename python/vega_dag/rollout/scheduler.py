"""The rollout's scheduler: nodes with an explicit contract, run in DAG order.

A node (as in Pants' engine) says what it is and nothing more:

- ``key``: unique and stable (``prefetch:fra``, ``promote:1``, ``gate:1``);
- ``deps``: keys of the nodes that must have succeeded first;
- ``run(results)``: does the work, given the results of its deps;
- ``cacheable``: whether a result can be reused (a region that already holds
  a manifest answers its prefetch from what it holds; a pointer write never is);
- failure: ``run`` raises ``NodeFailed`` (or any ``VegaError``), which stops
  the schedule; nodes not yet started never run.

Nodes whose deps are done run concurrently (threads: each waits on a region).
``VEGA_DAG_TEST_KILL_AT=<key>`` makes the process SIGKILL itself just before
that node runs (``<key>:after`` just after): a test-only hook for crash-safety
tests, documented in docs/deploying.md ("Crash safety").
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vega_dag.errors import VegaError

if TYPE_CHECKING:
    import networkx as nx

KILL_ENV = "VEGA_DAG_TEST_KILL_AT"


class NodeFailed(VegaError):
    """A node's work failed; ``key`` names the node, ``reason`` says why."""

    def __init__(self, key: str, reason: str, details: Any = None) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason
        self.details = details


@dataclass
class Node:
    key: str
    run: Callable[[dict[str, Any]], Any]
    deps: tuple[str, ...] = ()
    cacheable: bool = False
    #: One line for ``vega-dag plan``.
    describe: str = ""


@dataclass
class Schedule:
    nodes: dict[str, Node] = field(default_factory=dict)

    def add(self, node: Node) -> Node:
        if node.key in self.nodes:
            raise ValueError(f"duplicate node {node.key}")
        self.nodes[node.key] = node
        return node

    def graph(self) -> nx.DiGraph:
        import networkx as nx

        g = nx.DiGraph()
        for node in self.nodes.values():
            g.add_node(node.key)
            for dep in node.deps:
                if dep not in self.nodes:
                    raise ValueError(f"{node.key} depends on unknown node {dep}")
                g.add_edge(dep, node.key)
        if not nx.is_directed_acyclic_graph(g):
            raise ValueError("the rollout graph has a cycle")
        return g

    def order(self) -> list[list[str]]:
        """Generations: each runs after the previous one, its nodes concurrently.

        Kahn's algorithm by generation (what ``networkx.topological_generations``
        computes, without importing networkx on every deploy).
        """
        indegree = {key: 0 for key in self.nodes}
        children: dict[str, list[str]] = {key: [] for key in self.nodes}
        for node in self.nodes.values():
            for dep in dict.fromkeys(node.deps):
                if dep not in self.nodes:
                    raise ValueError(f"{node.key} depends on unknown node {dep}")
                indegree[node.key] += 1
                children[dep].append(node.key)
        generation = [key for key, n in indegree.items() if n == 0]
        order = []
        while generation:
            order.append(sorted(generation))
            following = []
            for key in generation:
                for child in children[key]:
                    indegree[child] -= 1
                    if indegree[child] == 0:
                        following.append(child)
            generation = following
        if sum(len(g) for g in order) != len(self.nodes):
            raise ValueError("the rollout graph has a cycle")
        return order

    def run(
        self,
        *,
        on_start: Callable[[Node], None] | None = None,
        on_done: Callable[[Node, Any], None] | None = None,
        max_workers: int = 32,
    ) -> dict[str, Any]:
        results: dict[str, Any] = {}
        with ThreadPoolExecutor(max_workers=max_workers) as pool:
            for generation in self.order():
                futures: dict[Future, Node] = {}
                for key in generation:
                    node = self.nodes[key]
                    _maybe_die(key)
                    if on_start:
                        on_start(node)
                    inputs = {d: results[d] for d in node.deps}
                    futures[pool.submit(node.run, inputs)] = node
                wait(futures, return_when=FIRST_EXCEPTION)
                # Let the generation finish: a prefetch in flight is harmless,
                # and its region must not be left half-asked.
                wait(futures)
                failures = []
                for future, node in futures.items():
                    err = future.exception()
                    if err is not None:
                        failures.append((node, err))
                        continue
                    results[node.key] = future.result()
                    _maybe_die(f"{node.key}:after")
                    if on_done:
                        on_done(node, results[node.key])
                if failures:
                    node, err = min(failures, key=lambda f: f[0].key)
                    if isinstance(err, NodeFailed):
                        err.others = [e for n, e in failures if n is not node]  # type: ignore[attr-defined]
                        raise err
                    if isinstance(err, VegaError):
                        raise NodeFailed(node.key, str(err)) from err
                    raise err
        return results


def _maybe_die(key: str) -> None:
    if os.environ.get(KILL_ENV) == key:
        os.kill(os.getpid(), signal.SIGKILL)
