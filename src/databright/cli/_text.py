"""How the command modules print what they did not write themselves: proposal references and
strings from the chain or from other participants.

A proposal's on-chain id packs its dataset and its number (``dataset << 32 | n``); people
read and type ``DATASET/N``, so no command prints the packed integer, in text or in JSON.

A dataset name, a revert reason or a report comes from whoever wrote it. Printed raw, an ESC
sequence in it could move the cursor, recolour or retitle another user's terminal, and a
newline could forge a line of our output; rich would also read ``[...]`` in it as markup. So
``safe`` (``_common``'s, re-exported here) makes such a string inert before it reaches a
console.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from databright.chain.clients import DataMarketConstants
from databright.cli._common import plain, proposal_json, safe
from databright.errors import DataBrightError
from databright.market import ProposalInfo

__all__ = [
    "plain",
    "proposal_refs",
    "proposal_view",
    "ref",
    "safe",
]

_SEQ_BITS = DataMarketConstants.SEQ_BITS
_SEQ_MASK = (1 << _SEQ_BITS) - 1


def ref(proposal_id: int) -> str:
    """A proposal's reference as people write it: ``DATASET/N``."""
    pid = int(proposal_id)
    return f"{pid >> _SEQ_BITS}/{pid & _SEQ_MASK}"


def proposal_view(p: ProposalInfo) -> dict[str, Any]:
    """A proposal's JSON with its id as ``DATASET/N`` (``id`` and ``ref``; ``dataset_id`` and
    ``sequence`` are its parts)."""
    out = proposal_json(p)
    out["id"] = out["ref"] = ref(p.id)
    return out


@contextlib.contextmanager
def proposal_refs(*proposal_ids: int) -> Iterator[None]:
    """Errors raised inside name these proposals as ``DATASET/N``, not by their packed id.

    The SDK's messages print the id it was given; only ids of a real dataset (one or more
    above the sequence bits) are rewritten, so ``proposal 99`` as typed stays as typed.
    """
    try:
        yield
    except DataBrightError as exc:
        message = exc.args[0] if exc.args and isinstance(exc.args[0], str) else None
        if message is not None:
            for pid in proposal_ids:
                if int(pid) >> _SEQ_BITS:
                    message = re.sub(rf"\b{int(pid)}\b", ref(pid), message)
            exc.args = (message, *exc.args[1:])
        raise
