"""Models as the markets see them: scikit-learn estimators and torch modules behind one interface.

The torch adapter that lets valuation fit and score a torch module like a scikit-learn
classifier (:class:`TorchClassifier`, :func:`as_estimator`, :func:`fresh`), :func:`embed`, and
the model market's models as data: declarative specs of allow-listed torch layers
(:class:`ModelSpec`), deterministic training (:func:`train`), checkpoints in safetensors (never
pickle), model cards in the Hugging Face Hub's format, and :class:`Predictor` for serving
(``databright.ml.onnx`` has the ONNX Runtime path, imported only where onnxruntime is installed).

``ml`` depends on nothing above it: it never imports ``databright.chain``, ``market`` or ``cli``.
"""

from databright.ml.card import card_metrics, parse_card, render_card
from databright.ml.checkpoint import (
    checkpoint_metadata,
    checkpoint_tensors,
    load_checkpoint,
    save_checkpoint,
)
from databright.ml.embedding import embed
from databright.ml.estimator import TorchClassifier, as_estimator, fresh, is_torch_module
from databright.ml.predictor import Predictor
from databright.ml.spec import (
    LAYER_TYPES,
    MAX_PARAMETERS,
    Layer,
    ModelSpec,
    Optimizer,
    validate_spec,
)
from databright.ml.train import EpochReport, TrainResult, evaluate, finetune_gain, train

__all__ = [
    "LAYER_TYPES",
    "MAX_PARAMETERS",
    "EpochReport",
    "Layer",
    "ModelSpec",
    "Optimizer",
    "Predictor",
    "TorchClassifier",
    "TrainResult",
    "as_estimator",
    "card_metrics",
    "checkpoint_metadata",
    "checkpoint_tensors",
    "embed",
    "evaluate",
    "finetune_gain",
    "fresh",
    "is_torch_module",
    "load_checkpoint",
    "parse_card",
    "render_card",
    "save_checkpoint",
    "train",
    "validate_spec",
]
