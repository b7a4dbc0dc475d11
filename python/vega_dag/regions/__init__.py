"""Regions: the processes that serve deployments.

A region is a front process on its own loopback port (``server``) that hands
each connection to the worker of the deployment its pointer references
(``handoff``; ``worker``, forked by the host's ``loader`` or the region's
``zygote``); the worker serves it (``serving``) with the routes from their
bundles (``runtime``). ``fleet`` starts, finds and stops the local
regions of a project.
"""

from __future__ import annotations

#: Region names, in the order a local fleet of N regions takes them.
REGION_NAMES = (
    "fra", "iad", "sfo", "lhr", "nrt", "sin", "syd", "gru", "cdg", "ams", "ord", "dfw",
    "sea", "yyz", "bom", "hkg", "icn", "jnb", "mad", "arn", "waw", "mxp", "dub", "lax",
)  # fmt: skip

#: Response headers naming who answered.
REGION_HEADER = "x-vega-region"
DEPLOYMENT_HEADER = "x-vega-deployment"
