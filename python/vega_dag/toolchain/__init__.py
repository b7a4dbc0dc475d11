"""Toolchain upgrades: which version of a component first changes the build's outputs.

versions.py   the ordered versions of a component (given, or from the package index)
bisect.py     the bisection: one build per tested version, sharing the action cache
report.py     what drifts and how, as JSON and Markdown
"""
