"""Storage: SQLAlchemy models and repositories (durable), and the ephemeral store (Redis or in-process)."""
