"""Storage: SQLAlchemy models and repositories (durable), and the ephemeral store (Redis or in-process).

On PostgreSQL the hot grant statements skip SQLAlchemy's execution layer (:mod:`idp.store.direct`).
"""
