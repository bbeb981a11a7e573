"""Name resolution: ``loop.getaddrinfo``, ``loop.getnameinfo`` and the
``_ensure_resolved`` that connect and bind paths use.

A lookup that needs no name service runs inline: with AI_NUMERICHOST (and
AI_NUMERICSERV for a numeric port) getaddrinfo only parses its arguments, so
it cannot block, and for an input that ``_lookup_free_flags`` accepts the
extra flags change nothing in the answer or the error (checked against glibc
over families, socket types, protocols and AI_* flags).  Everything else goes
to the default executor, as asyncio does.  The inline path does not suspend
the calling task.  ``_ensure_resolved`` answers a plain numeric IPv4/IPv6
address without even a system call (``_numeric_addrinfo``).
"""

import socket

INET_FAMILIES = (socket.AF_INET, getattr(socket, "AF_INET6", socket.AF_INET))

_NI_NUMERIC = socket.NI_NUMERICHOST | socket.NI_NUMERICSERV


def _is_numeric_host(host):
    """True for an IPv4 dotted quad or an IPv6 literal (with an optional
    ``%scope``), as str or bytes: the hosts getaddrinfo resolves without a
    name service.  Shorthands that inet_aton accepts ('127.1') are left to
    the executor: rare, and their parsing is libc's business."""
    if isinstance(host, bytes):
        try:
            host = host.decode("ascii")
        except UnicodeDecodeError:
            return False
    elif not isinstance(host, str):
        return False
    try:
        socket.inet_pton(socket.AF_INET, host)
        return True
    except (OSError, ValueError):
        pass
    if ":" not in host:
        return False
    addr, sep, scope = host.partition("%")
    if sep and not scope:
        return False
    try:
        socket.inet_pton(socket.AF_INET6, addr)
        return True
    except (OSError, ValueError):
        return False


def _lookup_free_flags(host, port, flags):
    """The AI_* flags that make this getaddrinfo call lookup-free, or 0 if
    it may need a name service (or /etc/services) and must not run inline.

    The port must be one that the C library parses as a number whatever the
    flags: an int (Python formats it in decimal) or ASCII digits.  A signed,
    padded or empty string, a service name and anything exotic go to the
    executor, where socket.getaddrinfo gives its own answer or error."""
    if not isinstance(flags, int):
        return 0
    if host is not None and not _is_numeric_host(host):
        return 0
    if port is None:
        return socket.AI_NUMERICHOST
    if isinstance(port, int):
        return socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
    if isinstance(port, (str, bytes)) and port.isascii() and port.isdigit():
        return socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
    return 0


def _numeric_addrinfo(host, port, family, type, proto, extra):
    """getaddrinfo's answer for a numeric host and port, without a thread
    hop; None if the address needs a real lookup."""
    if not isinstance(port, int) or isinstance(port, bool):
        if isinstance(port, (bytes, str)) and port.isdigit():
            port = int(port)
        elif port is None:
            port = 0
        else:
            return None
    if host is None or isinstance(host, bytes):
        return None
    if not proto:
        # What getaddrinfo would answer for these socket types.
        if type == socket.SOCK_STREAM:
            proto = socket.IPPROTO_TCP
        elif type == socket.SOCK_DGRAM:
            proto = socket.IPPROTO_UDP
    candidates = (family,) if family else INET_FAMILIES
    for af in candidates:
        if af not in INET_FAMILIES:
            return None
        try:
            socket.inet_pton(af, host)
        except (OSError, ValueError):
            continue
        if af == socket.AF_INET:
            return [(af, type, proto, "", (host, port))]
        flowinfo, scope_id = (tuple(extra) + (0, 0))[:2]
        return [(af, type, proto, "", (host, port, flowinfo, scope_id))]
    return None


class DNSMixin:
    """``getaddrinfo``/``getnameinfo`` of ``AbstractEventLoop`` and
    ``_ensure_resolved``.

    Service of ``Loop``, no state of its own.  Needs from the loop:
    ``is_closed`` and ``run_in_executor``.
    """

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0,
                          flags=0):
        """``socket.getaddrinfo`` without blocking the loop: inline for a
        numeric (or absent) host and port, in the default executor
        otherwise."""
        extra = _lookup_free_flags(host, port, flags)
        if extra:
            if self.is_closed():
                raise RuntimeError("Event loop is closed")
            return socket.getaddrinfo(host, port, family, type, proto,
                                      flags | extra)
        return await self.run_in_executor(None, socket.getaddrinfo, host,
                                          port, family, type, proto, flags)

    async def getnameinfo(self, sockaddr, flags=0):
        """``socket.getnameinfo`` without blocking the loop: inline when
        ``flags`` ask for a numeric host and service (no lookup then), in the
        default executor otherwise."""
        if (isinstance(flags, int)
                and flags & _NI_NUMERIC == _NI_NUMERIC):
            if self.is_closed():
                raise RuntimeError("Event loop is closed")
            return socket.getnameinfo(sockaddr, flags)
        return await self.run_in_executor(None, socket.getnameinfo,
                                          sockaddr, flags)

    async def _ensure_resolved(self, address, *, family=0,
                               type=socket.SOCK_STREAM, proto=0, flags=0):
        """Resolve ``address`` (host, port[, flowinfo, scope_id]) for
        connect/bind.  A plain numeric IPv4/IPv6 host is answered by
        _numeric_addrinfo (no system call; keeps flowinfo and scope_id);
        anything else through ``self.getaddrinfo`` -- still inline for a
        scoped IPv6 literal, a bytes host or host None."""
        host, port = address[:2]
        info = _numeric_addrinfo(host, port, family, type, proto, address[2:])
        if info is not None:
            return info
        return await self.getaddrinfo(host, port, family=family, type=type,
                                      proto=proto, flags=flags)
