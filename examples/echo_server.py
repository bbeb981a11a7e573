"""An echo server on pyloop: asyncio's Protocol API, pyloop's loop.

    python examples/echo_server.py --port 8888
    # in another shell:  printf 'hello\n' | nc -q1 127.0.0.1 8888
"""

import argparse
import asyncio

import pyloop


class Echo(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.transport.write(data)


async def main(host, port):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Echo, host, port)
    print('serving on', ', '.join(str(s.getsockname()) for s in server.sockets),
          flush=True)
    async with server:
        await server.serve_forever()


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=8888)
    args = parser.parse_args()
    try:
        pyloop.run(main(args.host, args.port))
    except KeyboardInterrupt:
        pass
