"""flowship: take MLflow models to production and keep them healthy there.

The public Python API is re-exported here; ``__all__`` is checked by a test.
"""

from flowship.errors import FlowshipError

__version__ = "0.1.0"

__all__ = ["FlowshipError", "__version__"]
