"""A streams client and server in one program, on pyloop via install().

    python examples/streams_client.py
"""

import asyncio

import pyloop

handled = asyncio.Event()


async def handle(reader, writer):
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()
    await writer.wait_closed()
    handled.set()


async def main():
    server = await asyncio.start_server(handle, '127.0.0.1', 0)
    host, port = server.sockets[0].getsockname()[:2]
    reader, writer = await asyncio.open_connection(host, port)
    for word in ('event', 'loop', 'in', 'c'):
        writer.write(word.encode() + b'\n')
        await writer.drain()
        print((await reader.readline()).decode().strip())
    writer.close()
    await writer.wait_closed()
    await handled.wait()          # the server saw EOF and finished
    server.close()
    await server.wait_closed()
    print('loop:', type(asyncio.get_running_loop()).__module__)


if __name__ == '__main__':
    pyloop.install()          # asyncio.run() now creates pyloop loops
    asyncio.run(main())
