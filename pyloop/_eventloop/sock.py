"""Low-level socket operations: ``loop.sock_*`` on non-blocking sockets.

Every operation first tries the system call at once -- on a busy socket the
data is usually there -- and only when it would block registers a reader or
writer that retries it.  The watcher is removed when the future completes,
including by cancellation, so a cancelled ``sock_recv`` leaves the socket
usable and unwatched.
"""

import errno
import functools
import io
import os
import socket
from asyncio import exceptions as _aio_exceptions

try:
    import ssl as _ssl
except ImportError:  # pragma: no cover - Python built without ssl
    _ssl = None

_SENDFILE_FALLBACK_CHUNK = 256 * 1024
_INET_FAMILIES = (socket.AF_INET, getattr(socket, "AF_INET6", socket.AF_INET))


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
    candidates = (family,) if family else _INET_FAMILIES
    for af in candidates:
        if af not in _INET_FAMILIES:
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


class SockMixin:
    """``sock_*`` coroutines and name resolution of ``AbstractEventLoop``."""

    # ---- helpers --------------------------------------------------------

    def _check_sock(self, sock):
        if _ssl is not None and isinstance(sock, _ssl.SSLSocket):
            raise TypeError("Socket cannot be of type SSLSocket")
        if self.get_debug() and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")

    def _wait_fd(self, fd, writer, callback, *args):
        """Watch fd until the future (args[0]) is done, then unwatch it."""
        fut = args[0]
        if writer:
            self.add_writer(fd, callback, *args)
            handle = self._fd_watched(fd)[1]
        else:
            self.add_reader(fd, callback, *args)
            handle = self._fd_watched(fd)[0]
        fut.add_done_callback(
            functools.partial(self._unwatch_fd, fd, writer, handle))
        return fut

    def _unwatch_fd(self, fd, writer, handle, fut):
        # Only remove our own watcher: the socket may be watched by someone
        # else by now.
        if self.is_closed():
            return
        if self._fd_watched(fd)[1 if writer else 0] is handle:
            if writer:
                self.remove_writer(fd)
            else:
                self.remove_reader(fd)

    def _retry(self, fut, sock, method, args, after):
        """A watcher callback: retry sock.<method>(*args), settle fut with it.

        The method is looked up on every try, as asyncio does: tests and
        wrappers swap a socket's methods while an operation waits."""
        if fut.done():
            return
        try:
            result = getattr(sock, method)(*args)
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
        else:
            fut.set_result(after(result) if after is not None else result)

    async def _sock_io(self, sock, writer, method, *args, after=None):
        try:
            result = getattr(sock, method)(*args)
        except (BlockingIOError, InterruptedError):
            pass
        else:
            return after(result) if after is not None else result
        fut = self.create_future()
        self._wait_fd(sock.fileno(), writer, self._retry, fut, sock, method, args,
                      after)
        return await fut

    # ---- receiving ------------------------------------------------------

    async def sock_recv(self, sock, n):
        """Receive up to ``n`` bytes from ``sock``."""
        self._check_sock(sock)
        return await self._sock_io(sock, False, "recv", n)

    async def sock_recv_into(self, sock, buf):
        """Receive into ``buf``; return the number of bytes received."""
        self._check_sock(sock)
        return await self._sock_io(sock, False, "recv_into", buf)

    async def sock_recvfrom(self, sock, bufsize):
        """Receive a datagram of up to ``bufsize`` bytes: ``(data, address)``."""
        self._check_sock(sock)
        return await self._sock_io(sock, False, "recvfrom", bufsize)

    async def sock_recvfrom_into(self, sock, buf, nbytes=0):
        """Receive a datagram into ``buf``: ``(nbytes, address)``."""
        self._check_sock(sock)
        if not nbytes:
            nbytes = len(buf)
        return await self._sock_io(sock, False, "recvfrom_into", buf, nbytes)

    async def sock_accept(self, sock):
        """Accept a connection: ``(conn, address)``, ``conn`` non-blocking."""
        self._check_sock(sock)
        return await self._sock_io(sock, False, "accept",
                                   after=_make_nonblocking)

    # ---- sending --------------------------------------------------------

    async def sock_sendall(self, sock, data):
        """Send all of ``data``, waiting for buffer space as needed."""
        self._check_sock(sock)
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        view = memoryview(data)
        if sent == len(view):
            return
        fut = self.create_future()
        self._wait_fd(sock.fileno(), True, self._sendall_ready, fut, sock,
                      view, [sent])
        return await fut

    def _sendall_ready(self, fut, sock, view, progress):
        if fut.done():
            return
        start = progress[0]
        try:
            sent = sock.send(view[start:])
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            return
        start += sent
        if start == len(view):
            fut.set_result(None)
        else:
            progress[0] = start

    async def sock_sendto(self, sock, data, address):
        """Send a datagram to ``address``; return the number of bytes sent."""
        self._check_sock(sock)
        return await self._sock_io(sock, True, "sendto", data, address)

    # ---- connecting -----------------------------------------------------

    async def sock_connect(self, sock, address):
        """Connect ``sock`` to ``address`` (resolved first for IP sockets)."""
        self._check_sock(sock)
        if sock.family in _INET_FAMILIES:
            resolved = await self._ensure_resolved(
                address, family=sock.family, type=sock.type, proto=sock.proto)
            address = resolved[0][4]
        try:
            sock.connect(address)
            return
        except (BlockingIOError, InterruptedError):
            pass
        fut = self.create_future()
        self._wait_fd(sock.fileno(), True, self._connect_ready, fut, sock,
                      address)
        return await fut

    def _connect_ready(self, fut, sock, address):
        if fut.done():
            return
        try:
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err != 0:
                raise OSError(err, f"Connect call failed {address}")
        except (BlockingIOError, InterruptedError):
            return
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            fut.set_exception(exc)
        else:
            fut.set_result(None)

    # ---- name resolution ------------------------------------------------
    #
    # A lookup that needs no name service runs inline: with AI_NUMERICHOST
    # (and AI_NUMERICSERV for a numeric port) getaddrinfo only parses its
    # arguments, so it cannot block, and for an input that _lookup_free_flags
    # accepts the extra flags change nothing in the answer or the error
    # (checked against glibc over families, socket types, protocols and
    # AI_* flags).  Everything else goes to the default executor, as asyncio
    # does.  The inline path does not suspend the calling task.

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

    # ---- sendfile -------------------------------------------------------

    async def sock_sendfile(self, sock, file, offset=0, count=None, *,
                            fallback=True):
        """Send ``file`` over the connected stream ``sock``: zero-copy with
        ``os.sendfile`` when possible, else (``fallback``) by reading chunks
        in the executor.  Returns the number of bytes sent."""
        if self.get_debug() and sock.gettimeout() != 0:
            raise ValueError("the socket must be non-blocking")
        _check_sendfile_params(sock, file, offset, count)
        try:
            return await self._sock_sendfile_native(sock, file, offset, count)
        except _aio_exceptions.SendfileNotAvailableError:
            if not fallback:
                raise
        return await self._sock_sendfile_fallback(sock, file, offset, count)

    async def _sock_sendfile_native(self, sock, file, offset, count):
        if not hasattr(os, "sendfile"):
            raise _aio_exceptions.SendfileNotAvailableError(
                "os.sendfile() is not available")
        try:
            fileno = file.fileno()
        except (AttributeError, io.UnsupportedOperation):
            raise _aio_exceptions.SendfileNotAvailableError("not a regular file")
        try:
            fsize = os.fstat(fileno).st_size
        except OSError:
            raise _aio_exceptions.SendfileNotAvailableError("not a regular file")
        blocksize = count if count else fsize
        if not blocksize:
            return 0
        state = _SendfileState(sock, file, fileno, offset, count, blocksize)
        sent = self._sendfile_step(None, state)
        if sent is not None:
            return sent
        fut = self.create_future()
        self._wait_fd(sock.fileno(), True, self._sendfile_step, fut, state)
        return await fut

    def _sendfile_step(self, fut, state):
        """Send as much as the socket takes.  Without a future (first try)
        returns the total when finished, None if it must wait, or raises."""
        if fut is not None and fut.done():
            return None
        while True:
            if state.count:
                blocksize = min(state.count - state.sent, state.blocksize)
                if blocksize <= 0:
                    return state.finish(fut)
            else:
                blocksize = state.blocksize
            try:
                n = os.sendfile(state.sock.fileno(), state.fileno,
                                state.offset + state.sent, blocksize)
            except (BlockingIOError, InterruptedError):
                return None
            except OSError as exc:
                return state.fail(fut, exc)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                return state.fail(fut, exc, as_is=True)
            if n == 0:
                return state.finish(fut)
            state.sent += n

    async def _sock_sendfile_fallback(self, sock, file, offset, count):
        if offset:
            file.seek(offset)
        chunk = min(count, _SENDFILE_FALLBACK_CHUNK) if count else _SENDFILE_FALLBACK_CHUNK
        buf = bytearray(chunk)
        sent = 0
        try:
            while True:
                if count:
                    chunk = min(count - sent, chunk)
                    if chunk <= 0:
                        break
                view = memoryview(buf)[:chunk]
                n = await self.run_in_executor(None, file.readinto, view)
                if not n:
                    break
                await self.sock_sendall(sock, view[:n])
                sent += n
            return sent
        finally:
            if sent > 0 and hasattr(file, "seek"):
                file.seek(offset + sent)


class _SendfileState:
    __slots__ = ("sock", "file", "fileno", "offset", "count", "blocksize",
                 "sent")

    def __init__(self, sock, file, fileno, offset, count, blocksize):
        self.sock = sock
        self.file = file
        self.fileno = fileno
        self.offset = offset
        self.count = count
        self.blocksize = blocksize
        self.sent = 0

    def _update_filepos(self):
        if self.sent > 0:
            os.lseek(self.fileno, self.offset + self.sent, os.SEEK_SET)

    def finish(self, fut):
        self._update_filepos()
        if fut is None:
            return self.sent
        fut.set_result(self.sent)
        return None

    def fail(self, fut, exc, as_is=False):
        if not as_is and isinstance(exc, OSError):
            if exc.errno == errno.ENOTCONN and type(exc) is not ConnectionError:
                new_exc = ConnectionError("socket is not connected", errno.ENOTCONN)
                new_exc.__cause__ = exc
                exc = new_exc
            if self.sent == 0:
                # Nothing went out: the caller may still fall back to
                # read+send (e.g. sendfile refuses this kind of file).
                err = _aio_exceptions.SendfileNotAvailableError(
                    "os.sendfile call failed")
                err.__cause__ = exc
                exc = err
        self._update_filepos()
        if fut is None:
            raise exc
        fut.set_exception(exc)
        return None


def _make_nonblocking(accepted):
    conn, address = accepted
    conn.setblocking(False)
    return conn, address


def _check_sendfile_params(sock, file, offset, count):
    if "b" not in getattr(file, "mode", "b"):
        raise ValueError("file should be opened in binary mode")
    if sock.type != socket.SOCK_STREAM:
        raise ValueError("only SOCK_STREAM type sockets are supported")
    if count is not None:
        if not isinstance(count, int):
            raise TypeError(f"count must be a positive integer (got {count!r})")
        if count <= 0:
            raise ValueError(f"count must be a positive integer (got {count!r})")
    if not isinstance(offset, int):
        raise TypeError(f"offset must be a non-negative integer (got {offset!r})")
    if offset < 0:
        raise ValueError(f"offset must be a non-negative integer (got {offset!r})")
