"""idp.store.direct: hot PostgreSQL statements through psycopg keep what SQLAlchemy gave the rest."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from idp import nonblocking
from idp.services import Services
from idp.store.direct import Direct
from idp.web.unavailable import is_connection_error

on_postgres = pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@pytest.fixture
def direct(container: Services) -> Direct:
    return Direct(container.engine)


def test_sqlite_keeps_the_sqlalchemy_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from idp.store.db import make_engine

    with pytest.raises(ValueError, match="PostgreSQL"):
        Direct(make_engine(f"sqlite:///{tmp_path / 'x.sqlite3'}"))


@on_postgres
def test_a_statement_autocommits_and_hands_the_connection_back_as_the_pool_expects(
    direct: Direct, container: Services
) -> None:
    direct.rowcount("INSERT INTO meta (key, value) VALUES (%(k)s, %(v)s)", {"k": "direct-test", "v": "1"})
    with container.engine.connect() as conn:  # another connection sees it: it was committed
        assert conn.exec_driver_sql("SELECT value FROM meta WHERE key = 'direct-test'").scalar() == "1"
        raw = conn.connection.dbapi_connection
        assert raw is not None and raw.autocommit is False  # the pool's other users get a transaction
    assert direct.fetchone("SELECT value FROM meta WHERE key = %(k)s", {"k": "direct-test"}) == ("1",)


@on_postgres
def test_it_refuses_to_block_the_event_loop(direct: Direct) -> None:
    with nonblocking.inline(), pytest.raises(nonblocking.WouldBlock):
        direct.fetchone("SELECT 1", {})


@on_postgres
def test_errors_become_sqlalchemy_errors_without_the_parameters(direct: Direct) -> None:
    direct.rowcount("INSERT INTO meta (key, value) VALUES (%(k)s, 'a')", {"k": "dup"})
    with pytest.raises(IntegrityError) as caught:
        direct.rowcount("INSERT INTO meta (key, value) VALUES (%(k)s, 'secret-value')", {"k": "dup"})
    assert "secret-value" not in str(caught.value.params) and caught.value.params is None
    assert not is_connection_error(caught.value)  # a constraint is a bug, not an outage: a 500, not a 503
    assert direct.fetchone("SELECT 1", {}) == (1,)  # the connection went back usable


@on_postgres
def test_a_lost_connection_is_a_503_and_is_not_reused(direct: Direct, container: Services) -> None:
    with container.engine.connect() as conn:
        victim = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    with pytest.raises(DBAPIError) as caught:
        # The only pooled connection is the one just returned: kill it while it runs a statement.
        direct.fetchone("SELECT pg_terminate_backend(pg_backend_pid())", {})
    assert isinstance(caught.value, OperationalError) and is_connection_error(caught.value)
    assert isinstance(caught.value.orig, psycopg.OperationalError)
    pid = direct.fetchone("SELECT pg_backend_pid()", {})
    assert pid is not None and pid[0] != victim  # a new connection, not the dead one back from the pool
