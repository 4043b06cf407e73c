"""Fuzz target for the GGUF model loader (atheris, libFuzzer's engine for Python).

    pip install atheris
    mkdir -p /tmp/gguf-new
    python tests/fuzz/fuzz_gguf.py /tmp/gguf-new tests/fuzz/corpus tests/fuzz/crashes \
        -dict=tests/fuzz/gguf.dict -max_total_time=1800 -timeout=20

(libFuzzer adds the inputs it finds interesting to the *first* directory: keep that one
out of the checked-in corpus.) One input is one file; half of the mutations are libFuzzer's
byte-level ones, half rewrite one number of the file's structure (`mutate_number`). It goes through the whole loader,
`Model.from_gguf` (the strict reader, the config and its cross-checks against the tensors,
weight packing, the C++ decoder), then the tokenizer and chat template readers; a file that
loads also runs a two-token forward step. The only exceptions a file may cause are the
documented ones, all ValueError subclasses: GGUFError for a malformed or unsupported file,
TemplateError for a chat template that does not compile. Anything else (another exception
type, a crash, a hang, a leak past -rss_limit_mb) is a bug; keep the input in
tests/fuzz/crashes/, which tests/test_fuzz_gguf.py replays.
"""

from __future__ import annotations

import os
import sys
import tempfile

import numpy as np

# One scratch file per process, on tmpfs when there is one (the loader maps a path).
_SCRATCH = os.path.join("/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir(),
                        f"slmk-fuzz-{os.getpid()}.gguf")


def check_file(path: str | os.PathLike[str]) -> str:
    """Loads one file the way a user would; returns "loaded" or "rejected", or raises the
    unexpected exception (the finding)."""
    from slmkernels.model import ChatTemplate, GGUFError, Model, TemplateError, Tokenizer

    try:
        m = Model.from_gguf(path, context=8)
    except GGUFError:
        return "rejected"
    try:
        c = m.config
        seq = m.new_sequence()
        logits = m.forward(seq, [0, c.vocab - 1])
        assert logits.shape == (c.vocab,) and logits.dtype == np.float32
        assert m.cache.length(seq) == 2
        m.free(seq)
        try:
            Tokenizer.from_gguf(m.reader)
        except GGUFError:
            pass
        try:
            ChatTemplate.from_gguf(m.reader)
        except (GGUFError, TemplateError):
            pass
    finally:
        del m
    return "loaded"


def check_bytes(data: bytes) -> str:
    with open(_SCRATCH, "wb") as f:
        f.write(data)
    try:
        return check_file(_SCRATCH)
    finally:
        os.unlink(_SCRATCH)


# ---- a GGUF-aware mutation, half of the time ----
# Byte-level mutations mostly break a file's framing (the reader rejects it at once); this one
# rewrites one number the file holds (a metadata value, an array length, a tensor's n_dims,
# dim, type or offset) with a value near the edges, so the file still parses and the config
# checks, weight packing and the C++ decoder see unusual but well-framed models.

_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUF scalar value types
_EDGES = [0, 1, 2, 3, 4, 7, 8, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 96, 127, 128, 255, 256, 512, 1023, 1024,
          4095, 4096, 65535, 65536, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**62, 2**63 - 1, 2**63, 2**64 - 1]
_FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 1e-30, 1e30, 3.4e38, float("nan"), float("inf"), float("-inf")]


def gguf_fields(data: bytes) -> list[tuple[int, int, str]]:
    """(offset, size, kind) of every number in the header, metadata and tensor infos of a GGUF
    file, as far as it parses; kind is "int" or "float"."""
    import struct

    out: list[tuple[int, int, str]] = []
    n = len(data)

    def u(fmt: str, pos: int):
        return struct.unpack_from(fmt, data, pos)[0]

    def skip(t: int, pos: int, depth: int = 0) -> int:
        if t in _SIZES:
            return pos + _SIZES[t]
        if t == 8:
            return pos + 8 + u("<Q", pos)
        if t == 9 and depth < 2:
            et, cnt = u("<I", pos), u("<Q", pos + 4)
            pos += 12
            if et in _SIZES:
                return pos + cnt * _SIZES[et]
            for _ in range(min(cnt, n)):
                pos = skip(et, pos, depth + 1)
                if pos > n:
                    break
            return pos
        raise ValueError("unknown type")

    try:
        n_t, n_kv = u("<Q", 8), u("<Q", 16)
        out += [(4, 4, "int"), (8, 8, "int"), (16, 8, "int")]
        pos = 24
        for _ in range(min(n_kv, n)):
            pos += 8 + u("<Q", pos)
            t = u("<I", pos)
            out.append((pos, 4, "int"))
            pos += 4
            if t in _SIZES:
                out.append((pos, _SIZES[t], "float" if t in (6, 12) else "int"))
            elif t == 9:
                out.append((pos + 4, 8, "int"))
            pos = skip(t, pos)
            if pos > n:
                break
        for _ in range(min(n_t, n)):
            pos += 8 + u("<Q", pos)
            nd = u("<I", pos)
            out.append((pos, 4, "int"))
            pos += 4
            for _d in range(min(nd, 8)):
                out.append((pos, 8, "int"))
                pos += 8
            out += [(pos, 4, "int"), (pos + 4, 8, "int")]
            pos += 12
            if pos > n:
                break
    except (struct.error, ValueError, OverflowError):
        pass
    return [f for f in out if f[0] + f[1] <= n]


def mutate_number(data: bytes, rng) -> bytes | None:
    import struct

    fields = gguf_fields(data)
    if not fields:
        return None
    pos, size, kind = rng.choice(fields)
    b = bytearray(data)
    if kind == "float":
        b[pos : pos + size] = struct.pack("<f" if size == 4 else "<d", rng.choice(_FLOATS))
    else:
        old = int.from_bytes(b[pos : pos + size], "little")
        v = rng.choice(_EDGES + [old + 1, old - 1, old * 2, old // 2, old + 32, old - 32])
        b[pos : pos + size] = (v % (1 << (8 * size))).to_bytes(size, "little")
    return bytes(b)


def main() -> None:
    import random

    import atheris

    # Coverage feedback from our Python (the reader, config, runtime, tokenizer, chat); the C++
    # core is not instrumented, its crashes still end the run.
    with atheris.instrument_imports(include=["slmkernels"]):
        import slmkernels.model.chat  # noqa: F401
        import slmkernels.model.config  # noqa: F401
        import slmkernels.model.gguf_reader  # noqa: F401
        import slmkernels.model.runtime  # noqa: F401
        import slmkernels.model.tokenizer  # noqa: F401

    def mutator(data: bytes, max_size: int, seed: int) -> bytes:
        rng = random.Random(seed)
        if rng.random() < 0.5:
            out = mutate_number(data, rng)
            if out is not None and len(out) <= max_size:
                return out
        return atheris.Mutate(data, max_size)

    atheris.Setup(sys.argv, check_bytes, custom_mutator=mutator)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
