"""Stage 2, graph: the first-party import graph of the project.

``modules`` names files as modules and routes, ``resolve`` turns import
statements into edges, ``dag`` holds the networkx graph and its condensation.
"""
