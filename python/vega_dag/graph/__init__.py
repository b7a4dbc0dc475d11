"""Stage 2, graph: the first-party import graph of the project.

``modules`` names files as modules and routes, ``resolve`` turns import
statements into edges, ``dag`` holds the networkx graph and its condensation.
The build's steps over them, composed by ``analysis.analyze``: ``tables``
(module and route tables, module-set digest), ``parse`` (with the parse
cache), ``edges`` (each module's resolved imports, their digest) and
``closures`` (each route's modules).
"""
