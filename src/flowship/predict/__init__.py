"""Load a model version and score it: one Predictor for serving, batch, gates and embedded use.

    from flowship.predict import Predictor, resolve_ref
    p = Predictor.load("models:/ChurnPredictor/Production", output="proba")
    p.predict({"age": [35], "tenure": [24]})

See docs/predict.md.
"""

from flowship.predict.predictor import Predictor
from flowship.predict.refs import ResolvedRef, resolve_ref
from flowship.predict.signature import InputColumn

__all__ = ["InputColumn", "Predictor", "ResolvedRef", "resolve_ref"]
