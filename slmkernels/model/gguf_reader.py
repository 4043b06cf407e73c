"""A strict GGUF v2/v3 reader: every field is checked before anything is built from it.

Format: ggml's docs/gguf.md. Little-endian throughout:

    header      magic "GGUF" | version u32 | tensor_count u64 | kv_count u64
    kv          key: string | value_type u32 | value
    tensor info name: string | n_dims u32 | dims u64[n_dims] | ggml_type u32 | offset u64
    padding     to general.alignment (default 32)
    data        tensor bytes; each tensor's offset is relative to the data start

    string      len u64 | utf-8 bytes (no terminator)
    array       elem_type u32 | count u64 | elements

The file is memory-mapped read-only (the mapping covers the file as the OS reports it, never a
size taken from the file's contents). Tensors are handed out as ``slmkernels.QuantizedTensor``
views of that mapping: no tensor byte is copied.

Every check raises :class:`GGUFError` (a ``ValueError``) naming the field and its byte offset,
before any allocation or view whose size comes from that field. Limits below that are not in
the spec are chosen far above every real model and say why in a comment; they exist so that a
hostile file cannot make us allocate gigabytes from a few bytes (the CVEs of llama.cpp's
loader, e.g. CVE-2024-23605 (huge kv count), CVE-2024-21836 (huge tensor count),
CVE-2024-21825 (huge string array), CVE-2024-21802 (dims overflow) and CVE-2025-53630 (tensor
size sum overflow), are all of this kind).
"""

from __future__ import annotations

import codecs
import math
import mmap
import os
import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Iterator, overload

import numpy as np

__all__ = ["GGUFError", "GGUFReader", "GGUFStringArray", "GGUFValueType", "TensorInfo", "TENSOR_TYPES"]


class GGUFError(ValueError):
    """A GGUF file is malformed, truncated, or uses something this package does not support."""


class GGUFValueType(IntEnum):
    UINT8 = 0
    INT8 = 1
    UINT16 = 2
    INT16 = 3
    UINT32 = 4
    INT32 = 5
    FLOAT32 = 6
    BOOL = 7
    STRING = 8
    ARRAY = 9
    UINT64 = 10
    INT64 = 11
    FLOAT64 = 12


# value type -> (struct code, numpy dtype) for the fixed-size scalar types
_SCALAR = {
    GGUFValueType.UINT8: ("<B", np.uint8),
    GGUFValueType.INT8: ("<b", np.int8),
    GGUFValueType.UINT16: ("<H", np.uint16),
    GGUFValueType.INT16: ("<h", np.int16),
    GGUFValueType.UINT32: ("<I", np.uint32),
    GGUFValueType.INT32: ("<i", np.int32),
    GGUFValueType.FLOAT32: ("<f", np.float32),
    GGUFValueType.BOOL: ("<B", np.uint8),
    GGUFValueType.UINT64: ("<Q", np.uint64),
    GGUFValueType.INT64: ("<q", np.int64),
    GGUFValueType.FLOAT64: ("<d", np.float64),
}
INTEGER_TYPES = frozenset(
    {
        GGUFValueType.UINT8, GGUFValueType.INT8, GGUFValueType.UINT16, GGUFValueType.INT16,
        GGUFValueType.UINT32, GGUFValueType.INT32, GGUFValueType.UINT64, GGUFValueType.INT64,
    }
)
FLOAT_TYPES = frozenset({GGUFValueType.FLOAT32, GGUFValueType.FLOAT64})

# ggml type id -> (name, block size in elements, bytes per block) for the types our kernels run.
# Sizes from ggml's type traits (ggml-common.h block structs).
TENSOR_TYPES: dict[int, tuple[str, int, int]] = {
    0: ("F32", 1, 4),
    1: ("F16", 1, 2),
    2: ("Q4_0", 32, 18),
    3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22),
    7: ("Q5_1", 32, 24),
    8: ("Q8_0", 32, 34),
    12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176),
    14: ("Q6_K", 256, 210),
    30: ("BF16", 1, 2),
}
# Types ggml knows but this package does not run: named in the error instead of "unknown".
_KNOWN_UNSUPPORTED = {
    9: "Q8_1", 10: "Q2_K", 11: "Q3_K", 15: "Q8_K", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS",
    19: "IQ1_S", 20: "IQ4_NL", 21: "IQ3_S", 22: "IQ2_S", 23: "IQ4_XS", 24: "I8", 25: "I16",
    26: "I32", 27: "I64", 28: "F64", 29: "IQ1_M", 34: "TQ1_0", 35: "TQ2_0", 39: "MXFP4",
}

MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
# Alignment above 1 MiB has no use (pages are 4-64 KiB) and only inflates padding arithmetic;
# the same cap was proposed for llama.cpp's loader (ggml PR "harden GGUF parser", 2026).
MAX_ALIGNMENT = 1 << 20
MAX_DIMS = 4  # GGML_MAX_DIMS
# llama.cpp refuses tensor names of GGML_MAX_NAME (64) bytes or more; so do we.
MAX_TENSOR_NAME = 63
# A key is a dotted identifier; 64 KiB is far above any real one.
MAX_KEY_LENGTH = 1 << 16
# Arrays of arrays are legal; real files never nest, and unbounded nesting is a recursion DoS.
MAX_ARRAY_DEPTH = 2
INT64_MAX = (1 << 63) - 1
# Bytes of a string array's data checked as UTF-8 at a time: bounds the str made to check it.
_UTF8_CHUNK = 1 << 18
# Elements of a string array packed at a time: bounds the temporaries of packing it.
_PACK_CHUNK = 1 << 13

# Smallest encoding of each record, used to refuse counts the file cannot possibly hold before
# looping over (or allocating for) them.
_MIN_KV_BYTES = 8 + 1 + 4 + 1  # key length, >= 1 key byte, value type, smallest value
_MIN_TENSOR_INFO_BYTES = 8 + 1 + 4 + 8 + 4 + 8  # name length, >= 1 name byte, n_dims, 1 dim, type, offset
_MIN_VALUE_BYTES = {t: struct.calcsize(c) for t, (c, _) in _SCALAR.items()}
_MIN_VALUE_BYTES[GGUFValueType.STRING] = 8
_MIN_VALUE_BYTES[GGUFValueType.ARRAY] = 12


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dims: tuple[int, ...]  # ggml order: dims[0] is the contiguous (row) length
    ggml_type: int
    type_name: str
    offset: int  # absolute byte offset in the file
    nbytes: int

    @property
    def shape(self) -> tuple[int, ...]:
        """numpy order (outermost first), as the gguf package reports it reversed."""
        return tuple(reversed(self.dims))

    @property
    def n_elements(self) -> int:
        return math.prod(self.dims)

    @property
    def rows_cols(self) -> tuple[int, int]:
        """(rows, cols) for a QuantizedTensor: cols = dims[0], rows = product of the rest."""
        return (math.prod(self.dims[1:]), self.dims[0])


class GGUFStringArray(Sequence[str]):
    """A read-only sequence of the strings of one GGUF string array, stored compactly.

    A vocabulary is 50k-280k short strings; as a ``list[str]`` each costs a ~50-byte str object
    plus a list slot (~8 MiB for Llama-3's 128k tokens, ~20 MiB more for its merges) for the
    whole life of a model. Here they are one ``bytes`` of the UTF-8 data, concatenated, plus
    the start of each string (``uint32``, or ``int64`` past 4 GiB), with the end as a last
    entry: ~4 bytes of overhead per string. Elements are decoded on access.

    The data is a copy, not a view of the file's mapping: it outlives ``GGUFReader.close()``.
    Built only by the reader, after every element was checked to be valid UTF-8.
    """

    __slots__ = ("_data", "_offsets")

    def __init__(self, data: bytes, offsets: np.ndarray) -> None:
        self._data = data  # (total bytes,) every element's UTF-8 bytes, back to back
        self._offsets = offsets  # (len + 1,) start of each element in _data; last = len(_data)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self._at(j) for j in range(*i.indices(len(self)))]
        n = len(self)
        j = i.__index__()
        if j < 0:
            j += n
        if not 0 <= j < n:
            raise IndexError(f"string array index {i} out of range for {n} strings")
        return self._at(j)

    def _at(self, j: int) -> str:
        return self._data[int(self._offsets[j]) : int(self._offsets[j + 1])].decode()

    def __iter__(self) -> Iterator[str]:
        data, offs = self._data, self._offsets.tolist()
        for a, b in zip(offs, offs[1:]):
            yield data[a:b].decode()  # ~1.8x faster than str(bytearray slice, "utf-8")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GGUFStringArray):
            return self._data == other._data and np.array_equal(self._offsets, other._offsets)
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes, bytearray)):
            return NotImplemented
        return len(other) == len(self) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]  # equal to a list, which has no hash

    def __sizeof__(self) -> int:
        # what the array holds: its own slots plus the data and the offsets
        return object.__sizeof__(self) + self._data.__sizeof__() + self._offsets.nbytes

    def __repr__(self) -> str:
        head = ", ".join(repr(s) for s in self[:4])
        more = ", ..." if len(self) > 4 else ""
        return f"GGUFStringArray([{head}{more}], len={len(self)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (GGUFStringArray, (self._data, self._offsets))


class _Cursor:
    """Bounds-checked little-endian reads from a buffer; every failure names the offset."""

    __slots__ = ("buf", "pos", "size")

    def __init__(self, buf: Any, size: int) -> None:
        self.buf = buf
        self.pos = 0
        self.size = size

    def need(self, n: int, what: str) -> None:
        if n < 0 or n > self.size - self.pos:
            raise GGUFError(
                f"truncated file: {what} needs {n} bytes at offset {self.pos}, "
                f"but the file ends at {self.size}"
            )

    def unpack(self, fmt: str, what: str) -> Any:
        n = struct.calcsize(fmt)
        self.need(n, what)
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return v

    def u32(self, what: str) -> int:
        return self.unpack("<I", what)

    def u64(self, what: str) -> int:
        return self.unpack("<Q", what)

    def raw_string(self, what: str, max_len: int | None = None) -> bytes:
        at = self.pos
        n = self.u64(f"length of {what}")
        if max_len is not None and n > max_len:
            raise GGUFError(f"{what} at offset {at} is {n} bytes long (limit {max_len})")
        if n > self.size - self.pos:
            raise GGUFError(
                f"{what} at offset {at} claims {n} bytes, past the end of the file "
                f"({self.size - self.pos} bytes remain)"
            )
        b = bytes(self.buf[self.pos : self.pos + n])
        self.pos += n
        return b

    def string(self, what: str, max_len: int | None = None) -> str:
        at = self.pos
        b = self.raw_string(what, max_len)
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError as e:
            raise GGUFError(f"{what} at offset {at} is not valid UTF-8 ({e.reason} at byte {e.start})") from None


class GGUFReader:
    """Reads and validates a GGUF file; holds a read-only mmap of it.

    ``metadata``: key -> value (int, float, bool, str; arrays as numpy arrays for numeric
    elements, :class:`GGUFStringArray` (a read-only ``Sequence[str]``) for strings, lists for
    bools and nested arrays). ``metadata_types``: key -> value type
    (for arrays, ``(ARRAY, element type)``). ``tensors``: name -> :class:`TensorInfo` in file
    order. :meth:`tensor` gives a zero-copy ``QuantizedTensor``; :meth:`tensor_f32` a float32
    copy (for norms and other small tensors).

    Use as a context manager, or call :meth:`close`; the mapping stays alive while any
    ``QuantizedTensor`` view of it does.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._mm: mmap.mmap | None = None
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < 24:
                raise GGUFError(f"truncated file: {size} bytes, a GGUF header alone is 24 bytes")
            # Map the whole file as the OS sizes it: nothing from the file's contents decides
            # how much is mapped.
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.file_size = size
        try:
            # Parsed straight from the mmap object: slices are bytes copies, so no buffer export
            # outlives a failed parse and the mapping can always be closed on error.
            self._parse(self._mm)
        except BaseException:
            try:
                self.close()
            except BufferError:  # pragma: no cover - only if a caller's frame kept a view
                pass
            raise

    # ---- parsing ----

    def _parse(self, buf: mmap.mmap) -> None:
        cur = _Cursor(buf, self.file_size)
        magic = bytes(buf[0:4])
        if magic != MAGIC:
            raise GGUFError(f"bad magic {magic!r} at offset 0 (expected b'GGUF'): not a GGUF file")
        cur.pos = 4
        version = cur.u32("version")
        if version not in SUPPORTED_VERSIONS:
            hint = " (byte-swapped: a big-endian GGUF file?)" if version in (0x02000000, 0x03000000) else ""
            raise GGUFError(f"unsupported GGUF version {version} at offset 4{hint}; supported: 2, 3")
        self.version = version
        tensor_count = cur.u64("tensor_count")
        kv_count = cur.u64("kv_count")
        remaining = self.file_size - cur.pos
        if kv_count > remaining // _MIN_KV_BYTES:
            raise GGUFError(
                f"kv_count {kv_count} at offset 16 is more than the file could hold "
                f"({remaining} bytes after the header, >= {_MIN_KV_BYTES} bytes per key)"
            )
        if tensor_count > remaining // _MIN_TENSOR_INFO_BYTES:
            raise GGUFError(
                f"tensor_count {tensor_count} at offset 8 is more than the file could hold "
                f"({remaining} bytes after the header, >= {_MIN_TENSOR_INFO_BYTES} bytes per tensor)"
            )
        if kv_count * _MIN_KV_BYTES + tensor_count * _MIN_TENSOR_INFO_BYTES > remaining:
            raise GGUFError(
                f"kv_count {kv_count} and tensor_count {tensor_count} together need more than the "
                f"{remaining} bytes after the header"
            )

        # ---- metadata ----
        self.metadata: dict[str, Any] = {}
        self.metadata_types: dict[str, Any] = {}
        self.metadata_offsets: dict[str, int] = {}
        for i in range(kv_count):
            at = cur.pos
            key = cur.string(f"key of metadata entry {i}", MAX_KEY_LENGTH)
            if not key:
                raise GGUFError(f"metadata entry {i} at offset {at} has an empty key")
            if key in self.metadata:
                raise GGUFError(f"duplicate metadata key {key!r} at offset {at}")
            vtype_at = cur.pos
            raw = cur.u32(f"value type of {key!r}")
            vtype = self._value_type(raw, key, vtype_at)
            value, tinfo = self._read_value(cur, vtype, key, 0)
            self.metadata[key] = value
            self.metadata_types[key] = tinfo
            self.metadata_offsets[key] = at

        self.alignment = self._alignment()

        # ---- tensor infos ----
        infos: list[tuple[str, tuple[int, ...], int, str, int, int, int]] = []
        names: set[str] = set()
        for i in range(tensor_count):
            at = cur.pos
            name = cur.string(f"name of tensor {i}", MAX_TENSOR_NAME)
            if not name:
                raise GGUFError(f"tensor {i} at offset {at} has an empty name")
            if name in names:
                raise GGUFError(f"duplicate tensor name {name!r} at offset {at}")
            names.add(name)
            nd_at = cur.pos
            n_dims = cur.u32(f"n_dims of tensor {name!r}")
            if not 1 <= n_dims <= MAX_DIMS:
                raise GGUFError(f"tensor {name!r}: n_dims {n_dims} at offset {nd_at} is not in 1..{MAX_DIMS}")
            dims = []
            n_el = 1
            for d in range(n_dims):
                d_at = cur.pos
                v = cur.u64(f"dim {d} of tensor {name!r}")
                if v == 0:
                    raise GGUFError(f"tensor {name!r}: dim {d} at offset {d_at} is zero")
                if v > INT64_MAX:
                    raise GGUFError(
                        f"tensor {name!r}: dim {d} at offset {d_at} is negative as int64 ({v - (1 << 64)})"
                    )
                n_el *= v
                if n_el > INT64_MAX:
                    raise GGUFError(
                        f"tensor {name!r}: element count overflows 64 bits at dim {d} (offset {d_at})"
                    )
                dims.append(v)
            t_at = cur.pos
            ttype = cur.u32(f"type of tensor {name!r}")
            tname, block, bsize = self._tensor_type(ttype, name, t_at)
            if dims[0] % block:
                raise GGUFError(
                    f"tensor {name!r}: row length {dims[0]} is not a multiple of the {tname} "
                    f"block size {block}"
                )
            nbytes = n_el // block * bsize
            if nbytes > INT64_MAX:
                raise GGUFError(f"tensor {name!r}: byte size {nbytes} overflows 64 bits")
            o_at = cur.pos
            offset = cur.u64(f"offset of tensor {name!r}")
            if offset % self.alignment:
                raise GGUFError(
                    f"tensor {name!r}: data offset {offset} (field at {o_at}) is not a multiple of "
                    f"the alignment {self.alignment}"
                )
            infos.append((name, tuple(dims), ttype, tname, offset, nbytes, o_at))

        # ---- data section ----
        info_end = cur.pos
        data_start = -(-info_end // self.alignment) * self.alignment
        if tensor_count and data_start > self.file_size:
            raise GGUFError(
                f"truncated file: the tensor data section starts at {data_start} "
                f"but the file ends at {self.file_size}"
            )
        self.data_offset = data_start
        data_len = self.file_size - data_start
        self.tensors: dict[str, TensorInfo] = {}
        for name, dims, ttype, tname, offset, nbytes, o_at in infos:
            if offset > data_len or nbytes > data_len - offset:
                raise GGUFError(
                    f"tensor {name!r}: data [{offset}, {offset + nbytes}) relative to the data section "
                    f"(field at {o_at}) runs past the end of the file ({data_len} data bytes)"
                )
            self.tensors[name] = TensorInfo(name, dims, ttype, tname, data_start + offset, nbytes)
        self._check_tiling(data_start)

    def _check_tiling(self, data_start: int) -> None:
        """The tensors tile the data section: in offset order the first starts at 0 and each
        one's bytes, padded to the alignment, end exactly where the next starts; the file ends
        inside the last one's padding. llama.cpp's gguf.cpp requires the same (each tensor's
        offset must equal the running sum of GGML_PAD(ggml_nbytes, alignment)), and gguf-py's
        writer pads after every tensor, the last too. A gap or leftover bytes mean a type or
        shape that does not describe the bytes (Q8_0 data declared as Q4_0 is 18/34 of its size):
        loading it would compute on garbage."""
        pad = lambda n: -(-n // self.alignment) * self.alignment  # noqa: E731
        ordered = sorted(self.tensors.values(), key=lambda t: t.offset)
        prev = None
        expect = data_start
        for t in ordered:
            if prev is not None and t.offset < prev.offset + prev.nbytes:
                raise GGUFError(
                    f"tensors {prev.name!r} [{prev.offset}, {prev.offset + prev.nbytes}) and {t.name!r} "
                    f"[{t.offset}, {t.offset + t.nbytes}) overlap"
                )
            if t.offset != expect:
                if prev is None:
                    raise GGUFError(
                        f"tensor {t.name!r}: its data starts {t.offset - data_start} bytes into the data "
                        f"section, but the first tensor must start at 0 (nothing describes those bytes)"
                    )
                raise GGUFError(
                    f"tensor {prev.name!r} ({prev.type_name}, shape {list(prev.dims)}) is {prev.nbytes} bytes "
                    f"({pad(prev.nbytes)} padded to the alignment {self.alignment}), but the next tensor "
                    f"{t.name!r} starts {t.offset - prev.offset} bytes after it: its type or shape does not "
                    f"describe its data"
                )
            prev, expect = t, t.offset + pad(t.nbytes)
        if prev is not None and self.file_size > expect:
            raise GGUFError(
                f"tensor {prev.name!r} ({prev.type_name}, shape {list(prev.dims)}), the last in the file, is "
                f"{prev.nbytes} bytes ({pad(prev.nbytes)} padded to the alignment {self.alignment}), but "
                f"{self.file_size - prev.offset} bytes follow its offset: its type or shape does not describe "
                f"its data"
            )

    @staticmethod
    def _value_type(raw: int, key: str, at: int) -> GGUFValueType:
        try:
            return GGUFValueType(raw)
        except ValueError:
            raise GGUFError(f"metadata {key!r}: unknown value type {raw} at offset {at}") from None

    def _read_value(self, cur: _Cursor, vtype: GGUFValueType, key: str, depth: int) -> tuple[Any, Any]:
        if vtype == GGUFValueType.STRING:
            return cur.string(f"string value of {key!r}"), vtype
        if vtype == GGUFValueType.ARRAY:
            at = cur.pos
            etype = self._value_type(cur.u32(f"array element type of {key!r}"), key, at)
            n_at = cur.pos
            n = cur.u64(f"array length of {key!r}")
            remaining = cur.size - cur.pos
            if n > remaining // _MIN_VALUE_BYTES[etype]:
                raise GGUFError(
                    f"metadata {key!r}: array of {n} {etype.name} at offset {n_at} runs past the end "
                    f"of the file ({remaining} bytes remain)"
                )
            if etype in _SCALAR and etype != GGUFValueType.BOOL:
                code, dt = _SCALAR[etype]
                nb = n * _MIN_VALUE_BYTES[etype]
                arr = np.frombuffer(cur.buf[cur.pos : cur.pos + nb], dtype=np.dtype(dt).newbyteorder("<")).copy()
                cur.pos += nb
                return arr, (vtype, etype)
            if etype == GGUFValueType.BOOL:
                raw = np.frombuffer(cur.buf[cur.pos : cur.pos + n], dtype=np.uint8)
                if raw.size and raw.max() > 1:
                    bad = int(np.argmax(raw > 1))
                    raise GGUFError(f"metadata {key!r}: bool element {bad} is {raw[bad]}, not 0 or 1")
                cur.pos += n
                return [bool(x) for x in raw], (vtype, etype)
            if etype == GGUFValueType.STRING:
                return self._read_string_array(cur, n, key), (vtype, etype)
            # nested arrays
            if depth + 1 >= MAX_ARRAY_DEPTH:
                raise GGUFError(f"metadata {key!r}: arrays nested deeper than {MAX_ARRAY_DEPTH} at offset {at}")
            out = []
            sub = None
            for _j in range(n):
                v, sub = self._read_value(cur, GGUFValueType.ARRAY, key, depth + 1)
                out.append(v)
            return out, (vtype, etype, sub)
        code, _ = _SCALAR[vtype]
        at = cur.pos
        v = cur.unpack(code, f"value of {key!r}")
        if vtype == GGUFValueType.BOOL:
            if v > 1:
                raise GGUFError(f"metadata {key!r}: bool at offset {at} is {v}, not 0 or 1")
            return bool(v), vtype
        return (float(v) if vtype in FLOAT_TYPES else int(v)), vtype

    @staticmethod
    def _read_string_array(cur: _Cursor, n: int, key: str) -> GGUFStringArray:
        # The hot loop of loading (a vocabulary is ~50k-280k strings). A Python loop finds where
        # each element is (each length says where the next one starts) with the same bound check
        # as _Cursor.string; everything after it is whole-array work in C.
        buf, pos, end = cur.buf, cur.pos, cur.size
        unpack_from = struct.unpack_from
        at = array("q")  # (n,) file offset of each element's length field
        note = at.append
        for j in range(n):
            if end - pos < 8:
                _raise_first_bad_utf8(buf, at, pos, key)
                cur.pos = pos
                cur.need(8, f"length of element {j} of {key!r}")
            (ln,) = unpack_from("<Q", buf, pos)
            if ln > end - pos - 8:
                _raise_first_bad_utf8(buf, at, pos, key)
                raise GGUFError(
                    f"element {j} of {key!r} at offset {pos} claims {ln} bytes, past the end of "
                    f"the file ({end - pos - 8} bytes remain)"
                )
            note(pos)
            pos += 8 + ln
        start = cur.pos
        cur.pos = pos
        # The elements back to back, without their length fields, copied a chunk of elements at
        # a time: no temporary is larger than a chunk's bytes or the (n,) offsets.
        heads = np.frombuffer(at, dtype=np.int64)  # (n,) file offset of each length field
        data = bytearray(pos - start - 8 * n)
        view = memoryview(data)
        index_dtype = np.uint32 if len(data) < 1 << 32 else np.int64
        offsets = np.empty(n + 1, dtype=index_dtype)  # (n + 1,) element starts in data, then its end
        offsets[:n] = heads - start - 8 * np.arange(n, dtype=np.int64)
        offsets[n] = len(data)
        for c0 in range(0, n, _PACK_CHUNK):
            c1 = min(c0 + _PACK_CHUNK, n)
            lo, hi = int(heads[c0]), (int(heads[c1]) if c1 < n else pos)
            chunk = np.frombuffer(buf[lo:hi], dtype=np.uint8)
            keep = np.ones(chunk.size, dtype=bool)
            rel = heads[c0:c1] - lo
            for k in range(8):
                keep[rel + k] = False
            view[int(offsets[c0]) : int(offsets[c1])] = chunk[keep]
        del view, heads, at
        # Every element is valid UTF-8 iff the concatenation is and no non-empty element starts
        # with a continuation byte (10xxxxxx): in valid UTF-8 every other byte starts a character,
        # so each element is then whole characters. The concatenation is decoded in pieces (an
        # incremental decoder carries a character across them) so no str of it all is built.
        # Only on failure is each element decoded, to name the first bad one exactly as before.
        d = np.frombuffer(data, dtype=np.uint8)
        ok = not np.any((d[offsets[:n][offsets[:n] != offsets[1:]]] & 0xC0) == 0x80)
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            with memoryview(data) as view:
                for c in range(0, len(data), _UTF8_CHUNK):
                    decoder.decode(view[c : c + _UTF8_CHUNK])
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            ok = False
        if not ok:
            _raise_first_bad_utf8(buf, (offsets[:n].astype(np.int64) + start + 8 * np.arange(n)).tolist(), pos, key)
        return GGUFStringArray(bytes(data), offsets)

    def _alignment(self) -> int:
        key = "general.alignment"
        if key not in self.metadata:
            return DEFAULT_ALIGNMENT
        t = self.metadata_types[key]
        if t != GGUFValueType.UINT32:
            raise GGUFError(f"metadata {key!r} must be UINT32, got {_type_name(t)}")
        a = self.metadata[key]
        if a == 0 or a & (a - 1) or a > MAX_ALIGNMENT:
            raise GGUFError(f"metadata {key!r} = {a} is not a power of two in 1..{MAX_ALIGNMENT}")
        return a

    @staticmethod
    def _tensor_type(ttype: int, name: str, at: int) -> tuple[str, int, int]:
        if ttype in TENSOR_TYPES:
            return TENSOR_TYPES[ttype]
        if ttype in _KNOWN_UNSUPPORTED:
            raise GGUFError(f"unsupported tensor type {_KNOWN_UNSUPPORTED[ttype]} for tensor {name!r}")
        if ttype >= 1 << 31:
            raise GGUFError(f"tensor {name!r}: negative type id {ttype - (1 << 32)} at offset {at}")
        raise GGUFError(f"tensor {name!r}: unknown tensor type id {ttype} at offset {at}")

    # ---- access ----

    def tensor(self, name: str):
        """A zero-copy ``slmkernels.QuantizedTensor`` view of the tensor's bytes in the mapping."""
        from .. import QuantizedTensor

        t = self._info(name)
        return QuantizedTensor(self._map(), t.type_name.lower(), t.rows_cols, offset=t.offset)

    def tensor_bytes(self, name: str) -> memoryview:
        """The tensor's raw bytes as a read-only memoryview of the mapping (no copy)."""
        t = self._info(name)
        return memoryview(self._map())[t.offset : t.offset + t.nbytes]

    def tensor_f32(self, name: str) -> np.ndarray:
        """The tensor as float32 in numpy order (``info.shape``); a copy, for small tensors."""
        t = self._info(name)
        if t.ggml_type == 0:
            arr = np.frombuffer(self._map(), dtype="<f4", count=t.n_elements, offset=t.offset).copy()
        elif t.ggml_type == 1:
            arr = np.frombuffer(self._map(), dtype="<f2", count=t.n_elements, offset=t.offset).astype(np.float32)
        else:
            from .. import dequantize

            arr = dequantize(self.tensor(name))
        return arr.reshape(t.shape)

    def _info(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            raise KeyError(f"no tensor named {name!r} in {self.path}") from None

    def _map(self) -> mmap.mmap:
        if self._mm is None or self._mm.closed:
            raise ValueError(f"GGUFReader for {self.path} is closed")
        return self._mm

    def __iter__(self) -> Iterator[TensorInfo]:
        return iter(self.tensors.values())

    def close(self) -> None:
        """Unmaps the file; fails with BufferError while tensor views of it are still alive."""
        if self._mm is not None and not self._mm.closed:
            self._mm.close()

    def __enter__(self) -> "GGUFReader":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.close()
        except BufferError:
            pass  # views still alive keep the mapping; it is freed with the last of them

    def __repr__(self) -> str:
        return (
            f"GGUFReader({self.path!r}, version={self.version}, {len(self.metadata)} keys, "
            f"{len(self.tensors)} tensors)"
        )


def _raise_first_bad_utf8(buf: Any, at: Sequence[int], end: int, key: str) -> None:
    """Raises the error for the first element (length field offsets ``at``, the last ending at
    ``end``) that is not valid UTF-8, if any: the elements are checked in file order, so a bad
    element is reported before a bad length that follows it."""
    for j, p in enumerate(at):
        q = at[j + 1] if j + 1 < len(at) else end
        try:
            str(buf[p + 8 : q], "utf-8")
        except UnicodeDecodeError as e:
            raise GGUFError(f"element {j} of {key!r} at offset {p} is not valid UTF-8 ({e.reason})") from None


def _type_name(t: Any) -> str:
    if isinstance(t, tuple):
        return "ARRAY of " + _type_name(t[1])
    return GGUFValueType(t).name
