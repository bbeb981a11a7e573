"""loop.getaddrinfo / loop.getnameinfo: the same answers and errors as the
socket module, without blocking the loop.

Both loops must return exactly what ``socket.getaddrinfo`` returns (same list,
same order).  pyloop answers lookups that need no name service -- a numeric
host (or none) with a numeric port -- inline, without a trip through the
default executor; the pyloop-only tests at the end check that with an
executor that records what is submitted to it.
"""

import asyncio
import concurrent.futures
import socket
import threading

import pytest

from ._util import run, tcp_listener

S = socket
STREAM, DGRAM = S.SOCK_STREAM, S.SOCK_DGRAM


def _lo_index():
    try:
        return S.if_nametoindex("lo")
    except OSError:
        return None


LO_INDEX = _lo_index()
needs_lo = pytest.mark.skipif(LO_INDEX is None, reason="no 'lo' interface here")


def _has_service(name, proto="tcp"):
    try:
        S.getservbyname(name, proto)
        return True
    except OSError:
        return False


needs_http_service = pytest.mark.skipif(
    not _has_service("http"), reason="no 'http' entry in the services database"
)


def _gai(host, port, family=0, type_=0, proto=0, flags=0):
    """socket.getaddrinfo's outcome: ('ok', list) or ('err', exception type, errno)."""
    try:
        return ("ok", S.getaddrinfo(host, port, family, type_, proto, flags))
    except OSError as exc:
        return ("err", exc.__class__, exc.errno)


async def _loop_gai(loop, host, port, family=0, type_=0, proto=0, flags=0):
    """The same outcome from loop.getaddrinfo."""
    try:
        return ("ok", await loop.getaddrinfo(host, port, family=family, type=type_,
                                             proto=proto, flags=flags))
    except OSError as exc:
        return ("err", exc.__class__, exc.errno)


# (host, port, family, type, proto, flags): numeric hosts (or none), numeric ports.
NUMERIC_CASES = [
    ("127.0.0.1", 80, 0, 0, 0, 0),
    ("127.0.0.1", 80, 0, STREAM, 0, 0),
    ("127.0.0.1", 53, S.AF_INET, DGRAM, 0, 0),
    ("127.0.0.1", 0, 0, STREAM, S.IPPROTO_TCP, 0),
    ("127.0.0.1", None, 0, 0, 0, 0),
    ("127.0.0.1", "8080", 0, STREAM, 0, 0),
    ("127.0.0.1", b"443", 0, 0, 0, 0),
    ("127.0.0.1", "0080", 0, STREAM, 0, 0),
    ("127.0.0.1", 70000, 0, STREAM, 0, 0),  # libc truncates; we must not care
    ("0.0.0.0", 80, 0, STREAM, 0, S.AI_PASSIVE),
    ("10.1.2.3", 80, 0, STREAM, 0, S.AI_CANONNAME),
    (b"127.0.0.1", 80, 0, STREAM, 0, 0),
    ("::1", 80, 0, 0, 0, 0),
    ("::1", 80, S.AF_INET6, STREAM, 0, 0),
    ("::", 8080, S.AF_INET6, STREAM, 0, S.AI_PASSIVE),
    ("2001:db8::1", "443", 0, DGRAM, 0, 0),
    ("0:0:0::1", 80, 0, STREAM, 0, 0),
    ("::ffff:192.0.2.1", 80, 0, STREAM, 0, 0),
    ("192.0.2.1", 80, S.AF_INET6, STREAM, 0, S.AI_V4MAPPED),
    (b"::1", b"80", 0, STREAM, 0, 0),
    (None, 80, 0, STREAM, 0, S.AI_PASSIVE),
    (None, 80, 0, 0, 0, S.AI_PASSIVE),
    (None, "8080", S.AF_INET, STREAM, 0, S.AI_PASSIVE),
    (None, 0, S.AF_INET6, DGRAM, 0, S.AI_PASSIVE),
    (None, 80, 0, STREAM, 0, 0),  # no AI_PASSIVE: the loopback addresses
]


@pytest.mark.parametrize("case", NUMERIC_CASES, ids=repr)
def test_numeric_lookups_equal_socket_getaddrinfo(loop, case):
    expected = _gai(*case)
    assert expected[0] == "ok", expected
    assert run(loop, _loop_gai(loop, *case)) == expected


def test_results_keep_socket_module_types(loop):
    # Enum members, not bare ints, exactly as socket.getaddrinfo gives them.
    [(family, type_, proto, canon, addr)] = run(
        loop, loop.getaddrinfo("127.0.0.1", 80, type=STREAM)
    )
    assert family is S.AF_INET and type(family) is S.AddressFamily
    assert type_ is S.SOCK_STREAM and type(type_) is S.SocketKind
    assert (proto, canon, addr) == (S.IPPROTO_TCP, "", ("127.0.0.1", 80))


@needs_lo
@pytest.mark.parametrize("host", ["fe80::1%lo", f"fe80::1%{LO_INDEX}", b"fe80::1%lo"])
def test_scoped_ipv6_literal(loop, host):
    expected = _gai(host, 443, 0, STREAM)
    assert expected[0] == "ok", expected
    got = run(loop, _loop_gai(loop, host, 443, type_=STREAM))
    assert got == expected
    [(_, _, _, _, sockaddr)] = got[1]
    assert sockaddr == ("fe80::1", 443, 0, LO_INDEX)


@needs_http_service
@pytest.mark.parametrize("host", ["127.0.0.1", "::1", None])
def test_service_names(loop, host):
    expected = _gai(host, "http", 0, STREAM)
    assert expected[0] == "ok", expected
    assert run(loop, _loop_gai(loop, host, "http", type_=STREAM)) == expected
    assert {info[4][1] for info in expected[1]} == {80}


def test_localhost(loop):
    expected = _gai("localhost", 80, 0, STREAM)
    assert expected[0] == "ok", expected
    got = run(loop, _loop_gai(loop, "localhost", 80, type_=STREAM))
    assert got == expected
    for family, _, _, _, sockaddr in got[1]:
        assert family in (S.AF_INET, S.AF_INET6)
        assert sockaddr[0] in ("127.0.0.1", "::1")
        assert sockaddr[1] == 80


ERROR_CASES = [
    # name service errors (through the executor)
    ("pyloop-does-not-exist.invalid", 80, 0, STREAM, 0, 0),
    ("127.0.0.1", "no-such-service-pyloop", 0, STREAM, 0, 0),
    ("127.0.0.1", "80x", 0, STREAM, 0, 0),
    (None, None, 0, 0, 0, 0),
    # numeric inputs that still fail (inline on pyloop)
    ("::1", 80, S.AF_INET, STREAM, 0, 0),
    ("127.0.0.1", 80, S.AF_INET6, STREAM, 0, 0),
    ("127.0.0.1", -1, 0, STREAM, 0, 0),
    ("fe80::1%pyloop-no-such-if", 80, 0, STREAM, 0, 0),
    ("127.0.0.1", 80, 0, S.SOCK_RAW, S.IPPROTO_TCP, 0),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=repr)
def test_errors_are_gaierror_as_in_socket(loop, case):
    expected = _gai(*case)
    assert expected[0] == "err" and expected[1] is S.gaierror, expected
    got = run(loop, _loop_gai(loop, *case))
    if case[0] == "pyloop-does-not-exist.invalid":
        # The resolver may say "no such name" or "try again" (offline).
        assert got[:2] == ("err", S.gaierror)
    else:
        assert got == expected


@pytest.mark.parametrize("port", [80.0, object(), [80]], ids=repr)
def test_bad_port_type_raises_as_socket_does(loop, port):
    with pytest.raises(OSError) as want:
        S.getaddrinfo("127.0.0.1", port)
    with pytest.raises(type(want.value)) as got:
        run(loop, loop.getaddrinfo("127.0.0.1", port))
    assert str(got.value) == str(want.value)


def test_getaddrinfo_on_a_closed_loop_raises(loop_factory):
    lp = loop_factory()
    lp.close()
    for host, port in [("127.0.0.1", 80), ("localhost", 80)]:
        coro = lp.getaddrinfo(host, port)
        with pytest.raises(RuntimeError, match="closed"):
            coro.send(None)
        coro.close()


# ---- getnameinfo ---------------------------------------------------------

NUMERIC_NI = S.NI_NUMERICHOST | S.NI_NUMERICSERV

NAMEINFO_CASES = [
    (("127.0.0.1", 80), NUMERIC_NI),
    (("127.0.0.1", 80), NUMERIC_NI | S.NI_DGRAM),
    (("::1", 443, 0, 0), NUMERIC_NI),
    (("127.0.0.1", 80), S.NI_NUMERICHOST),
    (("127.0.0.1", 80), S.NI_NUMERICSERV),
    (("127.0.0.1", 80), 0),
]


@pytest.mark.parametrize("sockaddr,flags", NAMEINFO_CASES, ids=repr)
def test_getnameinfo_equals_socket_getnameinfo(loop, sockaddr, flags):
    expected = S.getnameinfo(sockaddr, flags)
    assert run(loop, loop.getnameinfo(sockaddr, flags)) == expected


@needs_lo
def test_getnameinfo_scoped(loop):
    sockaddr = ("fe80::1", 80, 0, LO_INDEX)
    expected = S.getnameinfo(sockaddr, NUMERIC_NI)
    assert run(loop, loop.getnameinfo(sockaddr, NUMERIC_NI)) == expected


@pytest.mark.parametrize("flags", [NUMERIC_NI, 0], ids=["numeric", "lookup"])
def test_getnameinfo_errors_as_socket(loop, flags):
    sockaddr = ("pyloop-does-not-exist.invalid", 80)
    with pytest.raises(S.gaierror) as want:
        S.getnameinfo(sockaddr, flags)
    with pytest.raises(S.gaierror) as got:
        run(loop, loop.getnameinfo(sockaddr, flags))
    assert got.value.errno == want.value.errno


# ---- many lookups at once -------------------------------------------------


def test_many_concurrent_lookups_complete(loop):
    queries = []
    for i in range(60):
        queries.append(("127.0.0.1", 1000 + i, 0, STREAM, 0, 0))
        queries.append(("::1", str(2000 + i), 0, DGRAM, 0, 0))
        queries.append(("localhost", 3000 + i, 0, STREAM, 0, 0))
        queries.append((None, 4000 + i, 0, STREAM, 0, S.AI_PASSIVE))
    if _has_service("http"):
        queries += [("127.0.0.1", "http", 0, STREAM, 0, 0)] * 20
    queries += [("127.0.0.1", "no-such-service-pyloop", 0, STREAM, 0, 0)] * 10
    expected = [_gai(*q) for q in queries]

    async def main():
        return await asyncio.gather(*(_loop_gai(loop, *q) for q in queries))

    assert run(loop, main()) == expected


# ---- connect paths (_ensure_resolved) -------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", b"127.0.0.1", "localhost"], ids=repr)
def test_sock_connect_resolves_host(loop, host):
    srv = tcp_listener()
    port = srv.getsockname()[1]
    c = S.socket(S.AF_INET, STREAM)
    c.setblocking(False)
    try:
        run(loop, loop.sock_connect(c, (host, port)))
        conn, _ = srv.accept()
        conn.close()
        assert c.getpeername() == ("127.0.0.1", port)
    finally:
        c.close()
        srv.close()


def _ipv6_loopback_listener():
    if not S.has_ipv6:
        return None
    try:
        srv = S.socket(S.AF_INET6, STREAM)
    except OSError:
        return None
    try:
        srv.bind(("::1", 0))
    except OSError:
        srv.close()
        return None
    srv.listen(4)
    return srv


@pytest.mark.parametrize("scoped", [False, True], ids=["plain", "scoped"])
def test_create_connection_ipv6_literal(loop, scoped):
    srv = _ipv6_loopback_listener()
    if srv is None:
        pytest.skip("no IPv6 loopback here")
    if scoped and LO_INDEX is None:
        srv.close()
        pytest.skip("no 'lo' interface here")
    port = srv.getsockname()[1]
    # glibc takes interface names only for link-local addresses.
    host = f"::1%{LO_INDEX}" if scoped else "::1"

    async def main():
        tr, _ = await loop.create_connection(asyncio.Protocol, host, port)
        peer = tr.get_extra_info("peername")
        tr.close()
        return peer

    try:
        peer = run(loop, main())
        conn, _ = srv.accept()
        conn.close()
    finally:
        srv.close()
    assert peer[:2] == ("::1", port)


# ---- pyloop: no executor for numeric lookups ------------------------------


class RecordingExecutor(concurrent.futures.ThreadPoolExecutor):
    """A default executor that remembers what was submitted to it."""

    def __init__(self):
        super().__init__(max_workers=2)
        self.submitted = []
        self._lock = threading.Lock()

    def submit(self, fn, /, *args, **kwargs):
        with self._lock:
            self.submitted.append((getattr(fn, "__name__", fn), args))
        return super().submit(fn, *args, **kwargs)


@pytest.fixture
def recording(loop):
    ex = RecordingExecutor()
    loop.set_default_executor(ex)
    yield ex
    ex.shutdown(wait=True)


pyloop_only = pytest.mark.skip_loops(
    "asyncio", "uvloop", reason="asyncio resolves every name in the executor"
)


@pyloop_only
@pytest.mark.parametrize("case", NUMERIC_CASES, ids=repr)
def test_numeric_getaddrinfo_does_not_use_the_executor(loop, recording, case):
    assert run(loop, _loop_gai(loop, *case)) == _gai(*case)
    assert recording.submitted == []


@pyloop_only
@pytest.mark.parametrize(
    "case",
    [c for c in ERROR_CASES if c[0] != "pyloop-does-not-exist.invalid"
     and isinstance(c[1], int)],
    ids=repr,
)
def test_numeric_errors_do_not_use_the_executor(loop, recording, case):
    assert run(loop, _loop_gai(loop, *case)) == _gai(*case)
    assert recording.submitted == []


@pyloop_only
@needs_lo
def test_scoped_literal_does_not_use_the_executor(loop, recording):
    assert run(loop, _loop_gai(loop, "fe80::1%lo", 80)) == _gai("fe80::1%lo", 80)
    assert recording.submitted == []


@pyloop_only
@pytest.mark.parametrize(
    "host,port",
    [("localhost", 80), ("127.0.0.1", "http"), (None, "http"), ("127.1", 80),
     ("127.0.0.1", " 80"), ("127.0.0.1", "+80"), ("127.0.0.1", "")],
    ids=repr,
)
def test_lookups_that_may_need_a_service_use_the_executor(loop, recording, host, port):
    assert run(loop, _loop_gai(loop, host, port, type_=STREAM)) == _gai(host, port, 0, STREAM)
    assert [name for name, _ in recording.submitted] == ["getaddrinfo"]


@pyloop_only
def test_getnameinfo_numeric_flags_do_not_use_the_executor(loop, recording):
    assert run(loop, loop.getnameinfo(("127.0.0.1", 80), NUMERIC_NI)) == ("127.0.0.1", "80")
    assert recording.submitted == []
    run(loop, loop.getnameinfo(("127.0.0.1", 80), S.NI_NUMERICHOST))
    assert [name for name, _ in recording.submitted] == ["getnameinfo"]


@pyloop_only
def test_connect_to_numeric_hosts_does_not_use_the_executor(loop, recording):
    srv = tcp_listener()
    port = srv.getsockname()[1]

    async def main():
        for host in ("127.0.0.1", b"127.0.0.1"):
            c = S.socket(S.AF_INET, STREAM)
            c.setblocking(False)
            try:
                await loop.sock_connect(c, (host, port))
            finally:
                c.close()
        tr, _ = await loop.create_connection(asyncio.Protocol, "127.0.0.1", port)
        tr.close()

    try:
        run(loop, main())
    finally:
        srv.close()
    assert recording.submitted == []


@pyloop_only
def test_numeric_lookup_completes_without_suspending(loop, recording):
    # The inline path returns on the coroutine's first step.
    coro = loop.getaddrinfo("127.0.0.1", 80, type=STREAM)
    with pytest.raises(StopIteration) as stop:
        coro.send(None)
    assert stop.value.value == S.getaddrinfo("127.0.0.1", 80, 0, STREAM)
