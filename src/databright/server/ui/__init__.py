"""The web UI: server-rendered pages over the index and the chain, with one bundled script
through which the browser's wallet signs (see ``pages``)."""

from databright.server.ui.pages import STATIC_DIR, install_ui

__all__ = ["STATIC_DIR", "install_ui"]
