"""The build: scan → graph → compile → store → bundle, driven as one pipeline.

``pipeline.build`` is the entry point; ``manifest`` defines what a build
produces and ``state`` what it remembers between runs.
"""
