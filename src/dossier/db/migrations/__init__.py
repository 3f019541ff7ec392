"""Alembic migrations, and the aggregate of all models they are compared with (``models``)."""
