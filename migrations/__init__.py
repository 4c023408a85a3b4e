"""pgqueue's Alembic migrations (shipped in the wheel as ``pgqueue.migrations``)."""
