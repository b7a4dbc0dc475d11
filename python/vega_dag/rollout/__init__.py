"""Rollout: deployments as further nodes of the build's DAG.

``pointers`` (the SQLite pointer store), ``scheduler`` (the node contract and
the networkx scheduler), ``health`` (gates), ``deploy`` (the rollout DAG:
prefetch → promote/gate per wave, automatic rollback) and ``rollback``.
"""
