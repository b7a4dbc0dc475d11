"""Stage 1, scan: which files the project has, and which changed since last time."""

from vega_dag.scan.statcache import StatCache, load_stat_cache, refresh, save_stat_cache

__all__ = ["StatCache", "load_stat_cache", "refresh", "save_stat_cache"]
