"""A model's serving node over HTTP: paid predictions, one signed receipt per request.

``POST /api/v1/models/{model_id}/predict`` takes ``{"inputs": [[...], ...], "receipt":
{...}}``; the receipt (EIP-712, cumulative) is checked and kept before the prediction is
computed (see :class:`databright.models.serving.Serving`), so an answer is never given for a
receipt the node could not settle. ``GET /api/v1/models/{model_id}/receipts/{user}`` tells a
client the last total and nonce the node accepted from it, so a client that lost its own
record can go on without paying twice. Errors are problem documents; a refused receipt is
``402 Payment Required`` with the one sentence that says why.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
import uvicorn
from fastapi import FastAPI, Path
from fastapi.middleware.cors import CORSMiddleware
from pydantic import BaseModel, Field

from databright import __version__
from databright.errors import InvalidArgument, NotFound
from databright.models.receipts import Receipt
from databright.models.serving import Serving
from databright.server.api.problems import install_problem_handlers
from databright.server.limits import BodyLimit

__all__ = ["MAX_BATCH", "MAX_BODY_BYTES", "serve_model", "serving_app"]

#: The most examples one request may ask for (a bound on the work a request buys).
MAX_BATCH = 4096
#: The largest request body: MAX_BATCH examples of the demo's 64 features as JSON, with room.
MAX_BODY_BYTES = 8 * 1024 * 1024


class PredictIn(BaseModel):
    inputs: list[Any] = Field(description="Examples, one per row, each of the model's shape.")
    receipt: dict[str, Any] = Field(description="The signed cumulative receipt paying for them.")


class PredictOut(BaseModel):
    model_id: int
    predictions: list[int]
    paid_wei: int
    total_wei: int
    nonce: int


class ReceiptOut(BaseModel):
    model_id: int
    user: str
    total_wei: int
    nonce: int


def serving_app(serving: Serving) -> FastAPI:
    """The HTTP face of one model's serving path."""
    app = FastAPI(title="DataBright model serving", version=__version__)
    install_problem_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    # Browsers call the node from the platform's pages (the web UI's "try a prediction"):
    # allowed from any origin, without cookies. Payment is the signed receipt in the body,
    # so a foreign page gains nothing a script could not do without a browser.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type"],
        allow_credentials=False,
    )
    model_id = serving.model_id

    def check(requested: int) -> None:
        if requested != model_id:
            raise NotFound(f"this node serves model {model_id}, not model {requested}")

    @app.post("/api/v1/models/{model_id}/predict", response_model=PredictOut)
    def predict(
        body: PredictIn, requested: Annotated[int, Path(alias="model_id", ge=0)]
    ) -> PredictOut:
        check(requested)
        if not body.inputs or len(body.inputs) > MAX_BATCH:
            raise InvalidArgument(f"send 1 to {MAX_BATCH} examples per request")
        try:
            x = np.asarray(body.inputs, dtype=np.float32)
        except (TypeError, ValueError):
            raise InvalidArgument(
                "inputs must be a list of examples of numbers, all of one shape"
            ) from None
        receipt = Receipt.from_json(body.receipt)
        before = serving.book.latest(model_id, receipt.user)
        labels = serving.predict(x, receipt)
        paid = receipt.total - (before.total if before else 0)
        return PredictOut(
            model_id=model_id,
            predictions=[int(v) for v in labels],
            paid_wei=paid,
            total_wei=receipt.total,
            nonce=receipt.nonce,
        )

    @app.get("/api/v1/models/{model_id}/receipts/{user}", response_model=ReceiptOut)
    def latest(requested: Annotated[int, Path(alias="model_id", ge=0)], user: str) -> ReceiptOut:
        check(requested)
        last = serving.book.latest(model_id, user)
        return ReceiptOut(
            model_id=model_id,
            user=user,
            total_wei=last.total if last else 0,
            nonce=last.nonce if last else 0,
        )

    return app


def serve_model(serving: Serving, host: str = "127.0.0.1", port: int = 8090) -> None:
    """Serve one model until interrupted (``databright model serve``)."""
    uvicorn.run(serving_app(serving), host=host, port=port, log_level="warning", access_log=False)
