"""Models as the markets see them: scikit-learn estimators and torch modules behind one interface.

Today this holds the torch adapter that lets valuation fit and score a torch module like a
scikit-learn classifier (:class:`TorchClassifier`, :func:`as_estimator`, :func:`fresh`) and
:func:`embed`, which maps features through a module or callable. The model market will add
declarative model specs (allow-listed torch layers, hashed by CID), training, and checkpoints
in safetensors here.

``ml`` depends on nothing above it: it never imports ``databright.chain``, ``market`` or ``cli``.
"""

from databright.ml.embedding import embed
from databright.ml.estimator import TorchClassifier, as_estimator, fresh, is_torch_module

__all__ = ["TorchClassifier", "as_estimator", "embed", "fresh", "is_torch_module"]
