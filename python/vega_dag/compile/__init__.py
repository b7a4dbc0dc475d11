"""Stage 3, compile: deterministic bytecode, and the toolchain that makes it."""
