"""Adaptations of tests that reach into asyncio's own loop classes.

Each function is named by an [[adapt]] entry of manifest.toml (which also
says why and what, for the reports) and is called as ``fn(cls, methods, ctx)``
on the class a child is about to run: `cls` is the generated subclass (never
CPython's class itself), `methods` the test methods the entry matched, `ctx`
the LoopContext that makes loops under test.  The adaptations are applied
for every implementation, stock asyncio included, so the control run proves
that each adapted test still passes where the original did.
"""

import asyncio
import io
import socket
import sys

from test.support import socket_helper

from .rewrite import defining_class, rewrite_method


def public_close_loop(cls, methods, ctx):
    # test_utils.TestCase.close_loop(loop) starts by shutting down the
    # default executor, found through the private loop._default_executor.
    # Loops under test get the public call instead; other loops a test makes
    # (TestLoop, a bare BaseEventLoop) keep CPython's code.
    rewrite_method(cls, "close_loop", [(
        """        if loop._default_executor is not None:
""",
        """        if _conformance_is_loop_under_test(loop):
            if not loop.is_closed():
                loop.run_until_complete(loop.shutdown_default_executor())
        elif loop._default_executor is not None:
""")], extra_globals={"_conformance_is_loop_under_test": ctx.is_loop_under_test})


def runners_new_loop(cls, methods, ctx):
    def new_loop(self):
        def make_shutdown(loop):
            real = loop.shutdown_asyncgens

            async def shutdown_asyncgens():
                loop.shutdown_ag_run = True
                await real()
            return shutdown_asyncgens

        loop = ctx.new_loop()
        try:
            loop.shutdown_ag_run = False
            loop.shutdown_asyncgens = make_shutdown(loop)
        except AttributeError:
            # No instance __dict__: subclass the loop type instead.
            loop.close()

            class Patched(type(loop)):
                shutdown_ag_run = False

                async def shutdown_asyncgens(self):
                    self.shutdown_ag_run = True
                    await super().shutdown_asyncgens()
            loop = ctx.adopt(Patched())
        return loop
    cls.new_loop = new_loop


def _setup_with_loop_under_test(cls, ctx):
    owner = defining_class(cls, "setUp")

    def setUp(self):
        # Everything the original setUp's base classes do, then the loop.
        super(owner, self).setUp()
        self.loop = ctx.new_loop()
        self.set_event_loop(self.loop)
    cls.setUp = setUp


def pep492_setup(cls, methods, ctx):
    _setup_with_loop_under_test(cls, ctx)


def unix_socket_setup(cls, methods, ctx):
    _setup_with_loop_under_test(cls, ctx)


def get_event_loop_no_watcher(cls, methods, ctx):
    if sys.version_info < (3, 12):
        setup = """        if sys.platform != 'win32':
            watcher = asyncio.SafeChildWatcher()
            watcher.attach_loop(self.loop)
            asyncio.set_child_watcher(watcher)
"""
        teardown = """            if sys.platform != 'win32':
                asyncio.set_child_watcher(None)
"""
    else:   # 3.12 deprecated the watchers: the same lines, under catch_warnings
        setup = """        if sys.platform != 'win32':
            with warnings.catch_warnings():
                warnings.simplefilter('ignore', DeprecationWarning)
                watcher = asyncio.SafeChildWatcher()
                watcher.attach_loop(self.loop)
                asyncio.set_child_watcher(watcher)
"""
        teardown = """            if sys.platform != 'win32':
                with warnings.catch_warnings():
                    warnings.simplefilter('ignore', DeprecationWarning)
                    asyncio.set_child_watcher(None)
"""
    rewrite_method(cls, "setUp", [(setup, "")])
    rewrite_method(cls, "tearDown", [(teardown, "")])


def multiple_hosts_real_bind(cls, methods, ctx):
    real_host = {"1.2.3.4": "127.0.0.1", "5.6.7.8": "127.0.0.2",
                 "::1": "::1", "::2": "::"}
    MyProto = defining_class(cls, "create_server_multiple_hosts")
    MyProto = __import__(MyProto.__module__, fromlist=["MyProto"]).MyProto

    def create_server_multiple_hosts(self, family, hosts):
        if family == socket.AF_INET6 and not socket_helper.IPV6_ENABLED:
            self.skipTest("IPv6 not enabled")
        hosts = [real_host[h] for h in hosts]
        unique_hosts = set(hosts)
        f = self.loop.create_server(lambda: MyProto(self.loop), hosts, 0)
        server = self.loop.run_until_complete(f)
        self.addCleanup(server.close)
        server_hosts = [sock.getsockname()[0] for sock in server.sockets]
        self.assertEqual(set(server_hosts), unique_hosts)
        self.assertEqual(len(server_hosts), len(unique_hosts), server_hosts)
    cls.create_server_multiple_hosts = create_server_multiple_hosts


def server_public_closed(cls, methods, ctx):
    for name in methods:
        rewrite_method(cls, name, [
            ("self.assertIsNone(srv._sockets)",
             "self.loop.run_until_complete(asyncio.wait_for(srv.wait_closed(), 5))"),
            ("self.assertIsNone(srv._waiters)", "pass"),
        ])


def _memory_copy(file):
    """An in-memory copy of `file`, at the same position.  Its fileno()
    raises io.UnsupportedOperation, so no loop can hand it to sendfile(2)."""
    pos = file.tell()
    file.seek(0)
    copy = io.BytesIO(file.read())
    file.seek(pos)
    copy.seek(pos)
    return copy


def sendfile_no_native(cls, methods, ctx):
    cls._conformance_memory_copy = staticmethod(_memory_copy)
    for name in methods:
        repl = [("self.loop._sendfile_native = sendfile_native",
                 "self.file = self._conformance_memory_copy(self.file)")]
        if name == "test_sendfile_force_unsupported_native":
            repl.append(('''"not supported"):''', '''""):'''))
        rewrite_method(cls, name, repl)


def prompt_cancellation_public(cls, methods, ctx):
    rewrite_method(cls, "test_prompt_cancellation", [
        ("self.loop._stop_serving(r)", "self.loop.remove_reader(r)")])


async def _wait_returncode(transport):
    while transport.get_returncode() is None:
        await asyncio.sleep(0.01)


def subprocess_public_wait(cls, methods, ctx):
    rewrite_method(cls, "test_close_kill_running", [
        ("await asyncio.wait_for(transport._wait(), 5)",
         "await asyncio.wait_for(_conformance_wait_returncode(transport), 5)")],
        extra_globals={"_conformance_wait_returncode": _wait_returncode})


def streams_no_watcher(cls, methods, ctx):
    rewrite_method(cls, "test_read_all_from_pipe_reader", [
        ("watcher = asyncio.SafeChildWatcher()", "pass"),
        ("watcher.attach_loop(self.loop)", "pass"),
        ("asyncio.set_child_watcher(watcher)", "pass"),
        ("asyncio.set_child_watcher(None)", "pass"),
    ])


def _forget_pipe(transport):
    if hasattr(transport, "_pipe"):
        transport._pipe = None


def unclosed_pipe_forget(cls, methods, ctx):
    rewrite_method(cls, "test_unclosed_pipe_transport", [
        ("read_transport._pipe = None", "_conformance_forget_pipe(read_transport)"),
        ("write_transport._pipe = None", "_conformance_forget_pipe(write_transport)"),
    ], extra_globals={"_conformance_forget_pipe": _forget_pipe})
