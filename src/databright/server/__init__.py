"""DataBright over HTTP: what a participant or the platform serves to others.

Today: :mod:`~databright.server.gateway`, a participant's blob store as a read-only IPFS
trustless gateway. The server sits beside the CLI, above the markets: it may use every market,
and nothing below it imports it.
"""

from databright.server.gateway import blob_gateway, serve_blobs

__all__ = ["blob_gateway", "serve_blobs"]
