"""The local PostgreSQL the production profile starts for a single-machine trial: a real
server from Debian's packages, password-authenticated on loopback."""

import psycopg2
import pytest


def test_the_server_takes_connections_with_its_password_only(postgres_server):
    con = psycopg2.connect(postgres_server.url("warehouse"))
    with con.cursor() as cur:
        cur.execute("select current_database(), inet_server_addr()::text")
        assert cur.fetchone() == ("warehouse", "127.0.0.1/32")
    con.close()
    wrong = postgres_server.url("warehouse").replace(postgres_server.password, "not-the-password")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        psycopg2.connect(wrong)
    assert postgres_server.password not in repr(postgres_server)
