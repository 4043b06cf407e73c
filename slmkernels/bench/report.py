"""Output: the terminal table, the JSON document and its schema, the roofline plot, --compare."""

from __future__ import annotations

import json
import math
from typing import Optional

SCHEMA_VERSION = 1

_NUM = {"type": ["number", "null"]}
_STR = {"type": "string"}

ROW_SCHEMA = {
    "type": "object",
    "required": ["area", "name", "impl", "op", "kernel", "format", "shape", "params", "kind", "isa", "threads",
                 "status", "note", "err_ratio", "seconds", "seconds_min", "seconds_max", "spread", "reps", "flops",
                 "bytes", "rate", "unit", "gops", "gb_per_s", "intensity", "bound", "limit", "limit_value",
                 "frac_of_limit", "version", "git", "machine"],
    "properties": {
        "area": {"enum": ["gemm", "attention", "kvcache", "ops", "ssm", "model"]},
        "name": _STR,  # what is computed: "gemv ffn_up (smollm2-135m)", "rope neox", ...
        "impl": _STR,  # "slmkernels" or the peer: "numpy", "torch", "torch-int8", "llama.cpp"
        "op": _STR,  # operation; the key of slmkernels.bench._inject_fault
        "kernel": _STR,  # the kernel that ran (kernel_names()), or the peer's function
        "format": _STR,  # weight / cache format: "q4_0", "f16", "f32", "qint8", "gguf", "-"
        "shape": _STR,  # "MxNxK" for matmul; "T=.. H=.. D=.." etc. elsewhere
        "params": {"type": "object"},
        "kind": {"enum": ["kernel", "overhead", "end-to-end"]},  # overhead: per-call cost, no roofline
        "compute": {"enum": ["int8", "fp32", None]},  # which peak bounds the row
        "isa": _STR,  # the ISA our kernels were forced to; "-" for peers
        "threads": {"type": "integer", "minimum": 1},
        "status": {"enum": ["ok", "invalid", "skipped", "error"]},  # invalid: failed validation, not timed
        "note": _STR,
        "err_ratio": _NUM,  # worst |out - reference| / bound on the validation call (<= 1 passes)
        "seconds": _NUM,  # median seconds per call
        "seconds_min": _NUM,
        "seconds_max": _NUM,
        "spread": _NUM,  # interquartile range of the samples / median
        "reps": {"type": "integer", "minimum": 0},  # timed calls
        "flops": {"type": "number"},  # operations per call (multiply-add = 2); tokens for unit "token"
        "bytes": {"type": "number"},  # bytes moved per call: weights (or cache) + inputs + outputs
        "rate": _NUM,  # gops for kernels; tokens per second for unit "token"
        "unit": {"enum": ["op", "token"]},
        "gops": _NUM,  # 1e9 operations per second
        "gb_per_s": _NUM,
        "intensity": _NUM,  # flops / bytes
        "bound": {"enum": ["memory", "compute", None]},  # intensity below / above the ridge point
        "limit": {"type": ["string", "null"]},  # "read bandwidth", "int8 peak", "fp32 peak"
        "limit_value": _NUM,  # GB/s or GOPS
        "frac_of_limit": _NUM,  # achieved / limit
        "version": _STR,
        "git": _STR,  # `git rev-parse HEAD` (+"-dirty"), or "unknown" outside a checkout
        "machine": {"type": "object", "required": ["cpu", "arch"],
                    "properties": {"cpu": _STR, "arch": _STR}},
    },
}

SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "slmkernels bench results",
    "type": "object",
    "required": ["schema_version", "command", "meta", "limits", "rows"],
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "command": {"type": "array", "items": _STR},
        "meta": {
            "type": "object",
            "required": ["version", "git", "machine", "threads", "isas", "created"],
            "properties": {"machine": {"type": "object", "required": ["cpu", "arch"]},
                           "threads": {"type": "integer"}, "isas": {"type": "array", "items": _STR}},
        },
        "limits": {
            "type": "object",
            "required": ["read_gb_per_s", "read_bytes", "peaks", "best_isa"],
            "properties": {
                "read_gb_per_s": {"type": "number"},
                "read_bytes": {"type": "integer"},
                "peaks": {"type": "object", "additionalProperties": {
                    "type": "object", "required": ["int8", "fp32"],
                    "properties": {"int8": {"type": "number"}, "fp32": {"type": "number"},
                                   "probe_isa": _STR}}},  # set when the ISA has no probe of its own
                "best_isa": _STR,
            },
        },
        "rows": {"type": "array", "items": ROW_SCHEMA},
    },
}


# ---- the table ----


def fmt_time(s: Optional[float]) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.2f} us" if s < 1e-5 else f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def fmt_rate(r: dict) -> str:
    if r.get("rate") is None:
        return "-"
    if r["unit"] == "token":
        return f"{r['rate']:.1f} tok/s"
    unit = "GOPS" if r.get("compute") == "int8" else "GFLOP/s"
    return f"{r['rate']:.1f} {unit}" if r["rate"] < 100 else f"{r['rate']:.0f} {unit}"


def table_rows(rows: list) -> tuple[list, list]:
    head = ["area", "benchmark", "impl", "format", "shape", "isa", "time", "spread", "rate", "GB/s", "limit", "of limit", "check"]
    out = []
    for r in rows:
        if r["status"] == "ok":
            check = "n/a" if r["err_ratio"] is None else f"ok {r['err_ratio']:.2f}"
        else:
            check = r["status"].upper() if r["status"] != "skipped" else "skipped"
        frac = f"{r['frac_of_limit']:.0%}" if r.get("frac_of_limit") is not None else "-"
        lim = {"read bandwidth": "bandwidth"}.get(r.get("limit"), r.get("limit") or "-")
        if r["kind"] == "overhead":
            lim = "per call"
        out.append([r["area"], r["name"], r["impl"], r["format"], r["shape"], r["isa"], fmt_time(r["seconds"]),
                    f"{r['spread']:.0%}" if r.get("spread") is not None and r["seconds"] else "",
                    fmt_rate(r), f"{r['gb_per_s']:.1f}" if r.get("gb_per_s") else "-", lim, frac, check])
    return head, out


AREA_ORDER = ["gemm", "attention", "kvcache", "ops", "ssm", "model"]


def grouped(rows: list) -> list:
    """Rows of the same problem side by side (ISAs, peers), areas in their usual order,
    problems in first-seen order."""
    order: dict = {}
    for r in rows:
        order.setdefault((r["area"], r["name"], r["shape"]), len(order))
    return sorted(rows, key=lambda r: (AREA_ORDER.index(r["area"]), order[(r["area"], r["name"], r["shape"])]))


def shown(rows: list) -> list:
    """The table leaves out single skipped rows (a format whose block does not divide K, a peer
    that is not installed: their reasons are printed below it) but keeps whole skipped areas."""
    return [r for r in rows if r["status"] != "skipped" or r["name"].endswith("(all)")]


def render_table(rows: list, markdown: bool = False) -> str:
    head, body = table_rows(grouped(shown(rows)))
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(head)]
    right = {6, 7, 8, 9, 11}
    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(row) for row in body])


def render_load(meta: dict) -> str:
    """The machine's 1-minute load average before and after the run (others' work skews timings)."""
    la = meta.get("loadavg")
    if not la:
        return ""
    return f"load average {la[0]:.1f} before, {la[1]:.1f} after, on {meta['machine'].get('logical_cpus', '?')} CPUs"


def render_limits(limits: dict, threads: int) -> str:
    peaks = ", ".join(f"{isa}: int8 {p['int8']:.0f} GOPS, fp32 {p['fp32']:.0f} GFLOP/s"
                      + (f" (probed with {p['probe_isa']})" if p.get("probe_isa") else "") for isa, p in limits["peaks"].items())
    return (f"machine limits ({threads} threads): read bandwidth {limits['read_gb_per_s']:.1f} GB/s "
            f"over {limits['read_bytes'] / 2**20:.0f} MiB; {peaks}")


def notes(rows: list) -> list:
    """Rows that failed or were skipped, with the reason (once per distinct reason and area)."""
    seen, out = set(), []
    for r in rows:
        if r["status"] != "ok" and r["note"]:
            key = (r["area"], r["impl"], r["note"])
            if key not in seen:
                seen.add(key)
                out.append(f"{r['status']}: {r['area']} {r['name']} [{r['impl']} {r['format']} {r['shape']}]: {r['note']}")
    return out


# ---- JSON ----


def document(rows: list, limits: dict, meta: dict, command: list) -> dict:
    return dict(schema_version=SCHEMA_VERSION, command=list(command), meta=meta, limits=limits, rows=rows)


def write_json(path: str, doc: dict) -> None:
    with open(path, "w") as fh:
        json.dump(doc, fh, indent=1, default=_jsonable)
        fh.write("\n")


def _jsonable(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def load_json(path: str) -> dict:
    with open(path) as fh:
        doc = json.load(fh)
    if not isinstance(doc, dict) or "rows" not in doc:
        raise ValueError(f"{path}: not a slmkernels bench JSON file (no 'rows')")
    return doc


# ---- --compare ----


def row_key(r: dict) -> tuple:
    return (r["area"], r["name"], r["impl"], r["format"], r["shape"], r["isa"])


def compare(a: dict, b: dict) -> tuple[str, list]:
    """Per-row ratio b/a of median times (> 1: b is slower) for rows timed in both."""
    rb = {row_key(r): r for r in b["rows"]}
    head = ["area", "benchmark", "impl", "format", "shape", "isa", "time a", "time b", "b/a time", "speedup"]
    body, ratios = [], []
    for r in a["rows"]:
        k = row_key(r)
        o = rb.pop(k, None)
        ta, tb = r.get("seconds"), (o or {}).get("seconds")
        if ta and tb:
            ratio = tb / ta
            ratios.append(dict(key=list(k), a=ta, b=tb, ratio=ratio))
            body.append([*k, fmt_time(ta), fmt_time(tb), f"{ratio:.3f}", f"{1 / ratio:.2f}x"])
        else:
            body.append([*k, fmt_time(ta), fmt_time(tb) if o else "(absent)", "-", "-"])
    for k, o in rb.items():
        body.append([*k, "(absent)", fmt_time(o.get("seconds")), "-", "-"])
    widths = [max(len(h), *(len(row[i]) for row in body)) if body else len(h) for i, h in enumerate(head)]
    def line(cells):
        return "  ".join(c.rjust(w) if i >= 6 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    text = "\n".join([line(head), line(["-" * w for w in widths])] + [line(r) for r in body])
    if ratios:
        gm = math.exp(sum(math.log(x["ratio"]) for x in ratios) / len(ratios))
        text += f"\n\n{len(ratios)} rows in both; geometric mean b/a time {gm:.3f} ({1 / gm:.2f}x speedup)"
    return text, ratios


# ---- --plot ----


class PlotUnavailable(RuntimeError):
    pass


def plot_roofline(path: str, rows: list, limits: dict) -> None:
    try:
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as e:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'slmkernels[plot]' (or pip install matplotlib)") from e
    pts = [r for r in rows if r["status"] == "ok" and r.get("intensity") and r.get("gops")]
    bw = limits["read_gb_per_s"]
    peaks = limits["peaks"][limits["best_isa"]]
    fig, ax = plt.subplots(figsize=(9, 6))
    xs = [r["intensity"] for r in pts] or [1.0]
    lo, hi = min(xs + [0.1]) / 2, max(xs + [peaks["int8"] / bw if bw else 10]) * 4
    grid = [lo * (hi / lo) ** (i / 200) for i in range(201)]
    for kind, style in (("int8", "-"), ("fp32", "--")):
        if peaks[kind]:
            ax.plot(grid, [min(peaks[kind], x * bw) for x in grid], "k" + style, lw=1,
                    label=f"{kind} roof: {peaks[kind]:.0f} GOPS, {bw:.1f} GB/s")
    markers = {"gemm": "o", "attention": "s", "kvcache": "v", "ops": "^", "ssm": "P", "model": "D"}
    impls = sorted({r["impl"] for r in pts})
    cmap = plt.get_cmap("tab10")
    for j, impl in enumerate(impls):
        for area, mk in markers.items():
            sel = [r for r in pts if r["impl"] == impl and r["area"] == area]
            if sel:
                ax.scatter([r["intensity"] for r in sel], [r["gops"] for r in sel], marker=mk, color=cmap(j % 10),
                           label=f"{impl} {area}", alpha=0.8, edgecolors="none")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (operations / byte moved)")
    ax.set_ylabel("GOPS (int8) or GFLOP/s (fp32)")
    ax.set_title(f"slmkernels roofline ({limits['best_isa']})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
