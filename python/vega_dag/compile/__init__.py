"""Stage 3, compile: deterministic bytecode, and the toolchain that makes it.

``dirty`` is the build's step (which modules to compile, and compiling them
with ``pool``); ``bytecode`` compiles one module; ``toolchain`` is the
identity in every cache key, with the project's compile steps (``steps``).
"""
