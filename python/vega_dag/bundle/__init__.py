"""Stage 5, bundle: one deterministic archive per route, and the dependency layer."""
