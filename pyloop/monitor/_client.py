"""The client side of the monitor socket, for ``python -m pyloop`` (and tests).

One connection, one request at a time: send a JSON line, read the reply line.
The protocol is described in ``_server.py``.
"""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from ._server import candidate_paths

__all__ = ["MonitorClient", "MonitorError"]

_MAX_REPLY = 64 << 20


class MonitorError(Exception):
    """The monitor could not be reached, or answered with an error."""


class MonitorClient:
    """A connection to the monitor socket of process ``pid`` (or at ``path``)."""

    def __init__(self, pid: int | None = None, *, path: str | None = None, timeout: float = 10.0) -> None:
        if path is None:
            if pid is None:
                raise ValueError("a process id or a socket path is needed")
            found = [p for p in candidate_paths(pid) if os.path.exists(p)]
            if not found:
                raise MonitorError(
                    f"process {pid} does not serve its monitor (no socket at "
                    f"{' or '.join(candidate_paths(pid))}): start it with PYLOOP_MONITOR=1 "
                    f"in its environment, or call pyloop.monitor.serve() in it")
            path = found[0]
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except OSError as exc:
            self._sock.close()
            raise MonitorError(f"cannot connect to the monitor at {path}: {exc.strerror or exc}") from None
        self._buffer = bytearray()

    def request(self, cmd: str, **fields: Any) -> dict[str, Any]:
        """Send one request and return its reply; ``MonitorError`` for an error reply."""
        message = {"cmd": cmd, **{k: v for k, v in fields.items() if v is not None}}
        reply = self.send_raw(json.dumps(message).encode() + b"\n")
        if not reply.get("ok"):
            raise MonitorError(reply.get("error") or "the monitor answered with an error", reply)
        return reply

    def send_raw(self, data: bytes) -> dict[str, Any]:
        """Send bytes as they are and return the next reply line, decoded."""
        try:
            self._sock.sendall(data)
        except OSError as exc:
            raise MonitorError(f"the monitor connection broke: {exc.strerror or exc}") from None
        return self.read_reply()

    def read_reply(self) -> dict[str, Any]:
        """Read one reply line."""
        while True:
            end = self._buffer.find(b"\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[:end + 1]
                reply: dict[str, Any] = json.loads(line)
                return reply
            if len(self._buffer) > _MAX_REPLY:
                raise MonitorError("the monitor's reply is too large")
            try:
                data = self._sock.recv(1 << 16)
            except socket.timeout:
                raise MonitorError("the monitor did not answer in time") from None
            except OSError as exc:
                raise MonitorError(f"the monitor connection broke: {exc.strerror or exc}") from None
            if not data:
                raise MonitorError("the monitor closed the connection (the process exited?)")
            self._buffer += data

    def close(self) -> None:
        """Close the connection."""
        self._sock.close()

    def __enter__(self) -> MonitorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
