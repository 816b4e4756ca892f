"""Forget the process-wide settings, MLflow client and database engines, so the next
call reads the environment again (tests switch FLOWSHIP_HOME and stores between cases)."""


def reset_caches() -> None:
    from flowship import _mlflow
    from flowship.config import get_settings
    from flowship.store import db

    get_settings.cache_clear()
    _mlflow._client_for.cache_clear()
    db.dispose()
