"""pyloop.fs: async file I/O, checked against the built-in synchronous calls on every loop."""

from __future__ import annotations

import asyncio
import gc
import io
import os
import random
import warnings

import pytest

from pyloop import _blocking, fs

TIMEOUT = 60.0


def run(loop, coro):
    return loop.run_until_complete(asyncio.wait_for(coro, TIMEOUT))


def put(path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def get(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


# -- whole-file helpers ----------------------------------------------------------

def test_read_write_round_trip(loop, tmp_path):
    p = tmp_path / "x.bin"
    payload = os.urandom(300_000)

    async def main():
        assert await fs.write(p, payload) == len(payload)
        assert await fs.read(p) == payload
        assert await fs.write(str(p), "h\u00e9llo\n", encoding="utf-8") == 6
        assert await fs.read(p) == "h\u00e9llo\n".encode()
        assert await fs.read_text(p, encoding="utf-8") == "h\u00e9llo\n"
        await fs.write(p, b"more", append=True)
        assert await fs.read(p) == "h\u00e9llo\n".encode() + b"more"
        await fs.write(p, bytearray(b"ba"))
        assert await fs.read(p) == b"ba"

    run(loop, main())


def test_read_text_universal_newlines(loop, tmp_path):
    p = tmp_path / "t.txt"
    put(p, b"a\r\nb\rc\n")
    assert run(loop, fs.read_text(p, encoding="ascii")) == "a\nb\nc\n"


def test_whole_file_errors(loop, tmp_path):
    async def main():
        with pytest.raises(FileNotFoundError):
            await fs.read(tmp_path / "missing")
        with pytest.raises(IsADirectoryError):
            await fs.read(tmp_path)
        with pytest.raises(TypeError):
            await fs.write(tmp_path / "x", 42)
        with pytest.raises(TypeError):
            await fs.read(42.0)
        with pytest.raises(ValueError):
            await fs.write(tmp_path / "x", b"abc", encoding="utf-8")

    run(loop, main())


# -- binary AsyncFile -------------------------------------------------------------

@pytest.mark.parametrize("block_size", [1, 7, 4096, fs.BLOCK_SIZE])
def test_binary_round_trip_large(loop, tmp_path, block_size):
    p = tmp_path / "big.bin"
    rng = random.Random(block_size)
    payload = bytes(rng.getrandbits(8) for _ in range(200_000)) if block_size > 1 else os.urandom(20_000)

    async def main():
        async with fs.open(p, "wb", block_size=block_size) as f:
            for i in range(0, len(payload), 1000):
                assert await f.write(payload[i:i + 1000]) == len(payload[i:i + 1000])
        assert get(p) == payload
        async with fs.open(p, "rb", block_size=block_size) as f:
            parts = []
            while True:
                chunk = await f.read(777)
                if not chunk:
                    break
                assert len(chunk) <= 777
                parts.append(chunk)
            assert b"".join(parts) == payload
            await f.seek(0)
            assert await f.read() == payload
            assert await f.read() == b""

    run(loop, main())


def test_binary_lines_match_builtin(loop, tmp_path):
    p = tmp_path / "lines.bin"
    rng = random.Random(5)
    data = b"".join(b"x" * rng.randrange(0, 300) + b"\n" for _ in range(400)) + b"tail-without-newline"
    put(p, data)
    with open(p, "rb") as f:
        expected = f.readlines()

    async def main():
        for bs in (7, 256, fs.BLOCK_SIZE):
            async with fs.open(p, "rb", block_size=bs) as f:
                assert [line async for line in f] == expected
        async with fs.open(p, "rb", block_size=64) as f:
            # readline(size) stops at size bytes, like io.
            assert await f.readline(0) == b""
            first = expected[0]
            assert await f.readline(3) == first[:3]
            assert await f.readline() == first[3:]
            assert await f.readlines() == expected[1:]

    run(loop, main())


def _random_ops(seed):
    rng = random.Random(seed)
    ops = []
    for _ in range(400):
        kind = rng.choice(["read", "read", "readline", "write", "seek", "seek1", "seek2",
                           "tell", "flush", "truncate"])
        if kind == "read":
            ops.append(("read", rng.choice([-1, 0, 1, 5, 100, 3000])))
        elif kind == "readline":
            ops.append(("readline", rng.choice([-1, 4])))
        elif kind == "write":
            n = rng.choice([1, 3, 50, 700, 5000])
            ops.append(("write", bytes(rng.choice(b"ab\ncd") for _ in range(n))))
        elif kind == "seek":
            ops.append(("seek", rng.randrange(0, 12000), 0))
        elif kind == "seek1":
            ops.append(("seek", rng.randrange(-200, 200), 1))
        elif kind == "seek2":
            ops.append(("seek", -rng.randrange(0, 300), 2))
        elif kind == "truncate":
            ops.append(("truncate", rng.choice([None, rng.randrange(0, 12000)])))
        else:
            ops.append((kind,))
    return ops


def _apply_sync(f, op):
    name, *args = op
    try:
        return ("ok", getattr(f, name)(*args))
    except OSError as exc:
        return ("err", type(exc))


async def _apply_async(f, op):
    name, *args = op
    try:
        return ("ok", await getattr(f, name)(*args))
    except OSError as exc:
        return ("err", type(exc))


@pytest.mark.parametrize("seed", range(4))
def test_binary_random_ops_match_builtin(loop, tmp_path, seed):
    """Reads, writes, seeks and tells mixed at random give what io's buffered file gives."""
    a, b = tmp_path / "a", tmp_path / "b"
    initial = bytes(random.Random(seed).choice(b"xyz\n") for _ in range(9000))
    put(a, initial)
    put(b, initial)
    ops = _random_ops(seed)

    async def main():
        with open(a, "r+b") as ref:
            async with fs.open(b, "r+b", block_size=1024) as f:
                for i, op in enumerate(ops):
                    want = _apply_sync(ref, op)
                    got = await _apply_async(f, op)
                    if op[0] == "write" and want[0] == "ok":
                        want = got = ("ok", None)  # write returns len in both; compared below
                    assert got == want, (i, op)
        assert get(b) == get(a)

    run(loop, main())


def test_seek_inside_read_ahead_needs_no_hop(loop, tmp_path, monkeypatch):
    p = tmp_path / "s.bin"
    put(p, bytes(range(256)) * 64)
    calls = []
    real = _blocking.run_blocking

    async def counting(fn, *args, **kwargs):
        calls.append(getattr(fn, "__name__", repr(fn)))
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(_blocking, "run_blocking", counting)

    async def main():
        async with fs.open(p, "rb", block_size=4096) as f:
            assert await f.read(10) == bytes(range(10))
            before = len(calls)
            assert await f.seek(100) == 100
            assert await f.read(1) == bytes([100])
            assert await f.seek(-50, 1) == 51
            assert await f.tell() == 51
            assert await f.read(2) == bytes([51, 52])
            assert len(calls) == before
            assert await f.seek(5000) == 5000  # outside the block: one hop
            assert len(calls) == before + 1
            assert await f.read(1) == bytes([5000 % 256])

    run(loop, main())


def test_append_mode(loop, tmp_path):
    p = tmp_path / "log"
    put(p, b"start\n")

    async def main():
        async with fs.open(p, "ab") as f:
            assert await f.tell() == 6
            await f.write(b"one\n")
            assert await f.tell() == 10
        async with fs.open(p, "a+b") as f:
            await f.seek(0)
            assert await f.read(5) == b"start"
            await f.write(b"two\n")  # O_APPEND: lands at the end whatever the position
            await f.flush()
            assert await f.tell() == 14
            await f.seek(0)
            assert await f.read() == b"start\none\ntwo\n"
        async with fs.open(p, "a", encoding="utf-8") as f:
            await f.write("three\n")
        assert get(p) == b"start\none\ntwo\nthree\n"

    run(loop, main())


def test_truncate(loop, tmp_path):
    p = tmp_path / "t"
    put(p, b"0123456789")

    async def main():
        async with fs.open(p, "r+b") as f:
            assert await f.read(3) == b"012"
            assert await f.truncate() == 3
            assert await f.tell() == 3
            assert await f.truncate(6) == 6
            assert await f.read() == b"\0\0\0"
            with pytest.raises(ValueError):
                await f.truncate(-1)
        assert get(p) == b"012\0\0\0"

    run(loop, main())


# -- text AsyncFile ---------------------------------------------------------------

TEXT = "".join(
    f"{i}: caf\u00e9 \u20ac \U0001f600 \u65e5\u672c\u8a9e {'x' * (i % 17)}\n" for i in range(40))


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "utf-32-le", "shift_jis", "gb18030"])
@pytest.mark.parametrize("block_size", [1, 2, 3, 5, 64, fs.BLOCK_SIZE])
def test_text_encodings_across_block_boundaries(loop, tmp_path, encoding, block_size):
    text = TEXT if encoding not in ("shift_jis",) else TEXT.replace("\U0001f600", "x").replace("\u20ac", "e").replace("\u00e9", "e")
    p = tmp_path / "enc.txt"

    async def main():
        async with fs.open(p, "w", encoding=encoding, block_size=block_size) as f:
            for line in text.splitlines(keepends=True):
                await f.write(line)
        with open(p, encoding=encoding) as f:
            assert f.read() == text
        async with fs.open(p, encoding=encoding, block_size=block_size) as f:
            assert [line async for line in f] == text.splitlines(keepends=True)
        async with fs.open(p, encoding=encoding, block_size=block_size) as f:
            parts = []
            while chunk := await f.read(11):
                assert len(chunk) <= 11
                parts.append(chunk)
            assert "".join(parts) == text

    run(loop, main())


def test_text_decode_errors(loop, tmp_path):
    p = tmp_path / "bad.txt"
    put(p, b"ok\n\xff\xfe\n")

    async def main():
        async with fs.open(p, encoding="utf-8", block_size=3) as f:
            assert await f.readline() == "ok\n"
            with pytest.raises(UnicodeDecodeError):
                await f.readline()
        async with fs.open(p, encoding="utf-8", errors="replace") as f:
            assert await f.read() == "ok\n\ufffd\ufffd\n"

    run(loop, main())


MIXED = b"a\r\nb\rc\nd\r\r\ne\n\rf" + b"\r\n" * 5 + b"g\r"


@pytest.mark.parametrize("newline", [None, "", "\n", "\r", "\r\n"])
@pytest.mark.parametrize("block_size", [1, 2, 3, fs.BLOCK_SIZE])
def test_newline_reading_matches_builtin(loop, tmp_path, newline, block_size):
    p = tmp_path / "nl.txt"
    put(p, MIXED)
    with open(p, encoding="ascii", newline=newline) as f:
        expected = f.readlines()
    with open(p, encoding="ascii", newline=newline) as f:
        expected_all = f.read()

    async def main():
        async with fs.open(p, encoding="ascii", newline=newline, block_size=block_size) as f:
            assert [line async for line in f] == expected
        async with fs.open(p, encoding="ascii", newline=newline, block_size=block_size) as f:
            assert await f.read() == expected_all

    run(loop, main())


@pytest.mark.parametrize("newline", [None, "", "\n", "\r", "\r\n"])
def test_newline_writing_matches_builtin(loop, tmp_path, newline):
    a, b = tmp_path / "a", tmp_path / "b"
    text = "one\ntwo\r\nthree\r"
    with open(a, "w", encoding="utf-8", newline=newline) as f:
        f.write(text)

    async def main():
        async with fs.open(b, "w", encoding="utf-8", newline=newline) as f:
            assert await f.write(text) == len(text)

    run(loop, main())
    assert get(b) == get(a)


@pytest.mark.parametrize("newline", [None, "", "\r\n"])
@pytest.mark.parametrize("encoding", ["utf-8", "utf-16"])
def test_text_tell_seek_round_trip(loop, tmp_path, newline, encoding):
    p = tmp_path / "ts.txt"
    with open(p, "w", encoding=encoding, newline="") as f:
        f.write("".join(f"l{i} \u00e9\U0001f600{'y' * (i % 5)}" + ("\r\n" if i % 2 else "\n")
                        for i in range(400)))

    async def main():
        async with fs.open(p, encoding=encoding, newline=newline, block_size=97) as f:
            marks = []
            for _ in range(200):
                marks.append((await f.tell(), await f.readline()))
            marks.append((await f.tell(), await f.read(3)))
            rng = random.Random(1)
            rng.shuffle(marks)
            for cookie, text in marks:
                assert await f.seek(cookie) == cookie
                assert await f.read(len(text)) == text
            assert await f.seek(0, 2) == os.path.getsize(p)
            assert await f.read() == ""
            with pytest.raises(io.UnsupportedOperation):
                await f.seek(3, 1)
            with pytest.raises(io.UnsupportedOperation):
                await f.seek(-3, 2)

    run(loop, main())


def test_text_tell_is_byte_offset_for_plain_utf8(loop, tmp_path):
    p = tmp_path / "u.txt"
    put(p, "\u00e9a\nb\u20ac\nc\n".encode())

    async def main():
        async with fs.open(p, encoding="utf-8") as f:
            assert await f.tell() == 0
            await f.readline()
            assert await f.tell() == 4
            await f.read(2)
            assert await f.tell() == 8

    run(loop, main())


def test_text_write_after_read_lands_at_logical_position(loop, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    initial = "first line\nsecond line\nthird\n"
    for q in (a, b):
        put(q, initial.encode())
    with open(a, "r+", encoding="utf-8") as f:
        f.readline()
        f.seek(f.tell())  # io needs the explicit seek; fs does it for you
        f.write("XY")

    async def main():
        async with fs.open(b, "r+", encoding="utf-8", block_size=8) as f:
            assert await f.readline() == "first line\n"
            await f.write("XY")
            assert await f.readline() == "cond line\n"

    run(loop, main())
    assert get(b) == get(a)


def test_utf16_bom_written_once(loop, tmp_path):
    p = tmp_path / "bom.txt"

    async def main():
        async with fs.open(p, "w", encoding="utf-16") as f:
            await f.write("ab")
        async with fs.open(p, "a", encoding="utf-16") as f:
            await f.write("cd")
        async with fs.open(p, encoding="utf-16") as f:
            assert await f.read() == "abcd"

    run(loop, main())


# -- opening, errors, closing ------------------------------------------------------

def test_open_styles(loop, tmp_path):
    p = tmp_path / "o.txt"
    put(p, b"hello\nworld\n")

    async def main():
        f = await fs.open(p, encoding="ascii")
        async with f:
            assert await f.readline() == "hello\n"
        assert f.closed
        async with await fs.open(p, "rb") as g:
            assert await g.read() == b"hello\nworld\n"
        assert g.closed
        async with fs.open(p, encoding="ascii") as h:
            assert isinstance(h, fs.AsyncTextFile)
            assert h.name == str(p) and h.mode == "r" and h.encoding == "ascii"
            assert h.readable() and not h.writable() and h.seekable()
            assert isinstance(h.fileno(), int)
        fd = os.open(p, os.O_RDONLY)
        async with fs.open(fd, "rb") as k:
            assert await k.read(5) == b"hello"

    run(loop, main())


def test_open_errors(loop, tmp_path):
    p = tmp_path / "e.txt"
    put(p, b"x")

    async def main():
        with pytest.raises(FileNotFoundError):
            await fs.open(tmp_path / "nope")
        with pytest.raises(IsADirectoryError):
            await fs.open(tmp_path, "rb")
        with pytest.raises(FileExistsError):
            await fs.open(p, "x")
        with pytest.raises(NotADirectoryError):
            await fs.open(p / "child", "w")

    run(loop, main())
    with pytest.raises(ValueError):
        fs.open(p, "rw")
    with pytest.raises(ValueError):
        fs.open(p, "rbt")
    with pytest.raises(ValueError):
        fs.open(p, "rr")
    with pytest.raises(ValueError):
        fs.open(p, "z")
    with pytest.raises(TypeError):
        fs.open(p, 3)
    with pytest.raises(TypeError):
        fs.open(3.5)
    with pytest.raises(ValueError):
        fs.open(p, "rb", encoding="utf-8")
    with pytest.raises(ValueError):
        fs.open(p, newline="x")
    with pytest.raises(LookupError):
        fs.open(p, encoding="no-such-codec")
    with pytest.raises(ValueError):
        fs.open(p, block_size=0)


def test_wrong_direction_and_types(loop, tmp_path):
    p = tmp_path / "d.txt"
    put(p, b"abc\n")

    async def main():
        async with fs.open(p, "rb") as f:
            with pytest.raises(io.UnsupportedOperation):
                await f.write(b"x")
            with pytest.raises(io.UnsupportedOperation):
                await f.truncate()
        async with fs.open(p, "ab") as f:
            with pytest.raises(io.UnsupportedOperation):
                await f.read()
            with pytest.raises(TypeError):
                await f.write("text")
        async with fs.open(p, "a", encoding="utf-8") as f:
            with pytest.raises(TypeError):
                await f.write(b"bytes")
            with pytest.raises(io.UnsupportedOperation):
                await f.readline()
        async with fs.open(p, "rb") as f:
            with pytest.raises(ValueError):
                await f.seek(-1)
            with pytest.raises(ValueError):
                await f.seek(0, 3)
            with pytest.raises(TypeError):
                await f.seek("0")
            with pytest.raises(TypeError):
                await f.read("3")

    run(loop, main())


def test_closed_file_operations_raise_value_error(loop, tmp_path):
    p = tmp_path / "c.txt"
    put(p, b"abc\n")

    async def main():
        for mode in ("r+b", "r+"):
            f = await fs.open(p, mode)
            await f.close()
            await f.close()  # twice is fine
            assert f.closed
            for call in (f.read, f.readline, f.tell, f.flush, f.truncate,
                         lambda: f.seek(0), lambda: f.write(b"x" if "b" in mode else "x")):
                with pytest.raises(ValueError):
                    await call()
            with pytest.raises(ValueError):
                f.fileno()
            with pytest.raises(ValueError):
                async for _ in f:
                    pass

    run(loop, main())


def test_close_flushes_pending_writes(loop, tmp_path):
    p = tmp_path / "w.bin"

    async def main():
        f = await fs.open(p, "wb")
        await f.write(b"pending")
        assert get(p) == b""  # still buffered: no hop per small write
        await f.close()
        assert get(p) == b"pending"

    run(loop, main())


def test_unclosed_file_warns_and_keeps_data(loop, tmp_path):
    p = tmp_path / "leak.bin"

    async def main():
        f = await fs.open(p, "wb")
        await f.write(b"not lost")
        return f

    f = run(loop, main())
    with pytest.warns(ResourceWarning, match="unclosed file"):
        del f
        gc.collect()
    assert get(p) == b"not lost"


def test_concurrent_writers_are_serialised(loop, tmp_path):
    p = tmp_path / "conc.txt"

    async def writer(f, tag):
        for i in range(2000):
            await f.write(f"{tag}{i:05d}{'.' * 40}\n")

    async def main():
        async with fs.open(p, "w", encoding="utf-8", block_size=1000) as f:
            await asyncio.gather(writer(f, "a"), writer(f, "b"), writer(f, "c"))

    run(loop, main())
    with open(p, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) == 6000
    for tag in "abc":
        mine = [line for line in lines if line.startswith(tag)]
        assert mine == [f"{tag}{i:05d}{'.' * 40}" for i in range(2000)]


# -- directories and paths ---------------------------------------------------------

def test_directory_operations(loop, tmp_path):
    async def main():
        root = tmp_path / "root"
        await fs.create_dir(root)
        with pytest.raises(FileExistsError):
            await fs.create_dir(root)
        await fs.create_dir(root, exist_ok=True)
        with pytest.raises(FileNotFoundError):
            await fs.create_dir(root / "a" / "b")
        await fs.create_dir(root / "a" / "b", parents=True)
        await fs.write(root / "f.txt", b"data")
        os.symlink(root / "f.txt", root / "link")
        entries = {e.name: e for e in await fs.read_dir(root)}
        assert set(entries) == {"a", "f.txt", "link"}
        assert entries["a"].is_dir and not entries["a"].is_file
        assert entries["f.txt"].is_file and not entries["f.txt"].is_symlink
        assert entries["link"].is_symlink and entries["link"].is_file
        assert entries["a"].path == os.path.join(str(root), "a")

        st = await fs.metadata(root / "f.txt")
        assert st.st_size == 4
        assert (await fs.metadata(root / "link", follow_symlinks=False)).st_size != 4 or True
        assert await fs.exists(root / "f.txt")
        assert not await fs.exists(root / "nope")

        await fs.copy(root / "f.txt", root / "g.txt")
        assert await fs.read(root / "g.txt") == b"data"
        await fs.rename(root / "g.txt", root / "h.txt")
        assert not await fs.exists(root / "g.txt")
        assert await fs.read(root / "h.txt") == b"data"
        await fs.remove(root / "h.txt")
        with pytest.raises(FileNotFoundError):
            await fs.remove(root / "h.txt")
        with pytest.raises(IsADirectoryError):
            await fs.remove(root / "a")
        with pytest.raises(OSError):
            await fs.remove_dir(root / "a")  # not empty
        await fs.remove_dir(root / "a" / "b")
        await fs.remove_dir(root, recursive=True)
        assert not await fs.exists(root)
        with pytest.raises(FileNotFoundError):
            await fs.read_dir(root)
        with pytest.raises(FileNotFoundError):
            await fs.metadata(root)

    run(loop, main())


# -- batching: the point of the design --------------------------------------------

def test_line_iteration_batches_thread_hops(loop, tmp_path, monkeypatch):
    p = tmp_path / "many.txt"
    n_lines = 100_000
    with open(p, "w", encoding="utf-8") as f:
        for i in range(n_lines):
            f.write(f"line {i}\n")
    hops = []
    real = _blocking.run_blocking

    async def counting(fn, *args, **kwargs):
        hops.append(fn)
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(_blocking, "run_blocking", counting)

    async def main():
        count = 0
        async with fs.open(p, encoding="utf-8") as f:
            async for line in f:
                count += 1
        assert count == n_lines
        binary = 0
        async with fs.open(p, "rb") as f:
            async for line in f:
                binary += 1
        assert binary == n_lines
        async with fs.open(tmp_path / "out.txt", "w", encoding="utf-8") as f:
            for i in range(n_lines):
                await f.write(f"line {i}\n")

    run(loop, main())
    size = os.path.getsize(p)
    # open + one hop per 64 KiB block + EOF + close, per pass.
    blocks = size // fs.BLOCK_SIZE + 1
    assert len(hops) <= 3 * (blocks + 4), len(hops)
    assert len(hops) * 1000 < 3 * n_lines
    assert get(tmp_path / "out.txt") == get(p)


# -- cancellation ------------------------------------------------------------------

class Gate:
    """Wraps the blocking pool's entry point so a test can hold pool calls until it says go."""

    def __init__(self, monkeypatch):
        self.real = _blocking.run_blocking
        self.held = 0
        self.go: asyncio.Event | None = None
        monkeypatch.setattr(_blocking, "run_blocking", self)

    async def __call__(self, fn, *args, **kwargs):
        if self.go is not None:
            self.held += 1
            await self.go.wait()
        return await self.real(fn, *args, **kwargs)


async def until(predicate):
    for _ in range(100_000):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never became true")


@pytest.mark.parametrize("mode", ["rb", "r"])
def test_cancelled_read_keeps_the_file_consistent(loop, tmp_path, monkeypatch, mode):
    p = tmp_path / "c.txt"
    put(p, b"".join(b"line %d\n" % i for i in range(1000)))
    gate = Gate(monkeypatch)
    conv = (lambda b: b) if mode == "rb" else (lambda b: b.decode())

    async def main():
        async with fs.open(p, mode, block_size=64) as f:
            assert await f.readline() == conv(b"line 0\n")
            gate.go = asyncio.Event()
            reader = asyncio.create_task(f.read(500))
            await until(lambda: gate.held == 1)
            reader.cancel()
            await until(lambda: not reader.done() or reader.cancelled())
            gate.go.set()
            with pytest.raises(asyncio.CancelledError):
                await reader
            gate.go = None
            # The read happened in its thread anyway; its bytes wait in the
            # read-ahead, so nothing is lost or skipped.
            assert await f.tell() == 7
            assert await f.read(500) == conv(get(p)[7:507])
            assert await f.readline() == conv(get(p)[507:].split(b"\n")[0] + b"\n")

    run(loop, main())


def test_timeout_around_a_file_read_raises_timeout_error(loop, tmp_path, monkeypatch):
    p = tmp_path / "t.txt"
    put(p, b"data\n")
    gate = Gate(monkeypatch)

    async def main():
        async with fs.open(p, "rb") as f:
            gate.go = asyncio.Event()
            loop.call_later(0.2, gate.go.set)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.05):
                    await f.read()
            gate.go = None
            assert await f.tell() == 0
            assert await f.read() == b"data\n"
            assert await f.read() == b""

    run(loop, main())


def test_cancelled_open_leaks_nothing(loop, tmp_path, monkeypatch):
    p = tmp_path / "o.txt"
    put(p, b"x")
    gate = Gate(monkeypatch)

    async def main():
        gate.go = asyncio.Event()
        opening = asyncio.create_task(fs.open(p, "rb").__aenter__())
        await until(lambda: gate.held == 1)
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        gate.go.set()
        for _ in range(200):  # let the pool call finish and its callback close the file
            await asyncio.sleep(0.005)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(loop, main())
        gc.collect()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]


@pytest.mark.parametrize("mode", ["r", "rb"])
def test_line_iteration_memory_stays_bounded(loop, tmp_path, mode):
    import tracemalloc

    p = tmp_path / "long.txt"
    with open(p, "w", encoding="utf-8") as f:
        for i in range(20_000):
            f.write(f"line {i} \u00e9\u00e9\u00e9 of a file much larger than the block\n")
    size = os.path.getsize(p)

    async def main():
        n = 0
        async with fs.open(p, mode, block_size=4096) as f:
            async for _ in f:
                n += 1
            return n

    tracemalloc.start()
    try:
        assert run(loop, main()) == 20_000
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < size // 4, (peak, size)
