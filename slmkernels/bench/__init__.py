"""Microbenchmarks: ``slmkernels bench [gemm|attention|kvcache|ops|ssm|model|all]``.

Every row is a :class:`Bench`: a call to time, a check of its output against a float64 numpy
reference on the same inputs, and the work it does (operations and bytes moved), so the runner
can place it on the machine's roofline. Each kernel area has a module (``gemm.py``, ``ops.py``,
``attention.py``, ``model.py``) whose case functions are registered here with :func:`case`;
adding a benchmark is one small generator function::

    @case("ops", requires=("softmax",))
    def softmax_rows(ctx):
        x = ctx.rng.standard_normal((ctx.rows, ctx.preset.vocab)).astype(np.float32)
        yield Bench(area="ops", name="softmax", op="softmax", run=lambda: sk.softmax(x),
                    check=lambda out: ..., flops=5 * x.size, bytes=2 * x.nbytes, compute="fp32")

A case whose ``requires`` names something missing from ``slmkernels`` is reported as
"skipped: not available in this build". Output checks return the worst error divided by its
bound, so <= 1 passes; a failed check marks the row invalid and it is not timed.

Test hook: :func:`_inject_fault` (or ``SLMK_BENCH_FAULT=op[,op...]`` in the environment) perturbs
one element of every output of that op (``matmul``, ``rope``, ``rmsnorm``, ...) as the bench
sees it, to prove a wrong kernel is caught.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

import numpy as np

AREAS = ["gemm", "attention", "kvcache", "ops", "ssm", "model"]


@dataclass
class Bench:
    """One benchmark row. ``run`` is timed; ``check(run())`` is the error/bound ratio (<= 1 ok)."""

    area: str
    name: str  # what is computed, e.g. "gemv ffn_up" or "rope neox"
    op: str  # the operation, the key _inject_fault matches: "matmul", "rope", "rmsnorm", ...
    run: Callable[[], Any]
    check: Optional[Callable[[Any], float]]  # None: nothing to check against (e.g. llama.cpp)
    flops: float  # operations per call (a multiply-add is 2)
    bytes: float  # bytes moved per call: weights + inputs + outputs
    compute: Optional[str]  # which peak bounds it: "int8", "fp32", or None (no roofline point)
    impl: str = "slmkernels"  # or a peer: "numpy", "torch", "torch-int8", "llama.cpp"
    kernel: str = ""  # the kernel that runs (from kernel_names()), or the peer's function
    format: str = "-"
    shape: str = "-"  # e.g. "1x1536x576" (M x N x K) or "T=128 H=9 D=64"
    params: dict = field(default_factory=dict)
    kind: str = "kernel"  # "kernel", "overhead" (per-call cost, no roofline), "end-to-end"
    skip: Optional[str] = None  # a reason: reported, not run
    seconds: Optional[float] = None  # set when the timing is done elsewhere (llama.cpp subprocess)
    unit: str = "op"  # what `flops` counts: "op" (GOPS/GFLOP/s) or "token" (tokens/s)
    check_run: Optional[Callable[[], Any]] = None  # the call whose output is checked, if not `run`
    threads: Optional[int] = None  # the row ran on this many threads (default: the run's --threads)
    timing: Optional[dict] = None  # measure()'s fields when timed elsewhere (the model area's interleaved runs)
    # memory-bound rows: the read bandwidth (GB/s) measured between this row's own timed samples;
    # the row's fraction of the read-bandwidth limit is then against that, not the run's start probe
    probe: Optional[Callable[[], float]] = None


@dataclass
class Case:
    area: str
    name: str
    fn: Callable[["Any"], Iterator[Bench]]
    requires: tuple = ()
    peer: bool = False  # runs once, not once per --isa


REGISTRY: dict[str, list[Case]] = {a: [] for a in AREAS}


def case(area: str, requires: tuple = (), peer: bool = False):
    """Register a generator of :class:`Bench` rows for ``area``; ``requires`` are attribute names
    of ``slmkernels`` the case needs (the case is skipped when one is missing)."""
    if area not in REGISTRY:
        raise ValueError(f"unknown area {area!r}")

    def deco(fn):
        REGISTRY[area].append(Case(area, fn.__name__, fn, tuple(requires), peer))
        return fn

    return deco


def entry_name(op: str, fmt: Optional[str] = None, m: int = 1, packed: bool = False) -> str:
    """The registry entry (slmkernels.kernels()) that runs for op and fmt under the ISA in use:
    for "gemm", the panel when it has one, the weights are packed and M reaches its min_m."""
    import slmkernels as sk

    active = {(k["op"], k["format"]): k for k in sk.kernels() if k["active"]}
    panel = active.get(("gemm_panel", fmt)) if op == "gemm" else None
    if panel is not None and packed and m >= panel["min_m"]:
        return panel["name"]
    k = active.get((op, fmt))
    return k["name"] if k else f"{op}_{fmt}" if fmt else op


def missing(c: Case) -> list[str]:
    import slmkernels as sk

    return [r for r in c.requires if not hasattr(sk, r)]


# ---- test hook: a deliberately wrong kernel ----

_FAULTS: set = set()


def _inject_fault(op: Optional[str]) -> None:
    """Make every output of ``op`` (e.g. "matmul") wrong in one element; None clears all."""
    if op is None:
        _FAULTS.clear()
    else:
        _FAULTS.add(op)


def faulty(op: str) -> bool:
    env = {s.strip() for s in os.environ.get("SLMK_BENCH_FAULT", "").split(",") if s.strip()}
    return op in _FAULTS or op in env


def perturb(out: Any) -> Any:
    """A copy of the output with one element off by far more than any tolerance."""
    a = np.array(out, dtype=np.float32, copy=True)
    flat = a.reshape(-1)
    flat[flat.size // 2] += 1.0 + 16.0 * float(np.abs(flat).max())
    return a


# The area modules register their cases on import.
from . import attention, gemm, model, ops, ssm  # noqa: E402,F401
