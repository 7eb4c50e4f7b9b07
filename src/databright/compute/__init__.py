"""The computation market: an attested coordinator schedules training work on untrusted
workers and verifies it by redundancy (issue 12).

The lead fills the exports from the helpers' reports.
"""

from __future__ import annotations

__all__: list[str] = []
