"""Real PostgreSQL and Redis servers for the integration tests, on loopback.

Each service is started once per test session (see conftest.py) in a private
temporary directory, on a port the OS just handed out, and is stopped and its
directory removed at the end.  Readiness is detected by talking to the server
(a PostgreSQL startup handshake, a Redis ``PING``), never by sleeping a fixed
time: on a loaded 2-core machine PostgreSQL can take seconds to come up.

PostgreSQL refuses to run as root, so when the tests run as root its programs
run as the ``postgres`` system user (``subprocess.Popen(user=...)``, the same
thing ``runuser -u postgres`` does) in a directory that user owns.

A service that cannot start raises ``ServiceUnavailable``; conftest.py turns
that into a skip locally and a failure under CI.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field

STARTUP_TIMEOUT = 60.0
PORT_ATTEMPTS = 5


class ServiceUnavailable(RuntimeError):
    """The service's binaries are missing or the server would not start."""


class _PortInUse(Exception):
    """The server lost the race for the port we picked; pick another."""


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (bind port 0, close).

    Another process may take it before the server binds it; callers retry.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: str, limit: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return ""
    return data[-limit:].decode(errors="replace")


def _wait_until(probe, proc: subprocess.Popen, log: str, what: str, timeout: float) -> None:
    """Call ``probe()`` until it returns True; fail early if ``proc`` dies."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while True:
        if proc.poll() is not None:
            text = _tail(log)
            if "already in use" in text or "could not bind" in text.lower():
                raise _PortInUse(text)
            raise ServiceUnavailable(f"{what} exited with status {proc.returncode}:\n{text}")
        if probe():
            return
        if time.monotonic() > deadline:
            raise ServiceUnavailable(f"{what} not ready after {timeout:.0f} s:\n{_tail(log)}")
        time.sleep(delay)  # polling interval, not synchronisation: the probe decides
        delay = min(delay * 2, 0.2)


def _stop_process(proc: subprocess.Popen, sig: int, timeout: float = 30.0) -> None:
    if proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


# --------------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for ``localhost`` and ``127.0.0.1`` (PEM files)."""

    certfile: str
    keyfile: str

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.certfile, self.keyfile)
        return ctx

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.certfile)


def make_certificate(directory: str) -> Certificate:
    """Generate a fresh self-signed certificate with the ``openssl`` command."""
    exe = shutil.which("openssl")
    if exe is None:
        raise ServiceUnavailable("the openssl command is not installed")
    cert = os.path.join(directory, "server.crt")
    key = os.path.join(directory, "server.key")
    proc = subprocess.run(
        [exe, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key, "-out", cert],
        capture_output=True, timeout=STARTUP_TIMEOUT)
    if proc.returncode != 0:
        raise ServiceUnavailable(f"openssl could not make a certificate: {proc.stderr.decode(errors='replace')}")
    return Certificate(cert, key)


# --------------------------------------------------------------------------- PostgreSQL


def find_pg_bin() -> str | None:
    """The newest PostgreSQL server bin directory, or None when not installed."""
    candidates = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    candidates.sort(key=lambda p: [int(x) if x.isdigit() else 0 for x in p.split("/")[4].split(".")])
    if candidates:
        return os.path.dirname(candidates[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _pg_startup_probe(host: str, port: int, user: str) -> bool:
    """True when PostgreSQL answers a startup packet with authentication OK.

    A server still starting answers with an ErrorResponse ("the database system
    is starting up"); a closed port refuses the connection.
    """
    params = f"user\0{user}\0database\0postgres\0\0".encode()
    packet = struct.pack("!ii", 8 + len(params), 196608) + params
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(packet)
            head = s.recv(1)
            s.sendall(b"X\0\0\0\4")  # Terminate
    except OSError:
        return False
    return head == b"R"


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster: ``dsn`` points at database ``pyloop_test``."""

    host: str = "127.0.0.1"
    port: int = 0
    user: str = "postgres"
    database: str = "pyloop_test"
    #: when set, the server also accepts TLS (``ssl=on``) with this certificate
    certificate: Certificate | None = None
    root: str = ""
    socket_dir: str = ""
    _proc: subprocess.Popen | None = field(default=None, repr=False)
    _run_as: str | None = field(default=None, repr=False)
    _bin: str = field(default="", repr=False)

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{self.database}"

    def start(self) -> "PostgresServer":
        self._bin = find_pg_bin() or ""
        if not self._bin:
            raise ServiceUnavailable("PostgreSQL is not installed (no initdb under /usr/lib/postgresql/*/bin)")
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise ServiceUnavailable("running as root and there is no 'postgres' user to run PostgreSQL as")
            self._run_as = "postgres"
        # Not under pytest's tmp_path: that is mode 0700 and owned by root.
        self.root = tempfile.mkdtemp(prefix="pyloop-pg-")
        try:
            self._start_in_root()
        except BaseException:
            self.stop()
            raise
        return self

    def _popen(self, args: list[str], log: str) -> subprocess.Popen:
        kwargs = {}
        if self._run_as:
            kwargs = {"user": self._run_as, "group": self._run_as, "extra_groups": []}
        out = open(log, "ab")
        try:
            return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=self.root, env={**os.environ, "LC_ALL": "C"}, **kwargs)
        finally:
            out.close()

    def _start_in_root(self) -> None:
        data = os.path.join(self.root, "data")
        self.socket_dir = os.path.join(self.root, "sock")
        os.mkdir(self.socket_dir)
        if self._run_as:
            pw = pwd.getpwnam(self._run_as)
            for path in (self.root, self.socket_dir):
                os.chown(path, pw.pw_uid, pw.pw_gid)
        init_log = os.path.join(self.root, "initdb.log")
        initdb = self._popen([os.path.join(self._bin, "initdb"), "-D", data, "-U", self.user, "-A", "trust",
                              "-E", "UTF8", "--no-sync", "--no-instructions"], init_log)
        try:
            rc = initdb.wait(STARTUP_TIMEOUT)
        except subprocess.TimeoutExpired:
            initdb.kill()
            initdb.wait()
            raise ServiceUnavailable(f"initdb took over {STARTUP_TIMEOUT:.0f} s:\n{_tail(init_log)}")
        if rc != 0:
            raise ServiceUnavailable(f"initdb failed ({rc}):\n{_tail(init_log)}")

        options = []
        if self.certificate is not None:
            # The key must belong to the server's user and be private, or postgres refuses it.
            for name, src in (("server.crt", self.certificate.certfile), ("server.key", self.certificate.keyfile)):
                dst = os.path.join(self.root, name)
                shutil.copyfile(src, dst)
                os.chmod(dst, 0o600)
                if self._run_as:
                    os.chown(dst, pw.pw_uid, pw.pw_gid)
            options += ["-c", "ssl=on", "-c", f"ssl_cert_file={os.path.join(self.root, 'server.crt')}",
                        "-c", f"ssl_key_file={os.path.join(self.root, 'server.key')}"]

        log = os.path.join(self.root, "postgres.log")
        for _ in range(PORT_ATTEMPTS):
            self.port = free_port()
            self._proc = self._popen([
                os.path.join(self._bin, "postgres"), "-D", data, "-p", str(self.port),
                "-k", self.socket_dir, "-c", f"listen_addresses={self.host}",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "shared_buffers=16MB", "-c", "max_connections=100", *options,
            ], log)
            try:
                _wait_until(lambda: _pg_startup_probe(self.host, self.port, self.user),
                            self._proc, log, "postgres", STARTUP_TIMEOUT)
                break
            except _PortInUse:
                self._proc.wait()
                self._proc = None
        else:
            raise ServiceUnavailable(f"postgres could not bind a free port in {PORT_ATTEMPTS} tries")

        createdb = self._popen([os.path.join(self._bin, "createdb"), "-h", self.host, "-p", str(self.port),
                                "-U", self.user, self.database], init_log)
        if createdb.wait(STARTUP_TIMEOUT) != 0:
            raise ServiceUnavailable(f"createdb failed:\n{_tail(init_log)}")

    def stop(self) -> None:
        """Fast shutdown (what ``pg_ctl stop -m fast`` sends: SIGINT), then remove the files."""
        if self._proc is not None:
            _stop_process(self._proc, signal.SIGINT)
            self._proc = None
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = ""


# --------------------------------------------------------------------------- Redis


def _redis_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """A throwaway redis-server with persistence off; ``url`` for redis-py."""

    host: str = "127.0.0.1"
    port: int = 0
    root: str = ""
    #: the server also listens on this Unix socket
    unix_path: str = ""
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> "RedisServer":
        exe = shutil.which("redis-server")
        if exe is None:
            raise ServiceUnavailable("redis-server is not installed")
        self.root = tempfile.mkdtemp(prefix="pyloop-redis-")
        log = os.path.join(self.root, "redis.log")
        self.unix_path = os.path.join(self.root, "redis.sock")
        try:
            for _ in range(PORT_ATTEMPTS):
                self.port = free_port()
                with open(log, "ab") as out:
                    self._proc = subprocess.Popen(
                        [exe, "--port", str(self.port), "--bind", self.host, "--save", "",
                         "--appendonly", "no", "--daemonize", "no", "--dir", self.root,
                         "--unixsocket", self.unix_path, "--unixsocketperm", "700"],
                        stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
                try:
                    _wait_until(lambda: _redis_ping(self.host, self.port), self._proc, log,
                                "redis-server", STARTUP_TIMEOUT)
                    return self
                except _PortInUse:
                    self._proc.wait()
                    self._proc = None
            raise ServiceUnavailable(f"redis-server could not bind a free port in {PORT_ATTEMPTS} tries")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self._proc is not None:
            _stop_process(self._proc, signal.SIGKILL)
            self._proc = None
        if self.root:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = ""
