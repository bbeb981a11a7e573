"""Write the seed corpus for the harnesses in this folder.

Each seed is a short program in the harness's input language (opcode bytes
and their arguments; see the switch in each harness) that walks one path the
fuzzer would otherwise need a while to find.  The files are committed; run
this again only when the input language changes:

    python tests/core/fuzz/make_seeds.py [OUT_DIR]

(OUT_DIR defaults to the corpus/ folder next to this file;
tests/reliability/test_fuzz_core.py checks the committed files match.)
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


# ---- timer heap: opcode = byte % 13 -------------------------------------------
def th_push(slot: int, mode: int, extra: bytes = b"") -> bytes:
    return bytes([0]) + struct.pack("<H", slot) + bytes([mode]) + extra


def th_push_tiny(slot: int, deadline: int) -> bytes:
    assert 0 <= deadline < 32
    return th_push(slot, deadline << 3)  # mode % 8 in 0..3: deadline mode >> 3


def th_push_i64(slot: int, deadline: int) -> bytes:
    return th_push(slot, 5, struct.pack("<q", deadline))


def th_push_many(seed: int, n: int, spread: int) -> bytes:
    return bytes([3]) + struct.pack("<H", seed) + bytes([n - 1, spread - 1])


def th_cancel(slot: int) -> bytes:
    return bytes([4]) + struct.pack("<H", slot)


def th_cancel_many(stride: int) -> bytes:
    return bytes([6, stride - 1])


def th_flag_many(stride: int) -> bytes:
    return bytes([6, 0x80 | (stride - 1)])


def th_flag(slot: int) -> bytes:
    return bytes([7]) + struct.pack("<H", slot)


def th_note_flagged(slot: int) -> bytes:
    return bytes([8]) + struct.pack("<H", slot)


TH_POP, TH_PEEK, TH_COMPACT = bytes([9]), bytes([10]), bytes([11])


def th_fail_alloc(nth: int) -> bytes:
    return bytes([12, nth - 1])


TH_CLEAR, TH_DESTROY = bytes([12, 200]), bytes([12, 201])

TIMER_HEAP = {
    "ties_in_push_order": b"".join(
        [th_push_tiny(s, d) for s, d in [(5, 3), (9, 1), (2, 3), (7, 1), (1, 0)]]
        + [TH_PEEK] + [TH_POP] * 6
    ),
    "lazy_cancel_at_top": b"".join(
        [th_push_tiny(s, s % 4) for s in range(10)]
        + [th_cancel(0), th_flag(4), TH_PEEK, th_note_flagged(4), TH_POP,
           th_flag(1), TH_COMPACT, TH_PEEK, TH_POP, TH_POP]
    ),
    "compaction_and_shrink": b"".join(
        [th_push_many(7, 256, 16)] * 3
        + [th_cancel_many(1), TH_PEEK, th_push_many(9, 200, 4),
           th_cancel_many(2), th_cancel_many(1), TH_POP]
    ),
    "flag_all_then_compact": b"".join(
        [th_push_many(11, 250, 200)] * 2
        + [th_flag_many(1), th_push_tiny(3, 5), TH_PEEK, TH_COMPACT, TH_POP,
           TH_POP, TH_COMPACT]
    ),
    "allocation_failures": b"".join(
        [th_push_many(3, 16, 8), th_fail_alloc(1), th_push_tiny(1, 2),
         th_push_tiny(1, 2), TH_POP,
         th_push_many(5, 256, 32), th_fail_alloc(2), th_cancel_many(1),
         TH_PEEK]
    ),
    "extreme_deadlines_clear_destroy": b"".join(
        [th_push_i64(1, -(2**63)), th_push_i64(2, 2**63 - 1), th_push_i64(3, -1),
         th_push_i64(4, 0), th_push(5, 6), th_push(6, 14), TH_PEEK, TH_POP,
         TH_CLEAR, th_push_tiny(1, 1), th_push_tiny(2, 1), TH_DESTROY,
         th_push_tiny(3, 0), TH_POP, TH_POP]
    ),
}


# ---- ready queue: first byte = initial capacity % 40, then opcode = byte % 8 --
RQ_PUSH, RQ_POP, RQ_DESTROY = bytes([0]), bytes([2]), bytes([7])


def rq_push_many(b: int) -> bytes:   # pushes 1 + 4 * b
    return bytes([4, b])


def rq_pop_many(b: int) -> bytes:
    return bytes([5, b])


def rq_fail_alloc(nth: int) -> bytes:
    return bytes([6, nth - 1])


def rq_reinit_u16(cap: int) -> bytes:
    # On a destroyed queue the opcode byte is ignored; then mode 1 + u16.
    return bytes([0, 1]) + struct.pack("<H", cap)


def rq_reinit_u64(cap: int) -> bytes:
    return bytes([0, 2]) + struct.pack("<Q", cap)


def rq_reinit_pow2(shift: int) -> bytes:
    return bytes([0, 3 | shift << 2])


READY_QUEUE = {
    "wrap_around": bytes([16]) + RQ_PUSH * 10 + RQ_POP * 8 + RQ_PUSH * 12 + RQ_POP * 16,
    "grow_while_wrapped": bytes([0]) + rq_push_many(3) + rq_pop_many(2)
    + rq_push_many(10) + rq_push_many(60) + rq_pop_many(255),
    "grow_failure": bytes([16]) + rq_push_many(3) + RQ_PUSH * 3 + rq_fail_alloc(1)
    + RQ_PUSH + RQ_PUSH + rq_pop_many(10),
    "reinit_sizes": bytes([33]) + RQ_PUSH + RQ_DESTROY + rq_reinit_u64(2**62)
    + rq_reinit_u16(1000) + rq_push_many(255) + RQ_DESTROY + rq_reinit_u64(2**64 - 1)
    + rq_reinit_u16(17) + RQ_PUSH * 20 + RQ_POP * 21
    # 2**24 slots is more than the harness's allocator grants: init fails.
    + RQ_DESTROY + rq_reinit_pow2(24) + rq_reinit_pow2(5) + RQ_PUSH,
}


SEEDS = {"timer_heap": TIMER_HEAP, "ready_queue": READY_QUEUE}


def main() -> None:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "corpus"
    for name, seeds in SEEDS.items():
        out = root / name
        out.mkdir(parents=True, exist_ok=True)
        for old in out.iterdir():
            old.unlink()
        for seed_name, data in seeds.items():
            (out / seed_name).write_bytes(data)
        print(f"{out}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
