"""asyncpg against a real PostgreSQL (the session's ``postgres`` fixture), on pyloop and asyncio.

asyncpg drives the loop hard: its protocol is a Cython ``BufferedProtocol``
(``get_buffer``/``buffer_updated``), it uses ``loop.create_connection`` with
both TCP and Unix sockets, cancels queries out of band, and delivers
notifications through loop callbacks.
"""

from __future__ import annotations

import asyncio
import datetime
import decimal
import io
import json
import uuid

import pytest

pytest.importorskip("pyloop._core.loop", reason="pyloop is not built")
asyncpg = pytest.importorskip("asyncpg")

from .loops import run, running_loop_kind  # noqa: E402


def test_parameters_and_type_round_trip(postgres, loop_factory, loop_name):
    values = {
        "i": (7, "int4"),
        "big": (2**62 + 3, "int8"),
        "f": (1.5e300, "float8"),
        "n": (decimal.Decimal("12345678901234567890.000000000123"), "numeric"),
        "t": ("h\u00e9llo \u2603 \U0001F600", "text"),
        "b": (bytes(range(256)), "bytea"),
        "ok": (True, "bool"),
        "d": (datetime.date(2024, 2, 29), "date"),
        "ts": (datetime.datetime(2001, 9, 9, 1, 46, 40, 123456, tzinfo=datetime.timezone.utc), "timestamptz"),
        "iv": (datetime.timedelta(days=3, seconds=7, microseconds=5), "interval"),
        "u": (uuid.UUID("12345678-1234-5678-1234-567812345678"), "uuid"),
        "arr": ([1, None, 3], "int4[]"),
        "nul": (None, "text"),
    }

    async def main():
        conn = await asyncpg.connect(postgres.dsn)
        try:
            assert running_loop_kind() == loop_name
            names = list(values)
            select = ", ".join(f"${i + 1}::{values[n][1]} AS {n}" for i, n in enumerate(names))
            row = await conn.fetchrow(f"SELECT {select}", *(values[n][0] for n in names))
            assert dict(row) == {n: v for n, (v, _) in values.items()}

            assert await conn.fetchval("SELECT $1::int + $2::int", 40, 2) == 42
            doc = {"a": [1, 2, {"b": None}], "c": "\u2603"}
            assert json.loads(await conn.fetchval("SELECT $1::jsonb", json.dumps(doc))) == doc

            await conn.execute("CREATE TEMP TABLE items (id int PRIMARY KEY, name text, price numeric)")
            await conn.executemany("INSERT INTO items VALUES ($1, $2, $3)",
                                   [(i, f"item-{i}", decimal.Decimal(i) / 4) for i in range(500)])
            rows = await conn.fetch("SELECT id, name, price FROM items WHERE id % $1 = 0 ORDER BY id", 100)
            assert [tuple(r) for r in rows] == [(i, f"item-{i}", decimal.Decimal(i) / 4)
                                                for i in range(0, 500, 100)]
            stmt = await conn.prepare("SELECT name FROM items WHERE id = $1")
            assert [await stmt.fetchval(i) for i in (1, 2, 499)] == ["item-1", "item-2", "item-499"]
            with pytest.raises(asyncpg.UniqueViolationError):
                await conn.execute("INSERT INTO items VALUES (1, 'dup', 0)")
            with pytest.raises(asyncpg.DataError):
                await conn.fetchval("SELECT $1::int", "not an int")
            # A server-side error leaves the connection usable.
            assert await conn.fetchval("SELECT count(*) FROM items") == 500
        finally:
            await conn.close()

    run(loop_factory, main)


def test_unix_socket_connection(postgres, loop_factory):
    async def main():
        conn = await asyncpg.connect(host=postgres.socket_dir, port=postgres.port,
                                     user=postgres.user, database=postgres.database)
        try:
            assert await conn.fetchval("SELECT current_database()") == postgres.database
            big = "x" * (4 << 20)  # larger than any socket buffer: many reads and writes
            assert await conn.fetchval("SELECT length($1::text)", big) == len(big)
            assert await conn.fetchval("SELECT repeat('y', 3000000)") == "y" * 3_000_000
        finally:
            await conn.close()

    run(loop_factory, main)


def test_transactions_commit_rollback_savepoint(postgres, loop_factory, loop_name):
    table = f"tx_{loop_name}"

    async def main():
        conn = await asyncpg.connect(postgres.dsn)
        other = await asyncpg.connect(postgres.dsn)
        try:
            await conn.execute(f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (v int)")

            async with conn.transaction():
                await conn.execute(f"INSERT INTO {table} VALUES (1)")
                # Not visible outside the transaction until commit.
                assert await other.fetchval(f"SELECT count(*) FROM {table}") == 0
            assert await other.fetchval(f"SELECT array_agg(v) FROM {table}") == [1]

            with pytest.raises(RuntimeError, match="roll me back"):
                async with conn.transaction():
                    await conn.execute(f"INSERT INTO {table} VALUES (2)")
                    raise RuntimeError("roll me back")
            assert not conn.is_in_transaction()
            assert await other.fetchval(f"SELECT array_agg(v) FROM {table}") == [1]

            async with conn.transaction():
                await conn.execute(f"INSERT INTO {table} VALUES (3)")
                with pytest.raises(asyncpg.DivisionByZeroError):
                    async with conn.transaction():  # a SAVEPOINT
                        await conn.execute(f"INSERT INTO {table} VALUES (4)")
                        await conn.execute("SELECT 1 / 0")
                async with conn.transaction():
                    await conn.execute(f"INSERT INTO {table} VALUES (5)")
            assert await other.fetchval(f"SELECT array_agg(v ORDER BY v) FROM {table}") == [1, 3, 5]

            tr = conn.transaction(isolation="serializable")
            await tr.start()
            await conn.execute(f"INSERT INTO {table} VALUES (6)")
            await tr.rollback()
            assert await conn.fetchval(f"SELECT max(v) FROM {table}") == 5
        finally:
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
            await other.close()
            await conn.close()

    run(loop_factory, main)


def test_copy_in_and_out(postgres, loop_factory):
    records = [(i, f"name {i}\twith tab", None if i % 7 == 0 else i * 0.5) for i in range(20_000)]

    async def main():
        conn = await asyncpg.connect(postgres.dsn)
        try:
            await conn.execute("CREATE TEMP TABLE c (id int, name text, score float8)")
            status = await conn.copy_records_to_table("c", records=records)
            assert status == "COPY 20000"
            assert await conn.fetchval("SELECT count(*) FROM c") == len(records)

            # copy_to_table from an async iterator of raw CSV chunks.
            async def csv_chunks():
                for start in range(0, 1000, 100):
                    yield "".join(f"{i},extra {i},1.25\n" for i in range(100_000 + start, 100_000 + start + 100)).encode()

            assert await conn.copy_to_table("c", source=csv_chunks(), format="csv") == "COPY 1000"

            out = io.BytesIO()
            await conn.copy_from_query("SELECT id, name, score FROM c WHERE id < $1 ORDER BY id", 20_000,
                                       output=out, format="csv")
            lines = out.getvalue().decode().splitlines()
            assert len(lines) == 20_000
            assert lines[1] == "1,name 1\twith tab,0.5"
            assert lines[7] == "7,name 7\twith tab,"

            received = []

            async def sink(chunk: bytes) -> None:
                received.append(chunk)

            status = await conn.copy_from_table("c", output=sink, format="text")
            assert status == "COPY 21000"
            rows = b"".join(received).decode().splitlines()
            assert len(rows) == 21_000
            assert rows[-1] == "100999\textra 100999\t1.25"
        finally:
            await conn.close()

    run(loop_factory, main)


def test_listen_notify(postgres, loop_factory, loop_name):
    channel = f"events_{loop_name}"

    async def main():
        listener = await asyncpg.connect(postgres.dsn)
        sender = await asyncpg.connect(postgres.dsn)
        received: asyncio.Queue = asyncio.Queue()

        def on_notify(conn, pid, chan, payload):
            assert running_loop_kind() == loop_name
            received.put_nowait((pid, chan, payload))

        try:
            await listener.add_listener(channel, on_notify)
            sender_pid = sender.get_server_pid()
            payloads = [f"message {i} \u2603" for i in range(50)]
            for p in payloads:
                await sender.execute("SELECT pg_notify($1, $2)", channel, p)
            # Notifications sent in one transaction arrive together, at commit.
            async with sender.transaction():
                await sender.execute(f"NOTIFY {channel}, 'tx-a'")
                await sender.execute(f"NOTIFY {channel}, 'tx-b'")
            got = [await asyncio.wait_for(received.get(), 30) for _ in range(len(payloads) + 2)]
            assert got == [(sender_pid, channel, p) for p in payloads + ["tx-a", "tx-b"]]

            await listener.remove_listener(channel, on_notify)
            await sender.execute("SELECT pg_notify($1, 'after removal')", channel)
            # A round trip on the listener connection after the NOTIFY has been
            # committed: any notification would have been processed by now.
            await listener.fetchval("SELECT 1")
            assert received.empty()
        finally:
            await sender.close()
            await listener.close()

    run(loop_factory, main)


def test_pool_under_200_concurrent_queries(postgres, loop_factory):
    async def main():
        async with asyncpg.create_pool(postgres.dsn, min_size=2, max_size=10) as pool:
            assert pool.get_size() == 2

            async def one(i):
                async with pool.acquire() as conn:
                    value, pid = await conn.fetchrow("SELECT $1::int * 2, pg_backend_pid()", i)
                    await conn.execute("SELECT pg_sleep(0.002)")
                    return value, pid

            results = await asyncio.gather(*(one(i) for i in range(200)))
            assert [v for v, _ in results] == [i * 2 for i in range(200)]
            pids = {pid for _, pid in results}
            assert 2 <= len(pids) <= 10
            assert pool.get_size() <= 10
            # Pool-level shortcuts as well.
            values = await asyncio.gather(*(pool.fetchval("SELECT $1::text", str(i)) for i in range(200)))
            assert values == [str(i) for i in range(200)]

    run(loop_factory, main)


def test_cancelled_query_leaves_pool_usable(postgres, loop_factory):
    async def main():
        async with asyncpg.create_pool(postgres.dsn, min_size=2, max_size=2) as pool:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(pool.fetchval("SELECT pg_sleep(60)"), 0.3)
            with pytest.raises(asyncio.TimeoutError):
                async with pool.acquire() as conn:
                    await conn.fetchval("SELECT pg_sleep(60)", timeout=0.3)

            # Both pool connections work again, at the same time.
            async def use():
                async with pool.acquire() as conn:
                    return await conn.fetchval("SELECT 41 + 1")

            assert await asyncio.gather(use(), use(), use(), use()) == [42] * 4

            # The server really stopped the sleeps (asyncpg sends a cancel request).
            async with pool.acquire() as conn:
                for _ in range(500):
                    sleeping = await conn.fetchval(
                        "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%'"
                        " AND state = 'active' AND pid <> pg_backend_pid()")
                    if sleeping == 0:
                        break
                    await asyncio.sleep(0.02)
                assert sleeping == 0

    run(loop_factory, main)


def test_tls_connection_upgraded_with_start_tls(postgres, certificate, loop_factory):
    """asyncpg asks for TLS in-band (SSLRequest) and upgrades the open connection
    with ``loop.start_tls``."""
    assert postgres.certificate is not None

    async def main():
        conn = await asyncpg.connect(postgres.dsn, ssl=certificate.client_context())
        try:
            assert await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is True
            assert await conn.fetchval("SELECT length(repeat('z', 2000000))") == 2_000_000
            big = bytes(range(256)) * 4096
            assert await conn.fetchval("SELECT $1::bytea", big) == big
        finally:
            await conn.close()

        plain = await asyncpg.connect(postgres.dsn, ssl=False)
        try:
            assert await plain.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") is False
        finally:
            await plain.close()

    run(loop_factory, main)


def test_connection_refused_and_bad_database(postgres, loop_factory):
    import socket

    async def main():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with pytest.raises(OSError):
            await asyncpg.connect(host="127.0.0.1", port=port, user="postgres", timeout=30)
        with pytest.raises(asyncpg.InvalidCatalogNameError):
            await asyncpg.connect(host=postgres.host, port=postgres.port, user=postgres.user,
                                  database="no_such_database", timeout=30)

    run(loop_factory, main)


def test_server_terminated_connection(postgres, loop_factory):
    """pg_terminate_backend closes a connection from the server side: asyncpg sees
    connection_lost, the termination listener runs, and a pool replaces the connection."""
    async def main():
        victim = await asyncpg.connect(postgres.dsn)
        admin = await asyncpg.connect(postgres.dsn)
        terminated = asyncio.Event()
        victim.add_termination_listener(lambda conn: terminated.set())
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", victim.get_server_pid()) is True
            await asyncio.wait_for(terminated.wait(), 30)
            assert victim.is_closed()
            with pytest.raises(asyncpg.InterfaceError):  # ConnectionDoesNotExistError and kin
                await victim.fetchval("SELECT 1")

            async with asyncpg.create_pool(postgres.dsn, min_size=1, max_size=1) as pool:
                async with pool.acquire() as conn:
                    first_pid = conn.get_server_pid()
                    lost = asyncio.Event()
                    conn.add_termination_listener(lambda c: lost.set())
                    await admin.execute("SELECT pg_terminate_backend($1)", first_pid)
                    await asyncio.wait_for(lost.wait(), 30)
                # Released dead, the connection is replaced on the next acquire.
                assert await pool.fetchval("SELECT pg_backend_pid()") != first_pid
        finally:
            await admin.close()
            victim.terminate()

    run(loop_factory, main)
