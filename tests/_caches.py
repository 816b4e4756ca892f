"""Forget the process-wide settings, MLflow client and database engines, so the next
call reads the environment again (tests switch FLOWSHIP_HOME and stores between cases)."""

import os
import sys


def reset_caches() -> None:
    from flowship import _mlflow
    from flowship.config import get_settings
    from flowship.store import db

    get_settings.cache_clear()
    _mlflow._client_for.cache_clear()
    _mlflow._user_for.cache_clear()
    db.dispose()
    # _client_for makes its store MLflow's process-wide registry (a module global, and
    # MLFLOW_REGISTRY_URI in os.environ for subprocesses): left over, the next store's
    # models would be registered into, and looked up in, the previous one.
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_registry_uri(None)
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
