"""Stage 1, scan: which files the project has, and which changed since last time.

``statcache`` is the scan against the last build's stat cache, ``project``
what it skips, ``watch`` the daemon's file watcher.
"""

from vega_dag.scan.statcache import StatCache, load_stat_cache, refresh, save_stat_cache

__all__ = ["StatCache", "load_stat_cache", "refresh", "save_stat_cache"]
