"""Runs the registered cases: machine limits first, then for each row validate, time, and place
it on the roofline. Rows are plain dicts (the JSON records, see report.SCHEMA)."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import sys
import time
from typing import Any, Callable, Optional

import numpy as np

import slmkernels as sk
from slmkernels import _core

from . import AREAS, REGISTRY, Bench, faulty, missing, perturb
from .peers import set_peer_threads
from .shapes import Context

MAX_SAMPLES = 100_000
PROBE_ROUNDS = 5  # rows with a read-bandwidth probe of their own: timed rounds, each followed by the probe
SAMPLE_SECONDS = 1e-3  # tiny calls are batched so one timed sample lasts at least this long


# ---- the machine ----


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def llc_bytes() -> int:
    """The largest cache size sysfs reports for cpu0 (0 if unknown)."""
    best = 0
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for d in os.listdir(base):
            try:
                with open(os.path.join(base, d, "size")) as fh:
                    s = fh.read().strip().upper()
                mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(s[-1:], 1)
                best = max(best, int(s.rstrip("KMG")) * mult)
            except (OSError, ValueError):
                continue
    except OSError:
        pass
    return best


def git_revision() -> str:
    """`git rev-parse HEAD` of the checkout the package (or the working directory) is in."""
    for d in (os.path.dirname(os.path.abspath(sk.__file__)), os.getcwd()):
        try:
            r = subprocess.run(["git", "-C", d, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
            if r.returncode == 0 and r.stdout.strip():
                dirty = subprocess.run(["git", "-C", d, "status", "--porcelain", "--untracked-files=no"],
                                       capture_output=True, text=True, timeout=10).stdout.strip()
                return r.stdout.strip() + ("-dirty" if dirty else "")
        except (OSError, subprocess.TimeoutExpired):
            continue
    return "unknown"


def machine_info() -> dict:
    info = sk.cpu_info()
    return dict(cpu=cpu_model(), arch=info["arch"], features=list(info["features"]), logical_cpus=os.cpu_count(),
                physical_cores=info["physical_cores"], llc_bytes=llc_bytes(), os=platform.platform(),
                python=platform.python_version(), numpy=np.__version__)


def measure_limits(isas: list, bandwidth_bytes: int, peak_seconds: float) -> dict:
    """Read bandwidth (once: no ISA dependence worth measuring twice) and the int8/fp32 peaks of
    each ISA, all on the current thread count."""
    bw = _core._probe_read_bandwidth(int(bandwidth_bytes), 5)  # best of 5: others' work only slows it
    before = sk.get_isa()
    peaks = {}
    try:
        ladder = sk.cpu_info()["supported_isas"]  # best first
        for isa in dict.fromkeys([before] + list(isas)):
            peaks[isa] = {}
            # An ISA without a probe of its own (0 GOPS, e.g. AMX) gets the next one down the
            # ladder that has one: a lower bound on its peak, named in probe_isa.
            for kind in ("int8", "fp32"):
                for cand in ladder[ladder.index(isa):] if isa in ladder else [isa]:
                    sk.set_isa(cand)
                    g = _core._probe_peak(kind, peak_seconds)["gops"]
                    if g > 0:
                        peaks[isa][kind] = g
                        if cand != isa:
                            peaks[isa]["probe_isa"] = cand
                        break
                else:
                    peaks[isa][kind] = 0.0
    finally:
        sk.set_isa(before)
    return dict(read_gb_per_s=bw["gb_per_s"], read_bytes=bw["bytes"], peaks=peaks, best_isa=before)


# ---- timing ----


def measure(fn: Callable[[], Any], repeat: int, min_time: float, probe: Optional[Callable[[], float]] = None) -> dict:
    """One warm-up call, then samples until at least `repeat` samples and `min_time` seconds.

    With `probe` (a read-bandwidth measurement, GB/s) the samples come in PROBE_ROUNDS rounds with
    the probe after each, so the row and its bandwidth limit share the moment on a noisy host;
    the median probe is returned as read_gb_per_s."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    inner = max(1, min(10_000, int(SAMPLE_SECONDS / max(first, 1e-9))))
    rounds = PROBE_ROUNDS if probe is not None else 1
    samples, probes = [], []
    for r in range(rounds):
        start, n0 = time.perf_counter(), len(samples)
        while len(samples) - n0 < math.ceil(repeat / rounds) or (
                time.perf_counter() - start < min_time / rounds and len(samples) < MAX_SAMPLES):
            t = time.perf_counter()
            for _ in range(inner):
                fn()
            samples.append((time.perf_counter() - t) / inner)
        if probe is not None:
            probes.append(probe())
    a = np.asarray(samples)
    med = float(np.median(a))
    q1, q3 = np.percentile(a, [25, 75])
    out = dict(seconds=med, seconds_min=float(a.min()), seconds_max=float(a.max()),
               spread=float((q3 - q1) / med) if med > 0 else 0.0, reps=len(samples) * inner)
    if probes:
        out["read_gb_per_s"] = float(np.median(probes))
    return out


# ---- the roofline ----


def place(row: dict, limits: dict) -> None:
    """Rates, arithmetic intensity, which limit bounds the row and the fraction achieved."""
    s = row["seconds"]
    row.update(gops=None, gb_per_s=None, intensity=None, bound=None, limit=None, limit_value=None, frac_of_limit=None)
    if s is None or s <= 0 or row["kind"] not in ("kernel",):
        if s and row["unit"] == "token" and row["flops"]:
            row["rate"] = row["flops"] / s
            # end-to-end rows bring their own roofline (tokens/s at the limit, model.py)
            roof = row["params"].get("roofline_tok_s")
            if roof:
                row.update(limit=row["params"]["roofline_limit"], limit_value=roof, frac_of_limit=row["rate"] / roof)
            if row["bytes"]:
                row["gb_per_s"] = row["bytes"] / s / 1e9
        return
    row["gops"] = row["flops"] / s / 1e9 if row["flops"] else None
    row["gb_per_s"] = row["bytes"] / s / 1e9 if row["bytes"] else None
    bw = row["params"].get("read_gb_per_s") or limits["read_gb_per_s"]  # the row's own probe, if it took one
    peaks = limits["peaks"].get(row["isa"] if row["impl"] == "slmkernels" else limits["best_isa"], {})
    peak = peaks.get(row["compute"] or "", 0.0) or 0.0
    if row["flops"] and row["bytes"]:
        row["intensity"] = row["flops"] / row["bytes"]
    if row["bytes"] and (not row["flops"] or not peak or row["intensity"] < peak / bw):
        row.update(bound="memory", limit="read bandwidth", limit_value=bw, frac_of_limit=row["gb_per_s"] / bw)
    elif row["flops"] and peak:
        row.update(bound="compute", limit=f"{row['compute']} peak", limit_value=peak, frac_of_limit=row["gops"] / peak)
    row["rate"] = row["gops"]


# ---- the run ----


def base_row(b: Bench, isa: str, threads: int, common: dict) -> dict:
    return dict(area=b.area, name=b.name, impl=b.impl, op=b.op, kernel=b.kernel or b.op, format=b.format,
                shape=b.shape, params=b.params, kind=b.kind, compute=b.compute, unit=b.unit,
                isa=isa if b.impl == "slmkernels" else "-", threads=b.threads or threads, status="ok", note="", err_ratio=None,
                seconds=None, seconds_min=None, seconds_max=None, spread=None, reps=0, flops=float(b.flops),
                bytes=float(b.bytes), rate=None, gops=None, gb_per_s=None, intensity=None, bound=None, limit=None,
                limit_value=None, frac_of_limit=None, **common)


def run_bench(b: Bench, row: dict, repeat: int, min_time: float) -> None:
    if b.skip:
        row.update(status="skipped", note=b.skip)
        return
    if b.run is None:  # timed elsewhere (a subprocess peer, the model area's interleaved runs)
        row.update(b.timing or dict(seconds=b.seconds, seconds_min=b.seconds, seconds_max=b.seconds, spread=0.0,
                                    reps=1))
        return
    try:
        if b.check is not None:
            out = (b.check_run or b.run)()
            if faulty(b.op):
                out = perturb(out)
            err = b.check(out)
            row["err_ratio"] = err if math.isfinite(err) else None
            if not err <= 1.0:
                row.update(status="invalid", note=f"output off by {err:.3g}x its error bound: not timed"
                           if math.isfinite(err) else "output has the wrong shape or non-finite values: not timed")
                return
        timing = measure(b.run, repeat, min_time, probe=b.probe)
        if "read_gb_per_s" in timing:  # the row's own limit (place() uses it), recorded with the row
            row["params"] = {**row["params"], "read_gb_per_s": timing.pop("read_gb_per_s")}
        row.update(timing)
    except Exception as e:  # an API in flux, an allocation failure: report, go on
        row.update(status="error", note=f"{type(e).__name__}: {e}"[:300])


class Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, total: int):
        self.total, self.done, self.on = max(total, 1), 0, sys.stderr.isatty()

    def show(self, label: str) -> None:
        if self.on:
            n = int(30 * self.done / self.total)
            sys.stderr.write(f"\r[{'#' * n}{'.' * (30 - n)}] {self.done}/{self.total} {label[:60]:<60}")
            sys.stderr.flush()

    def step(self) -> None:
        self.done += 1

    def close(self) -> None:
        if self.on:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


def run(areas: list, ctx: Context, isas: list, repeat: int, min_time: float, limits: dict, peers: bool = True) -> list:
    """All rows of `areas`, once per ISA (peers once); an area this build lacks is one skipped row."""
    common = dict(version=sk.__version__, git=git_revision(), machine=dict(cpu=cpu_model(), arch=sk.cpu_info()["arch"]))
    set_peer_threads(ctx.threads)
    rows: list = []
    cases = [(a, c) for a in areas for c in REGISTRY[a]]
    available = [(a, c) for a, c in cases if not missing(c)]
    for a in areas:
        own = [c for c in REGISTRY[a] if not c.peer]
        if own and all(missing(c) for c in own):
            needs = sorted({r for c in own for r in missing(c)})
            rows.append(dict(base_row(Bench(area=a, name=f"{a} (all)", op=a, run=None, check=None, flops=0, bytes=0,
                                            compute=None), "-", ctx.threads, common),
                             status="skipped", note="skipped: not available in this build "
                                                    f"(needs slmkernels.{', slmkernels.'.join(needs)})"))
    for a, c in cases:  # single cases the build lacks, in areas it has
        own = [o for o in REGISTRY[a] if not o.peer]
        if missing(c) and not all(missing(o) for o in own):
            rows.append(dict(base_row(Bench(area=a, name=c.name, op=c.name, run=None, check=None, flops=0, bytes=0,
                                            compute=None), "-", ctx.threads, common),
                             status="skipped", note="skipped: not available in this build "
                                                    f"(needs slmkernels.{', slmkernels.'.join(missing(c))})"))
    progress = Progress(sum(1 for _, c in available for _ in ([0] if c.peer else isas)))
    before = sk.get_isa()
    try:
        for i, isa in enumerate(isas):
            sk.set_isa(isa)
            ctx.isa = isa
            ctx.extra["peers"] = peers and i == 0
            for a, c in available:
                if c.peer and (i > 0 or not peers):
                    continue
                progress.show(f"{a} {c.name} ({isa})")
                try:
                    for b in c.fn(ctx):
                        progress.show(f"{a} {b.name} {b.format} {b.shape} {b.impl}")
                        row = base_row(b, isa, ctx.threads, common)
                        run_bench(b, row, repeat, min_time)
                        place(row, limits)
                        rows.append(row)
                except Exception as e:  # a case that cannot even set up
                    row = base_row(Bench(area=a, name=c.name, op=c.name, run=None, check=None, flops=0, bytes=0,
                                         compute=None), isa, ctx.threads, common)
                    row.update(status="error", note=f"{type(e).__name__}: {e}"[:300])
                    rows.append(row)
                progress.step()
    finally:
        sk.set_isa(before)
        progress.close()
    return rows


def exit_status(rows: list) -> int:
    """0: every row valid (or skipped); 1: some row failed validation or raised."""
    return 1 if any(r["status"] in ("invalid", "error") for r in rows) else 0


__all__ = ["AREAS", "measure", "measure_limits", "machine_info", "git_revision", "run", "exit_status", "llc_bytes"]
