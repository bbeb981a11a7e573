"""A TCP echo server whose listener is an async stream of connections.

    python examples/tcp_echo_stream.py --port 8888
    # in another shell:  printf 'hello\\n' | nc -q1 127.0.0.1 8888
"""

import argparse

import pyloop
from pyloop import net, task


async def echo(conn: net.Stream) -> None:
    async with conn:
        async for chunk in conn:          # ends at the client's EOF
            await conn.write_all(chunk)


async def main(host: str, port: int) -> None:
    async with await net.TcpListener.bind(host, port) as listener:
        print("listening on", listener.local_addr, flush=True)
        async for conn in listener:
            task.spawn(echo(conn))        # the runtime keeps it alive until it ends


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    args = parser.parse_args()
    try:
        pyloop.run(main(args.host, args.port))
    except KeyboardInterrupt:
        pass
