"""The serving node's HTTP face: a paid prediction per signed receipt, and every refusal as a
problem document (402 for a receipt, 404, 413, 422), over a real uvicorn on a free port."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import requests
from databright_dev.serving import serving
from eth_account import Account

from databright.ml import ModelSpec, Predictor, save_checkpoint
from databright.models.receipts import EscrowState, ReceiptBook, ReceiptDomain, sign_receipt
from databright.models.serving import Serving
from databright.server.serving import serving_app

SPEC = ModelSpec.from_dict(
    {
        "input_shape": [4],
        "classes": 3,
        "layers": [{"type": "Linear", "out_features": 3}],
        "optimizer": {"type": "sgd", "lr": 0.1},
        "epochs": 1,
        "batch_size": 8,
        "seed": 0,
    }
)
PRICE = 10**9
DOMAIN = ReceiptDomain(31337, "0x" + "11" * 20)


@pytest.fixture
def node(tmp_path: Path):
    user = Account.create()
    predictor = Predictor(SPEC, save_checkpoint(SPEC.build()))
    paths = Serving(
        7,
        PRICE,
        predictor.predict,
        ReceiptBook(tmp_path / "book.sqlite"),
        lambda _user: EscrowState(deposited=100 * PRICE),
        DOMAIN,
    )
    with serving(serving_app(paths)) as url:
        yield url, user, predictor


def test_a_paid_request_is_answered_and_every_refusal_is_one_sentence(node) -> None:
    url, user, predictor = node
    x = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    predict = f"{url}/api/v1/models/7/predict"
    first = sign_receipt(user, DOMAIN, 7, 3 * PRICE, 1)
    ok = requests.post(predict, json={"inputs": x.tolist(), "receipt": first.to_json()}, timeout=30)
    assert ok.status_code == 200, ok.text
    body = ok.json()
    assert body["predictions"] == predictor.predict(x).tolist()
    assert body["paid_wei"] == 3 * PRICE and body["nonce"] == 1
    latest = requests.get(f"{url}/api/v1/models/7/receipts/{user.address}", timeout=30).json()
    assert latest["total_wei"] == 3 * PRICE and latest["nonce"] == 1

    def refused(status: int, payload: object, where: str = predict) -> str:
        r = requests.post(where, json=payload, timeout=30)
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        return str(r.json()["detail"])

    # The same receipt again pays nothing more: refused, nothing answered.
    refused(402, {"inputs": x.tolist(), "receipt": first.to_json()})
    # Beyond the deposit.
    big = sign_receipt(user, DOMAIN, 7, 1000 * PRICE, 2)
    refused(402, {"inputs": x[:1].tolist(), "receipt": big.to_json()})
    # Underpaying for three examples.
    cheap = sign_receipt(user, DOMAIN, 7, 4 * PRICE, 2)
    refused(402, {"inputs": x.tolist(), "receipt": cheap.to_json()})
    refused(
        404, {"inputs": x.tolist(), "receipt": first.to_json()}, f"{url}/api/v1/models/8/predict"
    )
    refused(400, {"inputs": [["a", "b"]], "receipt": first.to_json()})
    refused(422, {"inputs": x.tolist()})
    too_big = requests.post(
        predict, data=b"[" + b"0," * (5 * 1024 * 1024) + b"0]", timeout=60,
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert too_big.status_code == 413
    # None of the refusals moved the book: the next honest receipt goes on from the first.
    again = sign_receipt(user, DOMAIN, 7, 4 * PRICE, 2)
    r = requests.post(predict, json={"inputs": x[:1].tolist(), "receipt": again.to_json()},
                      timeout=30)  # fmt: skip
    assert r.status_code == 200 and r.json()["paid_wei"] == PRICE
