"""redis-py's asyncio client against a real redis-server, on pyloop and asyncio.

redis.asyncio uses asyncio streams (``open_connection``), ``wait_for`` timeouts
around reads, and long-lived connections parked in a pool -- a good check of
stream flow control and of cancellation in the middle of a read.
"""

from __future__ import annotations

import asyncio
import os

import pytest

pytest.importorskip("pyloop._core.loop", reason="pyloop is not built")
aioredis = pytest.importorskip("redis.asyncio")
from redis.exceptions import ConnectionError as RedisConnectionError  # noqa: E402
from redis.exceptions import ResponseError, WatchError  # noqa: E402

from .loops import run, running_loop_kind  # noqa: E402


async def next_message(pubsub) -> dict:
    """The next real message (not a subscribe confirmation) from ``pubsub``."""
    while True:
        msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
        if msg is not None:
            return msg


def test_get_set_and_types(redis_server, loop_factory, loop_name):
    p = f"{loop_name}:kv:"

    async def main():
        assert running_loop_kind() == loop_name
        r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        raw = aioredis.Redis.from_url(redis_server.url)
        try:
            assert await r.ping() is True
            assert await r.set(p + "a", "\u2603 snow") is True
            assert await r.get(p + "a") == "\u2603 snow"
            assert await r.get(p + "missing") is None
            assert await r.set(p + "a", "x", nx=True) is None  # exists: not set
            await r.set(p + "n", 10)
            assert await r.incrby(p + "n", 5) == 15
            await r.set(p + "ttl", "v", ex=100)
            assert 0 < await r.ttl(p + "ttl") <= 100
            await r.hset(p + "h", mapping={"f1": "1", "f2": "two"})
            assert await r.hgetall(p + "h") == {"f1": "1", "f2": "two"}
            await r.rpush(p + "l", *range(5))
            assert await r.lrange(p + "l", 0, -1) == ["0", "1", "2", "3", "4"]
            assert await r.mget([p + "a", p + "n", p + "missing"]) == ["\u2603 snow", "15", None]
            with pytest.raises(ResponseError):
                await r.incr(p + "h")  # WRONGTYPE

            blob = os.urandom(1 << 20)  # one MiB, binary: many reads
            await raw.set(p + "blob", blob)
            assert await raw.get(p + "blob") == blob
            assert await r.delete(p + "a", p + "n", p + "ttl", p + "h", p + "l", p + "blob") == 6
        finally:
            await raw.aclose()
            await r.aclose()

    run(loop_factory, main)


def test_pipelines_transactional_and_not(redis_server, loop_factory, loop_name):
    p = f"{loop_name}:pipe:"

    async def main():
        r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        other = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            async with r.pipeline(transaction=False) as pipe:
                for i in range(1000):
                    pipe.set(f"{p}{i}", i)
                for i in range(1000):
                    pipe.get(f"{p}{i}")
                results = await pipe.execute()
            assert results[:1000] == [True] * 1000
            assert results[1000:] == [str(i) for i in range(1000)]

            async with r.pipeline(transaction=True) as pipe:
                pipe.incr(p + "counter").incr(p + "counter").get(p + "counter")
                assert await pipe.execute() == [1, 2, "2"]

            # WATCH: a concurrent change from another client aborts the transaction.
            async with r.pipeline(transaction=True) as pipe:
                await pipe.watch(p + "counter")
                current = int(await pipe.get(p + "counter"))
                await other.incr(p + "counter")
                pipe.multi()
                pipe.set(p + "counter", current + 100)
                with pytest.raises(WatchError):
                    await pipe.execute()
            assert await r.get(p + "counter") == "3"

            # A command error inside MULTI does not hide the others' results.
            async with r.pipeline(transaction=True) as pipe:
                pipe.set(p + "s", "text").incr(p + "s").get(p + "s")
                results = await pipe.execute(raise_on_error=False)
            assert results[0] is True and isinstance(results[1], ResponseError) and results[2] == "text"
            await r.delete(*[f"{p}{i}" for i in range(1000)], p + "counter", p + "s")
        finally:
            await other.aclose()
            await r.aclose()

    run(loop_factory, main)


def test_pubsub_channels_and_patterns(redis_server, loop_factory, loop_name):
    chan = f"{loop_name}.news"

    async def main():
        sub = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        pub = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            async with sub.pubsub() as ps:
                await ps.subscribe(chan)
                await ps.psubscribe(f"{loop_name}.sport.*")
                # Both subscriptions are confirmed before anything is published.
                confirmations = set()
                while len(confirmations) < 2:
                    msg = await asyncio.wait_for(ps.get_message(timeout=1.0), 30)
                    if msg is not None:
                        confirmations.add(msg["type"])
                assert confirmations == {"subscribe", "psubscribe"}

                assert await pub.publish(chan, "hello") == 1
                assert await pub.publish(f"{loop_name}.sport.tennis", "ace") == 1
                assert await pub.publish(f"{loop_name}.other", "nobody listens") == 0
                for i in range(100):
                    await pub.publish(chan, f"n{i}")

                msg = await asyncio.wait_for(next_message(ps), 30)
                assert (msg["type"], msg["channel"], msg["data"]) == ("message", chan, "hello")
                msg = await asyncio.wait_for(next_message(ps), 30)
                assert (msg["type"], msg["pattern"], msg["channel"], msg["data"]) == (
                    "pmessage", f"{loop_name}.sport.*", f"{loop_name}.sport.tennis", "ace")
                rest = [(await asyncio.wait_for(next_message(ps), 30))["data"] for _ in range(100)]
                assert rest == [f"n{i}" for i in range(100)]

                await ps.unsubscribe(chan)
                await ps.punsubscribe()
                while ps.subscribed:
                    await asyncio.wait_for(ps.get_message(timeout=1.0), 30)
                assert await pub.publish(chan, "too late") == 0
        finally:
            await pub.aclose()
            await sub.aclose()

    run(loop_factory, main)


def test_many_concurrent_clients(redis_server, loop_factory, loop_name):
    p = f"{loop_name}:many:"
    n_clients = 40

    async def main():
        clients = [aioredis.Redis.from_url(redis_server.url, decode_responses=True) for _ in range(n_clients)]
        try:
            async def bump(r):
                for _ in range(25):
                    await r.incr(p + "counter")

            await asyncio.gather(*(bump(r) for r in clients))
            assert await clients[0].get(p + "counter") == str(n_clients * 25)

            # Every client blocks in BLPOP at once; one push per client wakes each exactly once.
            waiting = [asyncio.ensure_future(r.blpop([p + "queue"], timeout=30)) for r in clients[1:]]
            while int((await clients[0].info("clients"))["blocked_clients"]) < len(waiting):
                await asyncio.sleep(0.01)
            await clients[0].rpush(p + "queue", *range(len(waiting)))
            popped = await asyncio.wait_for(asyncio.gather(*waiting), 30)
            assert sorted(int(v) for _, v in popped) == list(range(len(waiting)))

            # One client, a bounded pool of 20 connections, 500 concurrent commands waiting their turn.
            pool = aioredis.BlockingConnectionPool.from_url(redis_server.url, max_connections=20, timeout=30,
                                                            decode_responses=True)
            shared = aioredis.Redis(connection_pool=pool)
            try:
                values = await asyncio.gather(*(shared.echo(f"v{i}") for i in range(500)))
                assert values == [f"v{i}" for i in range(500)]
                await shared.delete(p + "counter", p + "queue")
            finally:
                await shared.aclose()
                await pool.disconnect()
        finally:
            await asyncio.gather(*(r.aclose() for r in clients))

    run(loop_factory, main)


def test_cancelled_blocking_read_leaves_client_usable(redis_server, loop_factory, loop_name):
    key = f"{loop_name}:cancel:q"

    async def main():
        r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(r.blpop([key], timeout=0), 0.2)  # blocks forever server-side
            # The half-read connection was dropped, not returned to the pool.
            await r.rpush(key, "x")
            assert await r.lpop(key) == "x"
            assert await r.ping() is True
        finally:
            await r.aclose()

    run(loop_factory, main)


def test_unix_socket_connection(redis_server, loop_factory, loop_name):
    key = f"{loop_name}:unix"

    async def main():
        r = aioredis.Redis(unix_socket_path=redis_server.unix_path)
        try:
            value = os.urandom(300_000)
            assert await r.set(key, value) is True
            assert await r.get(key) == value
            async with r.pipeline(transaction=True) as pipe:
                pipe.incr(key + ":n").incr(key + ":n")
                assert await pipe.execute() == [1, 2]
            assert await r.delete(key, key + ":n") == 2
        finally:
            await r.aclose()

    run(loop_factory, main)


def test_connection_refused_is_connection_error(loop_factory):
    import socket

    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    async def main():
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        r = aioredis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=30,
                           retry=Retry(NoBackoff(), 0))  # fail at once, no reconnect back-off
        try:
            with pytest.raises(RedisConnectionError):
                await r.ping()
        finally:
            await r.aclose()

    run(loop_factory, main)


def test_server_side_client_kill_then_reconnect(redis_server, loop_factory, loop_name):
    async def main():
        r = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        admin = aioredis.Redis.from_url(redis_server.url, decode_responses=True)
        try:
            await r.client_setname(f"victim-{loop_name}")
            first_id = await r.client_id()
            assert await admin.client_kill_filter(_id=first_id) == 1
            # The pooled connection is dead.  Whether the next command reports it
            # (ConnectionError) or the pool's check sees the EOF first and reconnects
            # depends on when the EOF was read; after at most one failure a fresh
            # connection serves the client.
            try:
                await r.ping()
            except RedisConnectionError:
                pass
            assert await r.ping() is True
            assert await r.client_id() != first_id
        finally:
            await admin.aclose()
            await r.aclose()

    run(loop_factory, main)
