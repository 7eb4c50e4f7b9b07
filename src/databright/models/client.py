"""Paying a serving node for predictions over HTTP (the user's side of ``model predict``).

Each request carries a receipt from the user's :class:`~databright.models.receipts.Wallet`
that adds exactly the price of the examples asked for. If the node cannot be reached the same
receipt is sent again (the node accepts a receipt once; the wallet never signs twice for one
nonce); a node that refuses the receipt answers one sentence, which is raised as it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import requests

from databright.errors import InvalidReceipt, NodeUnreachable
from databright.models.market import ModelInfo, ModelMarket

__all__ = ["predict_remote"]

_TIMEOUT_S = 30.0


def _post(url: str, body: dict[str, Any]) -> requests.Response:
    try:
        return requests.post(url, json=body, timeout=_TIMEOUT_S)
    except requests.RequestException:
        raise NodeUnreachable(
            f"the serving node at {url} does not answer; check --node and that it runs "
            "`databright model serve`"
        ) from None


def predict_remote(
    mm: ModelMarket, info: ModelInfo, node_url: str, x: np.ndarray
) -> dict[str, Any]:
    """Predictions for ``x`` from the node at ``node_url``, paid with one signed receipt."""
    wallet = mm.wallet(info.id)
    receipt = wallet.pay(info.id, info.price_wei * len(x))
    url = f"{node_url.rstrip('/')}/api/v1/models/{info.id}/predict"
    body = {"inputs": np.asarray(x).tolist(), "receipt": receipt.to_json()}
    try:
        response = _post(url, body)
    except NodeUnreachable:
        response = _post(url, body)  # once more, with the same receipt
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code != 200:
        detail = str(answer.get("detail") or f"HTTP {response.status_code}")
        if response.status_code == 402:
            raise InvalidReceipt(f"the serving node refused the receipt: {detail}")
        raise NodeUnreachable(f"the serving node at {node_url} failed: {detail}")
    return {
        "model_id": info.id,
        "predictions": [int(p) for p in answer["predictions"]],
        "paid_wei": int(answer["paid_wei"]),
        "total_wei": int(answer["total_wei"]),
        "nonce": int(answer["nonce"]),
    }
