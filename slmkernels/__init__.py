"""slmkernels: CPU kernels for small language models over GGUF block formats.

The C++ core (``slmkernels._core``) picks the best SIMD path for this CPU at import;
``SLMK_ISA=<name>`` in the environment, or :func:`set_isa`, forces a lower one. Every kernel
is an entry of one registry: :func:`kernels` lists them all, :func:`isas` the ISA ladder.
"""

import os as _os
import sys as _sys

try:
    from . import _core  # noqa: F401
except ImportError as _e:
    # A bad SLMK_ISA: the `slmkernels` command says so in one line (exit 2) instead of a
    # traceback; importing from Python raises the ImportError as usual.
    if _os.environ.get("SLMK_ISA") and "SLMK_ISA" in str(_e) and _sys.argv and (
            _os.path.basename(_sys.argv[0]) == "slmkernels" or _sys.argv[0] == "-m"):
        print(f"slmkernels: {_e}", file=_sys.stderr)
        raise SystemExit(2) from None
    raise

from ._core import (
    KVCache,
    KVCacheFileError,
    KVCacheFullError,
    PackedWeights,
    QuantizedTensor,
    act_modes,
    attention,
    attention_batch,
    attention_dense,
    cpu_info,
    dequantize,
    embedding,
    formats,
    geglu,
    get_act_mode,
    get_isa,
    get_num_threads,
    isas,
    kernels,
    matmul,
    pack,
    quantize,
    reglu,
    release_pages,
    rmsnorm,
    rope,
    set_act_mode,
    set_isa,
    set_num_threads,
    ssm_conv1d,
    ssm_gated_rmsnorm,
    ssm_scan,
    swiglu,
)

__version__ = "0.1.0"


def kernel_names() -> dict:
    """Which kernel runs for each operation under the ISA in use: ``"<op>_<format>"`` (``"<op>"``
    for the probes) -> the kernel's name, e.g. ``{"gemm_q4_0": "gemm_q4_0_16x4_avx512_vnni", ...}``.
    A view of :func:`kernels` (its ``active`` entries)."""
    return {k["op"] + (f"_{k['format']}" if k["format"] else ""): k["name"] for k in kernels() if k["active"]}


def get_include() -> str:
    """The folder holding slmkernels.h, the C API header (installed with the package)."""
    import os

    return os.path.join(os.path.dirname(__file__), "include")


def get_cmake_dir() -> str:
    """The folder of slmkernelsConfig.cmake: pass it as slmkernels_DIR to find_package(slmkernels)."""
    import os

    return os.path.join(os.path.dirname(__file__), "cmake")


def __getattr__(name):
    # The model layer (GGUF reader, tokenizer, generation) loads on first use.
    if name == "Model":
        from .model.runtime import Model

        return Model
    raise AttributeError(f"module 'slmkernels' has no attribute {name!r}")


__all__ = [
    "KVCache",
    "KVCacheFileError",
    "KVCacheFullError",
    "Model",
    "PackedWeights",
    "QuantizedTensor",
    "act_modes",
    "attention",
    "attention_batch",
    "cpu_info",
    "dequantize",
    "embedding",
    "formats",
    "geglu",
    "get_act_mode",
    "get_cmake_dir",
    "get_include",
    "get_isa",
    "get_num_threads",
    "isas",
    "kernel_names",
    "kernels",
    "matmul",
    "pack",
    "quantize",
    "reglu",
    "release_pages",
    "rmsnorm",
    "rope",
    "set_act_mode",
    "set_isa",
    "set_num_threads",
    "ssm_conv1d",
    "ssm_gated_rmsnorm",
    "ssm_scan",
    "swiglu",
]
