"""Stage 5, bundle: one deterministic archive per route, and the dependency layer."""

#: The route bundle layout and packing. Bump it whenever either changes: it is
#: part of the toolchain identity, hence of every cache key.
BUNDLE_FORMAT = 2
