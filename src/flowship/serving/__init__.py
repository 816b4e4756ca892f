"""Real-time serving: an ASGI app speaking MLflow's scoring protocol and the Open
Inference Protocol (V2), micro-batching concurrent requests into one Predictor that
follows its registry ref with zero-downtime switches.
"""

from flowship.serving.app import ServingApp, create_app
from flowship.serving.config import ServeConfig
from flowship.serving.server import serve

__all__ = ["ServeConfig", "ServingApp", "create_app", "serve"]
