"""A TLS peer in a thread, driven step by step, for the TLS tests (test_tls*.py).

The loop under test is one end of the connection; the other end is plain blocking Python in a thread:
``BioPeer`` speaks TLS over ``ssl.MemoryBIO`` so a test controls exactly which records go out when
(application data in the same write as the handshake's last flight, data after close_notify, close_notify
without waiting for the answer...).  Threads synchronise with the test through ``threading.Event`` and
the loop's ``call_soon_threadsafe``, never through sleeps.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading

from ._netutil import TIMEOUT


class BioPeer:
    """TLS over a blocking socket through memory BIOs: every byte sent is chosen by the test."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, *, server_side: bool,
                 server_hostname: str | None = None):
        sock.settimeout(TIMEOUT)
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_side=server_side,
                                    server_hostname=server_hostname)

    def flush(self) -> None:
        """Send everything TLS produced."""
        if self.outgoing.pending:
            self.sock.sendall(self.outgoing.read())

    def pull(self) -> bool:
        """Receive some ciphertext; False at EOF."""
        data = self.sock.recv(65536)
        if not data:
            self.incoming.write_eof()
            return False
        self.incoming.write(data)
        return True

    def handshake(self, *, send_last_flight: bool = True) -> None:
        """Complete the handshake; the last flight stays queued when send_last_flight is False
        (so the next write goes out in the same send)."""
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                if not self.pull():
                    raise ConnectionError("EOF during the handshake")
        if send_last_flight:
            self.flush()

    def write(self, data: bytes, *, send: bool = True) -> None:
        self.obj.write(data)
        if send:
            self.flush()

    def read_exactly(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            try:
                out += self.obj.read(n - len(out))
            except ssl.SSLWantReadError:
                if not self.pull():
                    raise ConnectionError(f"EOF after {len(out)} of {n} bytes") from None
        return bytes(out)

    def read_until_close_notify(self) -> bytes:
        """Everything the peer sends up to its close_notify."""
        out = bytearray()
        while True:
            try:
                chunk = self.obj.read(65536)
            except ssl.SSLWantReadError:
                if not self.pull():
                    raise ConnectionError("EOF without close_notify") from None
                continue
            except ssl.SSLZeroReturnError:
                return bytes(out)
            if not chunk:
                return bytes(out)
            out += chunk

    def send_close_notify(self) -> None:
        """Send our close_notify without waiting for the peer's.

        _ssl calls SSL_shutdown twice; the second call reads, looking for the peer's close_notify,
        and application data already received makes it fail for good (the connection is then
        dead, and OpenSSL tells the peer with an alert).  So what was received and not read yet
        is taken out of the BIO around the call and put back after it."""
        held = self.incoming.read() if self.incoming.pending else b""
        try:
            self.obj.unwrap()
        except ssl.SSLWantReadError:
            pass
        if held:
            self.incoming.write(held)
        self.flush()

    def finish_unwrap(self) -> None:
        """Complete the TLS shutdown (the peer's close_notify must come)."""
        while True:
            try:
                self.obj.unwrap()
                break
            except ssl.SSLWantReadError:
                self.flush()
                if not self.pull():
                    raise ConnectionError("EOF during the shutdown") from None
        self.flush()


class ThreadServer:
    """Accepts one connection on 127.0.0.1 and runs ``handler(sock)`` on it in a thread.

    ``result`` is a loop future that gets the handler's return value or exception, so a test can
    await the thread's verdict."""

    def __init__(self, loop: asyncio.AbstractEventLoop, handler):
        self.loop = loop
        self.handler = handler
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(TIMEOUT)
        self.addr = self.listener.getsockname()
        self.result = loop.create_future()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _settle(self, ok: bool, value) -> None:
        def settle():
            if not self.result.done():
                (self.result.set_result if ok else self.result.set_exception)(value)
        try:
            self.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the loop is closed: the test is over
            pass

    def _run(self) -> None:
        try:
            conn, _ = self.listener.accept()
            with conn:
                value = self.handler(conn)
        except BaseException as exc:
            self._settle(False, exc)
        else:
            self._settle(True, value)

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.listener.close()
        self.thread.join(TIMEOUT)


def threadsafe_event(loop) -> tuple[threading.Event, callable]:
    """(event, set_from_loop): a threading.Event a loop callback can set."""
    event = threading.Event()
    return event, event.set
