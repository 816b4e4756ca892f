"""flowship's own state: one SQL database through SQLAlchemy, migrated by Alembic.

``db.py`` opens the database and brings its schema up to date; each capability keeps
its tables and queries in a module of its own here (``events.py`` for the lifecycle
history, ...), all on the one ``metadata`` in ``tables.py``.
"""
