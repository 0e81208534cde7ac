"""The tables, one module per domain; each imports only `app.models.base`.

Alembic and the tests import every module they need (`alembic/env.py`); the
application imports a model where it is used.
"""
