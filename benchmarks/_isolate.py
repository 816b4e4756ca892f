"""Every benchmark works in a throwaway home: nothing it registers, records or writes
may reach the stores the caller's environment names (a user's tracking server, model
registry, state database or tables)."""

from __future__ import annotations

import os

# The variables that point MLflow or flowship at a store other than FLOWSHIP_HOME's.
STORES = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "FLOWSHIP_DATABASE_URL",
    "FLOWSHIP_TABLES_URI",
)


def isolate() -> None:
    """Forget the caller's stores, in this process and the commands it starts; the
    benchmark then names its own."""
    for name in STORES:
        os.environ.pop(name, None)
