"""``DatagramTransport.sendto`` to a host name: refused with ValueError, never resolved in the loop.

The socket module resolves a host name given to ``sendto`` with a blocking ``getaddrinfo``,
DNS included, in the calling thread: asyncio's transport blocks its loop there.  uvloop refuses
such an address with ValueError; pyloop does as uvloop (the reference here, run these with
``PYLOOP_TEST_LOOPS=asyncio,pyloop,uvloop``).  IP literals keep working, and so do the two names
the socket module translates without a lookup, ``""`` and ``"<broadcast>"`` (asyncio accepts
them; uvloop refuses ``""``, pyloop keeps asyncio's behaviour there).

An IP literal of the wrong family for the endpoint (``"::1"`` on an ``AF_INET`` one) can
never be sent to: uvloop and pyloop refuse it with ValueError ("socket family mismatch"), asyncio
hands the ``socket.gaierror`` from ``socket.sendto`` to ``error_received``.
"""

import asyncio
import contextlib
import socket

import pytest

from ._netutil import TIMEOUT, needs_ipv6, run

pytestmark = pytest.mark.timeout(120)

NOT_ASYNCIO = pytest.mark.skip_loops(
    "asyncio", reason="asyncio resolves the name with a blocking lookup inside the loop")


class Receiver(asyncio.DatagramProtocol):
    def __init__(self):
        self.received = asyncio.get_running_loop().create_future()
        self.errors = []

    def datagram_received(self, data, addr):
        if not self.received.done():
            self.received.set_result(data)

    def error_received(self, exc):
        self.errors.append(exc)


@contextlib.asynccontextmanager
async def _pair(loop, family, host):
    """A receiving and a sending endpoint on ``host``, closed on the way out:
    (rx_tr, rx, tx_tr, tx, the receiver's port)."""
    rx_tr, rx = await loop.create_datagram_endpoint(Receiver, local_addr=(host, 0), family=family)
    try:
        tx_tr, tx = await loop.create_datagram_endpoint(Receiver, local_addr=(host, 0), family=family)
        try:
            yield rx_tr, rx, tx_tr, tx, rx_tr.get_extra_info("sockname")[1]
        finally:
            tx_tr.close()
    finally:
        rx_tr.close()


@NOT_ASYNCIO
@pytest.mark.parametrize("name", ["localhost", "pyloop-no-such-host.invalid", b"localhost", "example.com"])
def test_sendto_a_host_name_is_refused_and_the_transport_stays_usable(loop, name):
    async def main():
        async with _pair(loop, socket.AF_INET, "127.0.0.1") as (rx_tr, rx, tx_tr, tx, port):
            with pytest.raises(ValueError, match="DNS lookup"):
                tx_tr.sendto(b"by name", (name, port))
            assert not tx_tr.is_closing()
            tx_tr.sendto(b"by address", ("127.0.0.1", port))
            assert await asyncio.wait_for(rx.received, TIMEOUT) == b"by address"
            assert tx.errors == []

    run(loop, main())


@NOT_ASYNCIO
@needs_ipv6
def test_sendto_a_host_name_on_ipv6_is_refused(loop):
    async def main():
        async with _pair(loop, socket.AF_INET6, "::1") as (rx_tr, rx, tx_tr, tx, port):
            with pytest.raises(ValueError, match="DNS lookup"):
                tx_tr.sendto(b"x", ("localhost", port, 0, 0))
            tx_tr.sendto(b"v6", ("::1", port, 0, 0))
            assert await asyncio.wait_for(rx.received, TIMEOUT) == b"v6"

    run(loop, main())


@pytest.mark.parametrize("host", ["127.0.0.1", b"127.0.0.1"])
def test_sendto_ip_literals_still_work(loop, host):
    async def main():
        async with _pair(loop, socket.AF_INET, "127.0.0.1") as (rx_tr, rx, tx_tr, tx, port):
            tx_tr.sendto(b"literal", (host, port))
            assert await asyncio.wait_for(rx.received, TIMEOUT) == b"literal"

    run(loop, main())


@pytest.mark.skip_loops("uvloop", reason="uvloop refuses the empty host too")
def test_sendto_the_any_address_names_are_not_lookups(loop):
    """"" (INADDR_ANY: on Linux, to this host) is translated by the socket module itself."""
    async def main():
        async with _pair(loop, socket.AF_INET, "127.0.0.1") as (rx_tr, rx, tx_tr, tx, port):
            tx_tr.sendto(b"any", ("", port))
            assert await asyncio.wait_for(rx.received, TIMEOUT) == b"any"

    run(loop, main())


def test_connected_endpoint_ignores_the_check(loop):
    """An endpoint made with remote_addr sends with send(): its (resolved) address is fixed."""
    async def main():
        rx_tr, rx = await loop.create_datagram_endpoint(Receiver, local_addr=("127.0.0.1", 0))
        try:
            port = rx_tr.get_extra_info("sockname")[1]
            tx_tr, _ = await loop.create_datagram_endpoint(
                Receiver, remote_addr=("localhost", port), family=socket.AF_INET)
            try:
                tx_tr.sendto(b"connected")
                assert await asyncio.wait_for(rx.received, TIMEOUT) == b"connected"
            finally:
                tx_tr.close()
        finally:
            rx_tr.close()

    run(loop, main())


@pytest.mark.parametrize("family, host, other", [
    pytest.param(socket.AF_INET, "127.0.0.1", "::1", id="ipv4-endpoint-ipv6-literal"),
    pytest.param(socket.AF_INET, "127.0.0.1", "fe80::1%lo", id="ipv4-endpoint-scoped-ipv6-literal"),
    pytest.param(socket.AF_INET6, "::1", "127.0.0.1", id="ipv6-endpoint-ipv4-literal",
                 marks=needs_ipv6),
])
def test_sendto_an_ip_literal_of_the_other_family(loop, loop_name, family, host, other):
    async def main():
        async with _pair(loop, family, host) as (rx_tr, rx, tx_tr, tx, port):
            if loop_name == "asyncio":
                # The reference differs: socket.sendto's gaierror goes to error_received.
                tx_tr.sendto(b"mismatch", (other, port))
                assert len(tx.errors) == 1 and isinstance(tx.errors[0], socket.gaierror)
            else:
                with pytest.raises(ValueError, match="socket family mismatch") as caught:
                    tx_tr.sendto(b"mismatch", (other, port))
                assert tx.errors == []
                if loop_name == "pyloop":
                    # Says what was given and what the socket is.
                    assert repr((other, port)) in str(caught.value)
                    assert socket.AddressFamily(family).name in str(caught.value)
            # Either way the endpoint stays open and usable.
            assert not tx_tr.is_closing()
            tx_tr.sendto(b"right family", (host, port))
            assert await asyncio.wait_for(rx.received, TIMEOUT) == b"right family"

    run(loop, main())


def test_host_family_rules():
    pytest.importorskip("pyloop._core.loop", reason="pyloop is not built")
    from pyloop._transports.datagram import _host_family

    for addr in [("127.0.0.1", 1), (b"10.0.0.1", 1), ("10.0.0.1", 1, 0, 0)]:
        assert _host_family(addr) == socket.AF_INET, addr
    for addr in [("::1", 1, 0, 0), ("fe80::1%lo", 1, 0, 0), (b"::1", 1), ("::ffff:1.2.3.4", 1)]:
        assert _host_family(addr) == socket.AF_INET6, addr
    # Nothing to judge: translated by the socket module, or malformed (sendto reports it).
    for addr in [("", 1), ("<broadcast>", 1), "not a tuple", (42, 1), ("x",)]:
        assert _host_family(addr) == 0, addr
    # Names: sendto would look them up.
    for addr in [("localhost", 1), ("a.example", 1, 0, 0), (b"localhost", 1),
                 ("b\u00fccher.example", 1), ("1.2.3.4%eth0", 1), ("bad\0host", 1)]:
        assert _host_family(addr) is None, addr
