"""Stage 6, manifest: what a build produced, identified by its digest.

``schema`` defines the manifest (what deploys and regions read).
"""

from vega_dag.manifest.schema import MANIFEST_SCHEMA, Manifest, RouteEntry, decode_manifest

__all__ = ["MANIFEST_SCHEMA", "Manifest", "RouteEntry", "decode_manifest"]
