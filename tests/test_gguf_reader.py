"""The strict GGUF reader: the real model against the gguf package, then hostile files.

Every malformed file below must raise GGUFError (a ValueError naming the problem): never
another exception, never a crash, never a MemoryError. Files are written in the test (with
gguf.GGUFWriter, or byte by byte with the builders below), never downloaded.
"""

from __future__ import annotations

import functools
import pickle
import random
import struct
import sys
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

gguf = pytest.importorskip("gguf")

import slmkernels as sk  # noqa: E402
from slmkernels.model import GGUFError, GGUFReader  # noqa: E402
from slmkernels.model.gguf_reader import GGUFStringArray  # noqa: E402
from slmkernels.model.gguf_reader import GGUFValueType as VT  # noqa: E402

# ---- byte-level builders (the spec, docs/gguf.md, written out) ----


def u32(v: int) -> bytes:
    return struct.pack("<I", v)


def u64(v: int) -> bytes:
    return struct.pack("<Q", v)


def gstr(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return u64(len(b)) + b


def kv(key: str | bytes, vtype: int, payload: bytes) -> bytes:
    return gstr(key) + u32(vtype) + payload


def kv_str(key: str, value: str) -> bytes:
    return kv(key, VT.STRING, gstr(value))


def kv_u32(key: str, value: int) -> bytes:
    return kv(key, VT.UINT32, u32(value))


def tinfo(name: str | bytes, dims: list[int], ttype: int = 0, offset: int = 0) -> bytes:
    return gstr(name) + u32(len(dims)) + b"".join(u64(d) for d in dims) + u32(ttype) + u64(offset)


def build(
    kvs: list[bytes],
    tinfos: list[bytes],
    data: bytes = b"",
    *,
    magic: bytes = b"GGUF",
    version: int = 3,
    n_kv: int | None = None,
    n_tensors: int | None = None,
    alignment: int = 32,
) -> bytes:
    head = magic + u32(version) + u64(len(tinfos) if n_tensors is None else n_tensors)
    head += u64(len(kvs) if n_kv is None else n_kv)
    body = head + b"".join(kvs) + b"".join(tinfos)
    if tinfos or data:
        body += b"\0" * (-len(body) % alignment)
    return body + data


# a valid base: two F32 tensors of 8 elements (32 bytes each, already aligned)
BASE_KVS = [kv_str("general.architecture", "llama")]
BASE_TENSORS = [tinfo("a", [8], 0, 0), tinfo("b", [8], 0, 32)]
BASE_DATA = np.arange(16, dtype="<f4").tobytes()


def base(**kw) -> bytes:
    args = dict(kvs=BASE_KVS, tinfos=BASE_TENSORS, data=BASE_DATA)
    args.update(kw)
    return build(args.pop("kvs"), args.pop("tinfos"), args.pop("data"), **args)


def write(tmp_path, data: bytes, name: str = "f.gguf"):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def expect_error(tmp_path, data: bytes, match: str) -> GGUFError:
    p = write(tmp_path, data)
    with pytest.raises(GGUFError, match=match) as ei:
        GGUFReader(p)
    return ei.value


# ---- valid files ----


@functools.lru_cache(maxsize=1)
def gguf_package_reader(path):
    """The gguf package's reader of the real model (slow to build: shared by the tests)."""
    return gguf.GGUFReader(path)



def test_base_builder_is_valid(tmp_path):
    p = write(tmp_path, base())
    with GGUFReader(p) as r:
        assert list(r.tensors) == ["a", "b"]
        np.testing.assert_array_equal(r.tensor_f32("b"), np.arange(8, 16, dtype=np.float32))
    ref = gguf.GGUFReader(p)  # the gguf package agrees the builder writes valid files
    assert [t.name for t in ref.tensors] == ["a", "b"]


@pytest.mark.model
def test_real_model_matches_gguf_package(smollm2_path):
    ref = gguf_package_reader(smollm2_path)
    with GGUFReader(smollm2_path) as r:
        assert r.version == 3
        keys = [k for k in ref.fields if not k.startswith("GGUF.")]
        assert list(r.metadata) == keys
        for k in keys:
            f = ref.fields[k]
            want = f.contents()
            got = r.metadata[k]
            assert r.metadata_types[k] == f.types[0] if len(f.types) == 1 else r.metadata_types[k] == tuple(f.types)
            if isinstance(got, np.ndarray):
                np.testing.assert_array_equal(got, np.asarray(want), err_msg=k)
            elif isinstance(got, float):
                assert got == pytest.approx(want, rel=1e-7), k
            else:
                assert got == want, k
        assert [t.name for t in ref.tensors] == list(r.tensors)
        for t in ref.tensors:
            ours = r.tensors[t.name]
            assert ours.ggml_type == int(t.tensor_type)
            assert ours.dims == tuple(int(d) for d in t.shape)
            assert ours.offset == t.data_offset
            assert ours.nbytes == t.n_bytes
            assert bytes(r.tensor_bytes(t.name)[:64]) == t.data.tobytes()[:64]


@pytest.mark.model
def test_real_model_tensors_are_zero_copy_views(smollm2_path):
    ref = gguf_package_reader(smollm2_path)
    by_name = {t.name: t for t in ref.tensors}
    r = GGUFReader(smollm2_path)
    base_addr = np.frombuffer(r._mm, dtype=np.uint8).__array_interface__["data"][0]
    for name in ["token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight"]:
        info = r.tensors[name]
        qt = r.tensor(name)
        assert qt.shape == info.rows_cols
        assert qt.nbytes == info.nbytes
        assert qt.data.__array_interface__["data"][0] == base_addr + info.offset  # no copy
        t = by_name[name]
        rows = min(info.rows_cols[0], 64)  # the gguf package dequantizes in numpy: keep it small
        np.testing.assert_array_equal(
            sk.dequantize(qt)[:rows], gguf.quants.dequantize(t.data[:rows], t.tensor_type).reshape(rows, -1)
        )
    norm = r.tensor_f32("blk.0.attn_norm.weight")
    assert norm.dtype == np.float32 and norm.shape == (576,)
    np.testing.assert_array_equal(norm, by_name["blk.0.attn_norm.weight"].data)
    del qt
    r.close()


def _writer_file(tmp_path, name: str = "w.gguf"):
    """A small valid file from gguf.GGUFWriter holding every value type; the tensor data ends
    exactly at the end of the file (the last tensor is 256 bytes), so every shorter prefix is
    truncated."""
    p = tmp_path / name
    w = gguf.GGUFWriter(str(p), "llama")
    w.add_uint8("t.u8", 7)
    w.add_int8("t.i8", -7)
    w.add_uint16("t.u16", 65535)
    w.add_int16("t.i16", -300)
    w.add_uint32("t.u32", 123456)
    w.add_int32("t.i32", -123456)
    w.add_float32("t.f32", 0.5)
    w.add_uint64("t.u64", 2**40)
    w.add_int64("t.i64", -(2**40))
    w.add_float64("t.f64", 1e-300)
    w.add_bool("t.bool", True)
    w.add_string("t.str", "héllo ✓")
    w.add_array("t.arr_i32", [1, -2, 3])
    w.add_array("t.arr_str", ["a", "", "ü"])
    w.add_array("t.arr_f32", [0.25, 1.5])
    x = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)
    q8 = sk.quantize(x, "q8_0")
    w.add_tensor("q", np.asarray(q8.data).reshape(4, -1), raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    w.add_tensor("norm", np.linspace(-1, 1, 64, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return p


def test_writer_file_matches_gguf_package(tmp_path):
    p = _writer_file(tmp_path)
    ref = gguf.GGUFReader(p)
    with GGUFReader(p) as r:
        for k, f in ref.fields.items():
            if k.startswith("GGUF."):
                continue
            got, want = r.metadata[k], f.contents()
            if isinstance(got, np.ndarray):
                np.testing.assert_array_equal(got, want)
            elif isinstance(got, float):
                assert got == pytest.approx(want, rel=1e-7)
            else:
                assert got == want, k
        assert r.metadata["t.bool"] is True
        assert r.metadata["t.arr_str"] == ["a", "", "ü"]
        for t in ref.tensors:
            assert r.tensors[t.name].offset == t.data_offset
            assert r.tensors[t.name].nbytes == t.n_bytes
        qt = r.tensor("q")
        assert qt.format == "q8_0" and qt.shape == (4, 64)
        np.testing.assert_array_equal(r.tensor_f32("q"), sk.dequantize(qt))
        del qt


# ---- string arrays ----

STRINGS = ["", "a", "hello", "", "ü", "Ġworld", "😀", "日本語", "x" * 300, "\u0120t", ""]


def str_array(key: str, items: list[bytes]) -> bytes:
    return kv(key, VT.ARRAY, u32(VT.STRING) + u64(len(items)) + b"".join(gstr(b) for b in items))


def test_string_array_behaves_like_the_list_it_replaces(tmp_path):
    p = write(tmp_path, base(kvs=BASE_KVS + [str_array("t.s", [x.encode() for x in STRINGS])]))
    with GGUFReader(p) as r:
        arr = r.metadata["t.s"]
    # the reader is closed: the strings are a copy, not a view of the mapping
    assert isinstance(arr, GGUFStringArray) and isinstance(arr, Sequence)
    assert len(arr) == len(STRINGS)
    assert arr == STRINGS and STRINGS == arr and not (arr != STRINGS)
    assert arr != STRINGS[:-1] and arr != STRINGS[:-1] + ["y"] and arr != "abc"
    assert list(arr) == STRINGS and list(reversed(arr)) == STRINGS[::-1]
    for i in range(-len(STRINGS), len(STRINGS)):
        assert arr[i] == STRINGS[i], i
    assert arr[np.int64(4)] == "ü"
    for i in (len(STRINGS), -len(STRINGS) - 1):
        with pytest.raises(IndexError):
            arr[i]
    for sl in (slice(None), slice(2, 7), slice(None, None, -1), slice(1, None, 3), slice(-3, -1), slice(5, 2)):
        got = arr[sl]
        assert isinstance(got, list) and got == STRINGS[sl], sl
    assert "😀" in arr and "nope" not in arr and arr.index("ü") == 4 and arr.count("") == 3
    assert repr(arr) == "GGUFStringArray(['', 'a', 'hello', '', ...], len=11)"
    assert pickle.loads(pickle.dumps(arr)) == arr
    with pytest.raises(TypeError):
        hash(arr)
    empty = GGUFReader(write(tmp_path, base(kvs=BASE_KVS + [str_array("t.e", [])]), "e.gguf"))
    assert empty.metadata["t.e"] == [] and len(empty.metadata["t.e"]) == 0 and list(empty.metadata["t.e"]) == []
    empty.close()


@pytest.mark.parametrize("pack,utf8", [(1, 1), (2, 3), (4, 5)])
def test_string_array_packed_and_checked_in_small_chunks(tmp_path, monkeypatch, pack, utf8):
    """Chunks of a few elements and bytes, so characters and elements straddle every boundary."""
    from slmkernels.model import gguf_reader

    monkeypatch.setattr(gguf_reader, "_PACK_CHUNK", pack)
    monkeypatch.setattr(gguf_reader, "_UTF8_CHUNK", utf8)
    p = write(tmp_path, base(kvs=BASE_KVS + [str_array("t.s", [x.encode() for x in STRINGS])]))
    with GGUFReader(p) as r:
        assert r.metadata["t.s"] == STRINGS
    bad = base(kvs=BASE_KVS + [str_array("t.s", [x.encode() for x in STRINGS] + [b"\xe6\x97"])])
    expect_error(tmp_path, bad, f"element {len(STRINGS)} of 't.s' .* not valid UTF-8")


def test_string_array_is_compact(tmp_path):
    """100k vocabulary-like strings: ~1 MiB as the array against ~6 MiB as a list of str."""
    items = [f"tok{i}".encode() for i in range(100_000)]
    p = write(tmp_path, base(kvs=BASE_KVS + [str_array("t.s", items)]))
    tracemalloc.start()
    try:
        with GGUFReader(p) as r:
            arr = r.metadata["t.s"]
            del r
        compact, _ = tracemalloc.get_traced_memory()
        as_list = list(arr)
        with_list, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert compact < 2 * 2**20, compact
    assert with_list - compact > 3 * compact, (compact, with_list)
    assert sys.getsizeof(arr) < 2 * 2**20
    assert as_list == [b.decode() for b in items]


def test_string_array_errors_name_the_element_in_file_order(tmp_path):
    """UTF-8 is checked per element, as it was when each was decoded to a str: a character
    split across two elements is two bad elements, and a bad element is reported before a bad
    length that follows it."""
    # the first element's length field: after the header, the base keys, and k's key, types and count
    first = 24 + len(BASE_KVS[0]) + len(gstr("k")) + 4 + 4 + 8

    def err(items: list[bytes], count: int | None = None) -> str:
        data = base(kvs=BASE_KVS + [kv("k", VT.ARRAY, u32(VT.STRING) + u64(count or len(items)) + b"".join(items))])
        return str(expect_error(tmp_path, data, "."))

    assert err([gstr("a\u20ac".encode()[:3]), gstr(b"\xac")]) == (
        f"element 0 of 'k' at offset {first} is not valid UTF-8 (unexpected end of data)"
    )
    assert err([gstr(b"ok"), gstr(b"\xc3"), gstr(b"\xa9")]) == (
        f"element 1 of 'k' at offset {first + 10} is not valid UTF-8 (unexpected end of data)"
    )
    assert err([gstr(b"ok"), gstr(b"\xa9")]) == (
        f"element 1 of 'k' at offset {first + 10} is not valid UTF-8 (invalid start byte)"
    )
    assert err([gstr(b"ok"), gstr("é".encode()), gstr(b"\xed\xa0\x80")]) == (
        f"element 2 of 'k' at offset {first + 20} is not valid UTF-8 (invalid continuation byte)"
    )
    # a bad element, then a length past the end: the bad element is named
    assert err([gstr(b"\xff"), u64(10**6)]) == (
        f"element 0 of 'k' at offset {first} is not valid UTF-8 (invalid start byte)"
    )
    assert err([gstr(b"\xff")], count=2).startswith(f"element 0 of 'k' at offset {first} is not valid UTF-8")
    # valid elements, then a bad length: the length is named
    assert err([gstr(b"ok"), u64(10**6)]).startswith(f"element 1 of 'k' at offset {first + 10} claims 1000000 bytes")


# ---- truncation ----


def test_truncated_at_every_byte(tmp_path):
    """Every proper prefix of a valid file is rejected: every section boundary and every byte
    inside each section."""
    full = _writer_file(tmp_path).read_bytes()
    with GGUFReader(tmp_path / "w.gguf"):
        pass
    for n in range(len(full)):
        p = write(tmp_path, full[:n], "t.gguf")
        with pytest.raises(GGUFError):
            GGUFReader(p)


def test_truncation_messages_name_the_section(tmp_path):
    full = _writer_file(tmp_path).read_bytes()
    with GGUFReader(tmp_path / "w.gguf") as r:
        last_key_at = r.metadata_offsets["t.arr_f32"]
        data_at = r.data_offset
        q_at = r.tensors["q"].offset
    cases = {
        0: "a GGUF header alone is 24 bytes",
        10: "a GGUF header alone is 24 bytes",
        24: "kv_count 16 at offset 16 is more than the file could hold",
        last_key_at + 2: "truncated file: length of key of metadata entry 15",
        last_key_at + 30: "'t.arr_f32'",
        data_at - 40: "tensor 'norm'|tensor 1",
        data_at - 1: "the tensor data section starts at",
        q_at + 100: "tensor 'q'.* runs past the end of the file",
        len(full) - 1: "tensor 'norm'.* runs past the end of the file",
    }
    for n, match in cases.items():
        expect_error(tmp_path, full[:n], match)


# ---- random corruption ----


def test_random_mutations_never_crash(tmp_path):
    """Seeded random byte edits (flip, set to 0/0xff, splice a huge u64) of a valid file: each
    either loads or raises GGUFError."""
    full = bytearray(_writer_file(tmp_path).read_bytes())
    rng = random.Random(1234)
    outcomes = {"ok": 0, "error": 0}
    for i in range(1500):
        data = bytearray(full)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data))
            kind = rng.randrange(4)
            if kind == 0:
                data[pos] ^= 1 << rng.randrange(8)
            elif kind == 1:
                data[pos] = rng.choice([0, 0xFF, 0x7F, 0x80])
            elif kind == 2 and pos + 8 <= len(data):
                data[pos : pos + 8] = u64(rng.choice([2**63, 2**64 - 1, 2**32, 2**62 + 1]))
            else:
                data = data[:pos] + data[pos + 1 :]
        p = write(tmp_path, bytes(data), "m.gguf")
        try:
            with GGUFReader(p) as r:
                for name in r.tensors:
                    r.tensor_bytes(name)
            outcomes["ok"] += 1
        except GGUFError:
            outcomes["error"] += 1
    assert outcomes["error"] > 1000


# ---- the malformed-file corpus ----

# one Q8_0 block (34 bytes: f16 scale + 32 int8) and its padding to 64
RELABEL_DATA = struct.pack("<e", 0.5) + bytes(range(32)) + b"\0" * 30

MALFORMED = {
    # header
    "empty file": (b"", "24 bytes"),
    "bad magic": (base(magic=b"GGML"), "bad magic"),
    "lowercase magic": (base(magic=b"gguf"), "bad magic"),
    "version 1": (base(version=1), "unsupported GGUF version 1"),
    "version 4": (base(version=4), "unsupported GGUF version 4"),
    "big-endian version": (base(version=0x03000000), "big-endian"),
    "huge kv_count": (base(n_kv=2**62), "kv_count .* more than the file could hold"),
    # the second key is read from the tensor infos' bytes: rejected, whatever it decodes to
    "kv_count one too many": (base(n_kv=2), "."),
    "huge tensor_count": (base(n_tensors=2**63), "tensor_count .* more than the file could hold"),
    "kv+tensor counts together too large": (build([], [], b"\0" * 40, n_kv=2, n_tensors=1), "together"),
    # metadata
    "key length past end": (base(kvs=[u64(200) + b"abc"]), "past the end"),
    "key length 2^40": (base(kvs=[u64(2**40) + b"abc"]), "limit 65536"),
    "key length 2^64-1": (base(kvs=[u64(2**64 - 1) + b"abc"]), "past the end|limit"),
    "string value length past end": (base(kvs=[kv("k", VT.STRING, u64(1000) + b"xyz")]), "past the end"),
    "empty key": (base(kvs=[kv_str("", "x")]), "empty key"),
    "key not utf-8": (base(kvs=[kv(b"\xff\xfe", VT.UINT8, b"\0")]), "not valid UTF-8"),
    "string value not utf-8": (base(kvs=[kv("k", VT.STRING, gstr(b"\xc3\x28"))]), "not valid UTF-8"),
    "unknown value type 13": (base(kvs=[kv("k", 13, u32(0))]), "unknown value type 13"),
    "value type 2^32-1": (base(kvs=[kv("k", 2**32 - 1, u32(0))]), "unknown value type"),
    "bool value 2": (base(kvs=[kv("k", VT.BOOL, b"\x02")]), "not 0 or 1"),
    "array of u8 longer than file": (base(kvs=[kv("k", VT.ARRAY, u32(VT.UINT8) + u64(10**9))]), "past the end"),
    "array of strings count huge": (base(kvs=[kv("k", VT.ARRAY, u32(VT.STRING) + u64(2**61))]), "past the end"),
    "array element string past end": (
        base(kvs=[kv("k", VT.ARRAY, u32(VT.STRING) + u64(2) + gstr("a") + u64(999))]),
        "past the end",
    ),
    "array element type 99": (base(kvs=[kv("k", VT.ARRAY, u32(99) + u64(1))]), "unknown value type 99"),
    "arrays nested 3 deep": (
        base(kvs=[kv("k", VT.ARRAY, u32(VT.ARRAY) + u64(1) + u32(VT.ARRAY) + u64(1) + u32(VT.UINT8) + u64(1) + b"\0")]),
        "nested deeper",
    ),
    "bool array element 7": (base(kvs=[kv("k", VT.ARRAY, u32(VT.BOOL) + u64(2) + b"\x01\x07")]), "not 0 or 1"),
    "duplicate key": (base(kvs=[kv_str("general.architecture", "llama"), kv_str("general.architecture", "x")]), "duplicate metadata key"),
    # alignment
    "alignment 0": (base(kvs=BASE_KVS + [kv_u32("general.alignment", 0)]), "not a power of two"),
    "alignment 3": (base(kvs=BASE_KVS + [kv_u32("general.alignment", 3)]), "not a power of two"),
    "alignment 2^31": (base(kvs=BASE_KVS + [kv_u32("general.alignment", 2**31)]), "not a power of two in"),
    "alignment 2^40 (as u64)": (base(kvs=BASE_KVS + [kv("general.alignment", VT.UINT64, u64(2**40))]), "must be UINT32"),
    "alignment as string": (base(kvs=BASE_KVS + [kv_str("general.alignment", "32")]), "must be UINT32"),
    # tensor infos
    "tensor name past end": (base(tinfos=[u64(60) + b"a"], data=b""), "past the end"),
    "tensor name 500 bytes": (base(tinfos=[u64(500) + b"a"]), "limit 63"),
    "empty tensor name": (base(tinfos=[tinfo("", [8])]), "empty name"),
    "tensor name 64 bytes": (base(tinfos=[tinfo("x" * 64, [8])]), "limit 63"),
    "n_dims 0": (base(tinfos=[tinfo("a", [])]), "n_dims 0"),
    "n_dims 5": (base(tinfos=[tinfo("a", [1, 1, 1, 1, 8])]), "n_dims 5"),
    "n_dims 2^32-1": (base(tinfos=[gstr("a") + u32(2**32 - 1) + u64(8) * 4]), "n_dims 4294967295"),
    "zero dim": (base(tinfos=[tinfo("a", [8, 0])]), "dim 1 .* is zero"),
    "negative dim": (base(tinfos=[tinfo("a", [8, 2**64 - 1])]), "negative"),
    "element count overflows 64 bits": (base(tinfos=[tinfo("a", [2**32, 2**32, 2])]), "overflows 64 bits"),
    "byte size overflows 64 bits": (base(tinfos=[tinfo("a", [2**62], 0)]), "byte size .* overflows 64 bits"),
    "type id 99": (base(tinfos=[tinfo("a", [8], 99)]), "unknown tensor type id 99"),
    "type id -1": (base(tinfos=[tinfo("a", [8], 2**32 - 1)]), "negative type id -1"),
    "unsupported type Q2_K": (base(tinfos=[tinfo("a", [256], 10)]), "unsupported tensor type Q2_K for tensor 'a'"),
    "unsupported type IQ4_NL": (base(tinfos=[tinfo("a", [32], 20)]), "unsupported tensor type IQ4_NL"),
    "row not a multiple of the block": (base(tinfos=[tinfo("a", [48, 2], 8)]), "not a multiple of the Q8_0 block size 32"),
    "K-quant row of 128": (base(tinfos=[tinfo("a", [128], 12)]), "block size 256"),
    "misaligned offset": (base(tinfos=[tinfo("a", [4], 0, 16)]), "not a multiple of the alignment"),
    "overlapping tensors": (base(tinfos=[tinfo("a", [8], 0, 0), tinfo("b", [16], 0, 0)]), "overlap"),
    "partially overlapping tensors": (base(tinfos=[tinfo("a", [16], 0, 0), tinfo("b", [8], 0, 32)]), "overlap"),
    "offset past end of file": (base(tinfos=[tinfo("a", [8], 0, 64)]), "past the end of the file"),
    "data runs past end of file": (base(tinfos=[tinfo("a", [64], 0, 0)]), "past the end of the file"),
    "offset 2^64-32 (wraps when added)": (base(tinfos=[tinfo("a", [8], 0, 2**64 - 32)]), "past the end of the file"),
    "duplicate tensor name": (base(tinfos=[tinfo("a", [8], 0, 0), tinfo("a", [8], 0, 32)]), "duplicate tensor name 'a'"),
    "data section missing": (build(BASE_KVS, BASE_TENSORS, b"")[:-1] + b"", "truncated|past the end"),
    # data that the declared types and shapes do not tile (each tensor padded to the alignment
    # must reach the next one's offset; the file must end in the last one's padding)
    "Q8_0 data declared Q4_0, then a tensor": (
        base(tinfos=[tinfo("a", [32], 2, 0), tinfo("b", [8], 0, 64)], data=RELABEL_DATA + BASE_DATA[:32]),
        r"tensor 'a' \(Q4_0, shape \[32\]\) is 18 bytes \(32 padded to the alignment 32\), but the next tensor 'b' starts 64",
    ),
    "Q8_0 data declared Q4_0, last tensor": (
        base(tinfos=[tinfo("b", [8], 0, 0), tinfo("a", [32], 2, 32)], data=BASE_DATA[:32] + RELABEL_DATA),
        r"tensor 'a' \(Q4_0, shape \[32\]\), the last in the file, is 18 bytes .* but 64 bytes follow",
    ),
    "first tensor not at the data start": (base(tinfos=[tinfo("b", [8], 0, 32)]), "tensor 'b': its data starts 32 bytes into"),
}


def relabel(data: bytes, name: str, new_type: int) -> bytes:
    """The file with tensor `name`'s type id in its info rewritten (the data left as it is)."""
    at = data.index(gstr(name))
    pos = at + len(gstr(name))
    n_dims = struct.unpack_from("<I", data, pos)[0]
    pos += 4 + 8 * n_dims
    return data[:pos] + u32(new_type) + data[pos + 4:]


def test_every_relabelled_tensor_of_a_model_is_named(tmp_path):
    """A tiny model written by the gguf package (tests/tiny_models.py): each tensor in turn,
    Q8_0 data declared Q4_0 or F32 declared F16 (the first, a middle and the last tensor in the
    data section), is a GGUFError naming that tensor; the file itself loads."""
    from tiny_models import write_tiny_model

    path = Path(write_tiny_model(tmp_path / "m.gguf", "llama", fmt="q8_0", n_layers=2))
    data = path.read_bytes()
    with GGUFReader(path) as r:
        infos = sorted(r.tensors.values(), key=lambda t: t.offset)
    assert {t.type_name for t in infos} >= {"Q8_0", "F32"}
    for t in infos:
        new_type = {"Q8_0": 2, "F32": 1}[t.type_name]  # Q4_0, F16
        bad = write(tmp_path, relabel(data, t.name, new_type), "bad.gguf")
        with pytest.raises(GGUFError, match=f"tensor '{t.name}' \\({'Q4_0' if new_type == 2 else 'F16'}") as ei:
            GGUFReader(bad)
        assert "does not describe its data" in str(ei.value)


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_file_is_rejected(tmp_path, case):
    data, match = MALFORMED[case]
    err = expect_error(tmp_path, data, match)
    assert isinstance(err, ValueError)


# ---- the published GGUF CVEs of llama.cpp, each as a file ----
# Each reproduces the malformed field the advisory describes (Cisco Talos TALOS-2024-1912..1916
# for the 2024 CVEs; GHSA-vgg9-87g3-85w8 for CVE-2025-53630), on top of an otherwise valid file.

CVES = {
    # header.n_kv large enough that n_kv * sizeof(gguf_kv) wraps the allocation size
    "CVE-2024-23605 n_kv overflow": base(n_kv=(2**64 // 48) + 1),
    # header.n_tensors large enough that n_tensors * sizeof(gguf_tensor_info) wraps
    "CVE-2024-21836 n_tensors overflow": base(n_tensors=(2**64 // 88) + 1),
    # a string array whose count makes n * sizeof(gguf_str) wrap, with little data behind it
    "CVE-2024-21825 array of strings overflow": base(
        kvs=BASE_KVS + [kv("tokenizer.ggml.tokens", VT.ARRAY, u32(VT.STRING) + u64(2**60 + 1) + gstr("a"))]
    ),
    # tensor info ne[]: dims whose product (element count -> byte size) wraps 64 bits
    "CVE-2024-21802 tensor ne overflow": base(tinfos=[tinfo("a", [2**33, 2**33, 2**2], 0, 0)]),
    # gguf_fread_str: a string length of 2^64-1, so len + 1 wraps to a 0-byte allocation
    "TALOS-2024 string length +1 wrap": base(kvs=[u64(2**64 - 1) + b"x" * 8]),
    # CVE-2025-53630: the sum of the tensors' padded sizes overflows (ctx->size wraps), so a
    # small buffer is allocated and then read into; each tensor is near 2^62 bytes
    "CVE-2025-53630 tensor size sum overflow": base(
        tinfos=[tinfo("a", [2**60], 0, 0), tinfo("b", [2**60], 0, 2**62), tinfo("c", [2**60], 0, 2**63)]
    ),
}


@pytest.mark.parametrize("case", list(CVES))
def test_cve_file_is_rejected(tmp_path, case):
    p = write(tmp_path, CVES[case])
    with pytest.raises(GGUFError):
        GGUFReader(p)
