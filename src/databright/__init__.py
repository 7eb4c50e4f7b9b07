"""DataBright: curate machine-learning data with markets and trusted computation."""

from databright.errors import DataBrightError

__all__ = ["DataBrightError", "__version__"]

__version__ = "0.1.0"
