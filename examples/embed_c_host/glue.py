"""The Python half of the C host: the functions ``host.c`` calls, and the program they run.

cffi compiles this file into the shared library as its *embedding init code*: it runs once,
in the interpreter cffi starts inside the C program on its first call into the library, and
each ``@ffi.def_extern()`` function becomes the C function of the same name declared in
``build.py``'s API.  A Python exception in one of them is printed and the C caller gets the
``error`` value instead.

The program is an uppercasing echo server on a pyloop loop, which stops after one client: the
C host itself, over a socket in its own epoll loop.  The uppercasing runs in a worker thread
(``asyncio.to_thread``), so the result comes back through ``call_soon_threadsafe``: that wakes
the C host out of ``epoll_wait`` through pyloop's backend fd while no pyloop timer is pending.
"""

import asyncio
import math

from _pyloop_host import ffi  # the module cffi builds into the library

import pyloop

_state: dict = {}


async def serve(port: "asyncio.Future[int]", clients: int) -> str:
    served = 0
    done = asyncio.Event()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        data = await reader.read()                      # up to the client's EOF
        writer.write(await asyncio.to_thread(bytes.upper, data))
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        served += 1
        if served == clients:
            done.set()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port.set_result(server.sockets[0].getsockname()[1])
    await done.wait()
    server.close()
    await server.wait_closed()
    return f"served {served} client on {type(asyncio.get_running_loop()).__name__}"


@ffi.def_extern(error=-1)
def pyhost_start() -> int:
    loop = pyloop.new_event_loop()
    port = loop.create_future()
    _state.update(loop=loop, port=port, app=loop.create_task(serve(port, clients=1)))
    return loop.backend_fd()


@ffi.def_extern(error=-2)
def pyhost_timeout_ms() -> int:
    timeout = _state["loop"].backend_timeout()
    # Rounded up: waking before the timer is due would only make a step with nothing to do.
    return -1 if timeout is None else math.ceil(timeout * 1000)


@ffi.def_extern(error=-1)
def pyhost_step() -> int:
    _state["loop"].run_nowait()
    return 1 if _state["app"].done() else 0


@ffi.def_extern(error=-1)
def pyhost_port() -> int:
    port = _state["port"]
    return port.result() if port.done() else 0


@ffi.def_extern(error=-1)
def pyhost_result(buf, size: int) -> int:
    text = _state["app"].result().encode()[:size - 1]
    ffi.memmove(buf, text + b"\0", len(text) + 1)
    return len(text)


@ffi.def_extern()
def pyhost_close() -> None:
    loop = _state.pop("loop")
    # What the last step scheduled (transport close callbacks), then the loop's own shutdown.
    while loop.backend_timeout() == 0:
        loop.run_nowait()
    loop.run_until_complete(loop.shutdown_default_executor())
    loop.close()
