"""Stage 5, bundle: one deterministic archive per route, and the dependency layer.

``routes`` defines a route's bundle (and its entry point), ``bundles`` is the
build's step (early cutoff, building the misses), ``layer`` the dependency
layer and its step.
"""

#: The route bundle layout and packing, and what a bundle's digest names (3:
#: its tree, store.tree). Bump it whenever one changes: it is part of the
#: toolchain identity, hence of every cache key.
BUNDLE_FORMAT = 3
