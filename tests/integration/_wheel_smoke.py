"""Smoke suite for an installed pyloop (a wheel or an sdist build), run by tests/integration/test_wheel.py
with a fresh venv's Python, isolated (``-I``) and away from the checkout.

It checks that the pyloop it imports is the installed one, then runs on a pyloop loop: a coroutine,
a TCP echo over asyncio streams and over ``pyloop.net``, a subprocess, a bounded channel between
two tasks and the virtual clock; and that the pytest plugin's entry point is in the metadata.
Prints ``smoke ok`` at the end.
"""

import asyncio
import importlib.metadata
import os
import subprocess
import sys
import sysconfig

import pyloop
from pyloop import net, sync, task
from pyloop import time as ptime


def check_installed():
    site = os.path.realpath(sysconfig.get_paths()["purelib"])
    package = os.path.realpath(os.path.dirname(pyloop.__file__))
    assert package.startswith(site + os.sep), f"pyloop imported from {package}, not from {site}"
    from pyloop._core import loop as core
    from pyloop.sync import _channels

    for module in (core, _channels):
        assert os.path.realpath(module.__file__).startswith(package), module.__file__
    plugins = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    assert plugins.get("pyloop") == "pyloop.pytest_plugin", plugins


async def streams_echo():
    async def handle(reader, writer):
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        reader, writer = await asyncio.open_connection(*server.sockets[0].getsockname()[:2])
        writer.write(b"ping")
        await writer.drain()
        reply = await reader.read()
        writer.close()
        await writer.wait_closed()
    return reply


async def net_echo():
    async def serve(listener):
        async for conn in listener:
            async with conn:
                async for chunk in conn:
                    await conn.write_all(chunk)
            return

    async with await net.TcpListener.bind("127.0.0.1", 0) as listener:
        server = task.spawn(serve(listener))
        async with await net.TcpStream.connect(*listener.local_addr) as client:
            await client.write_all(b"hello")
            await client.shutdown()
            reply = await client.read_to_end()
        await server
    return reply


async def child_process():
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", "print(6 * 7)",
                                                stdout=subprocess.PIPE)
    out, _ = await proc.communicate()
    return out.strip(), proc.returncode


async def channel_sum():
    tx, rx = sync.channel(4)

    async def produce():
        async with tx:
            for i in range(100):
                await tx.send(i)

    producer = task.spawn(produce())
    total = 0
    async for item in rx:
        total += item
    await producer
    return total


async def virtual_hour():
    loop = asyncio.get_running_loop()
    ptime.pause()
    start = loop.time()
    await asyncio.sleep(3600)
    ptime.resume()
    return round(loop.time() - start)


async def main():
    assert isinstance(asyncio.get_running_loop(), pyloop.Loop)
    assert await streams_echo() == b"ping"
    assert await net_echo() == b"hello"
    assert await child_process() == (b"42", 0)
    assert await channel_sum() == 4950
    assert await virtual_hour() == 3600


if __name__ == "__main__":
    check_installed()
    pyloop.run(main())
    print("smoke ok", pyloop.__version__, os.path.dirname(pyloop.__file__))
