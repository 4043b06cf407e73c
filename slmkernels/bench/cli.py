"""``slmkernels bench``: argument parsing and the command itself."""

from __future__ import annotations

import argparse
import datetime
import os
import sys

from ..cli_args import integer, max_threads, number
from . import AREAS, generation

DEFAULT_FORMATS = "q4_0,q8_0,q4_k"
DEFAULT_SHAPES = "smollm2-135m"
DEFAULT_ROWS = "1,128,512"

EPILOG = """\
examples:
  slmkernels bench gemm --shapes smollm2-135m
  slmkernels bench all --json out.json --plot roofline.png
  slmkernels bench gemm --formats q4_0 --shapes 1x4096x4096 --isa avx2,avx512_vnni
  slmkernels bench --compare before.json after.json
  slmkernels bench generation --model SmolLM2-135M-Instruct.Q4_1.gguf --parts ttft,sampler

Each kernel's output is checked against a float64 numpy reference on the same inputs before it
is timed; a row that fails is marked INVALID, is not timed, and the exit status is 1.
Exit status: 0 all rows valid (skipped rows are fine), 1 a row failed validation or raised,
2 bad arguments. Shapes: a preset (smollm2-135m, llama-1b, square-4096) or MxNxK.
The generation area (time to first token, the server under concurrent clients, the sampler,
grammar masks) prints tables of its own, needs --model and is not part of `all`.
"""


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("bench", help="validate, then time, each kernel against this machine's limits and peers",
                       description="Microbenchmarks with a roofline: what each kernel achieves here, how far from "
                                   "the machine's limits, and next to numpy / PyTorch / llama.cpp.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("areas", nargs="*", metavar="AREA", help=f"{' | '.join(AREAS)} | all (default: all) | generation (not in all)")
    p.add_argument("--formats", default=DEFAULT_FORMATS, help=f"weight formats, comma-separated (default {DEFAULT_FORMATS})")
    p.add_argument("--shapes", action="append", default=None,
                   help=f"presets or MxNxK, comma-separated or repeated (default {DEFAULT_SHAPES}; square-4096 is opt-in)")
    p.add_argument("--rows", default=DEFAULT_ROWS,
                   help=f"activation rows M for presets: 1 = decode (GEMV), more = prefill (default {DEFAULT_ROWS})")
    p.add_argument("--threads", type=integer(1, max_threads()), default=None,
                   help=f"threads, 1..{max_threads()} (default: physical cores)")
    p.add_argument("--isa", action="append", default=None,
                   help="force an ISA; repeat or comma-separate to compare side by side (default: the best)")
    p.add_argument("--repeat", type=integer(1, 10**6), default=5, help="at least this many timed samples per row (default 5)")
    p.add_argument("--min-time", type=number(0, 3600), default=0.2, help="and at least this many seconds per row (default 0.2)")
    p.add_argument("--json", metavar="PATH", help="write one record per row (schema: slmkernels.bench.report.SCHEMA)")
    p.add_argument("--markdown", metavar="PATH", help="write the table as markdown")
    p.add_argument("--plot", metavar="PATH", help="write a roofline picture (needs matplotlib: pip install .[plot])")
    p.add_argument("--compare", nargs=2, metavar=("A.json", "B.json"), help="per-row time ratios of two runs; runs nothing")
    p.add_argument("--working-set-mib", type=number(0, 1 << 20), default=None,
                   help="GEMV rows cycle through distinct weight copies totalling this much, so weights come from "
                        "memory as in decoding (default: 2x the last-level cache; 0: hot cache)")
    p.add_argument("--bandwidth-mib", type=number(1, 1 << 20), default=1024,
                   help="working set of the read-bandwidth probe (default 1024; keep it above the LLC)")
    p.add_argument("--peak-seconds", type=number(0, 60, lo_open=True), default=0.2, help="duration of each compute-peak probe")
    p.add_argument("--no-peers", action="store_true", help="only our kernels")
    p.add_argument("--llama-python", metavar="PATH", help="a python with llama-cpp-python: llama.cpp model peer")
    p.add_argument("--model", action="append", default=None, metavar="GGUF",
                   help="model files for the model area, comma-separated or repeated; 'llama-1b-q4_k_m' writes (once) "
                        "and uses a synthetic Llama-3.2-1B-shaped Q4_K_M file (default: SmolLM2-135M-Instruct.Q4_1.gguf from $SLMK_MODEL_DIR "
                        "or ../shared/models, sha256 checked)")
    m = p.add_argument_group("model area (llama-bench's tests, ours and llama.cpp interleaved)")
    m.add_argument("--n-prompt", type=integer(1, 1 << 20), default=None, help="pp test: prompt tokens (default 512)")
    m.add_argument("--n-gen", type=integer(1, 1 << 20), default=None, help="tg test: generated tokens (default 128)")
    m.add_argument("--depth", default=None, help="cached tokens before each test, comma-separated (default 0,4096)")
    m.add_argument("--model-threads", default=None, help="thread counts, comma-separated (default 1,2)")
    m.add_argument("--model-reps", type=integer(1, 1000), default=None, help="repetitions of every test (default 3)")
    m.add_argument("--model-act", default=None,
                   help="our activation modes, comma-separated, each a candidate (default q8x2-head; see act_modes())")
    g = p.add_argument_group("generation area (needs --model GGUF; not in all)")
    g.add_argument("--parts", default=",".join(generation.PARTS),
                   help=f"comma-separated, from {', '.join(generation.PARTS)} (default: all four)")
    g.add_argument("--clients", default="1,4,16", help="serve: concurrent clients, comma-separated (default 1,4,16)")
    g.add_argument("--tokens", type=integer(1, 1 << 16), default=64, help="serve: tokens per client (default 64)")
    p.add_argument("--seed", type=integer(0, 2**63 - 1), default=0)
    p.set_defaults(func=cmd_bench, parser=p)
    return p


def _split(values) -> list:
    return [s.strip() for v in values for s in v.split(",") if s.strip()]


def cmd_bench(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    from . import report  # noqa: PLC0415

    if args.compare:
        if args.areas:
            parser.error("--compare runs nothing: give no AREA with it")
        try:
            a, b = (report.load_json(p) for p in args.compare)
        except (OSError, ValueError) as e:
            parser.error(f"--compare: {e}")
        text, _ = report.compare(a, b)
        print(text)
        return 0

    import slmkernels as sk  # noqa: PLC0415

    from . import runner  # noqa: PLC0415
    from .peers import default_model  # noqa: PLC0415
    from .shapes import Context, parse_shape  # noqa: PLC0415

    areas = _split(args.areas) or ["all"]
    for a in areas:
        if a not in AREAS + ["all", "generation"]:
            parser.error(f"unknown area {a!r}: choose from {', '.join(AREAS + ['all', 'generation'])}")
    gen = _generation_args(parser, args) if "generation" in areas else None
    if gen and areas == ["generation"]:
        return generation.run(**gen)
    areas = AREAS if "all" in areas else [a for a in AREAS if a in areas]
    known = sk.formats()
    formats = [f.lower() for f in _split([args.formats])]
    for f in formats:
        if f not in known:
            parser.error(f"unknown format {f!r}: choose from {', '.join(known)}")
    if not formats:
        parser.error("--formats: give at least one format")
    try:
        presets = [parse_shape(s) for s in _split(args.shapes or [DEFAULT_SHAPES])]
        rows = [int(v) for v in _split([args.rows])]
    except ValueError as e:
        parser.error(str(e))
    if not rows or min(rows) < 1:
        parser.error("--rows: positive integers")
    supported = sk.cpu_info()["supported_isas"]
    isas = _split(args.isa) if args.isa else [sk.get_isa()]
    for i in isas:
        if i not in supported:
            parser.error(f"--isa {i}: this CPU cannot run it (supported: {', '.join(supported)})")
    threads = args.threads or sk.cpu_info()["physical_cores"]
    if threads < 1:
        parser.error("--threads must be >= 1")
    if args.repeat < 1 or args.min_time < 0:
        parser.error("--repeat must be >= 1 and --min-time >= 0")
    if args.bandwidth_mib < 1:
        parser.error("--bandwidth-mib must be >= 1")
    if args.plot:
        try:
            import matplotlib  # noqa: F401,PLC0415
        except ImportError:
            print("slmkernels bench: error: --plot needs matplotlib: pip install 'slmkernels[plot]'", file=sys.stderr)
            return 2
    ws = args.working_set_mib
    working_set = int(ws * 2**20) if ws is not None else 2 * runner.llc_bytes()

    try:
        mb = dict(n_prompt=args.n_prompt, n_gen=args.n_gen, reps=args.model_reps,
                  bandwidth_bytes=args.bandwidth_mib * 2**20, peak_seconds=args.peak_seconds,
                  depths=tuple(int(v) for v in _split([args.depth])) if args.depth else None,
                  threads=tuple(int(v) for v in _split([args.model_threads])) if args.model_threads else None)
    except ValueError as e:
        parser.error(f"--depth / --model-threads: {e}")
    if mb["depths"] is not None and (min(mb["depths"]) < 0 or max(mb["depths"]) > 1 << 24):
        parser.error("--depth: integers in 0..16777216")
    ncpu = os.cpu_count() or 1
    if mb["threads"] is not None and (min(mb["threads"]) < 1 or max(mb["threads"]) > ncpu):
        parser.error(f"--model-threads: integers in 1..{ncpu} (the CPU count)")
    models = _split(args.model) if args.model else []
    if args.model_act:
        mb["acts"] = tuple(_split([args.model_act]))
        for a in mb["acts"]:
            if a not in sk.act_modes():
                parser.error(f"--model-act {a!r}: choose from {', '.join(sk.act_modes())}")
    sk.set_num_threads(threads)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    limits = runner.measure_limits(isas, args.bandwidth_mib * 2**20, args.peak_seconds)
    print(report.render_limits(limits, threads), file=sys.stderr)
    ctx = Context(presets=presets, formats=formats, rows=rows, working_set=working_set, threads=threads, isa=isas[0],
                  seed=args.seed, llama_python=args.llama_python,
                  model_path=models[0] if models else None)
    if not models and "model" in areas:
        ctx.model_path, ctx.model_missing = default_model()
    ctx.extra.update(model_bench=mb, models=models or None)
    results = runner.run(areas, ctx, isas, args.repeat, args.min_time, limits, peers=not args.no_peers)

    print(report.render_table(results))
    from .model import summary_table  # noqa: PLC0415

    model_summary = summary_table(results)
    if model_summary:
        print("\n" + model_summary)
    for n in report.notes(results):
        print(n, file=sys.stderr)
    meta = dict(version=sk.__version__, git=runner.git_revision(), machine=runner.machine_info(), threads=threads,
                isas=isas, created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                working_set_bytes=working_set, repeat=args.repeat, min_time=args.min_time,
                # other work on the machine skews every number: 1-minute load before and after
                loadavg=[load_before[0], os.getloadavg()[0]] if load_before else None)
    if meta["loadavg"] and max(meta["loadavg"]) > 1.5 * (os.cpu_count() or 1):
        print(f"note: the machine was busy (load average {max(meta['loadavg']):.1f} on {os.cpu_count()} CPUs): "
              "timings are noisy", file=sys.stderr)
    doc = report.document(results, limits, meta, ["slmkernels"] + list(getattr(args, "argv", [])))
    if args.json:
        report.write_json(args.json, doc)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(report.render_limits(limits, threads) + "\n\n" + report.render_table(results, markdown=True) + "\n")
            if model_summary:
                fh.write("\n" + model_summary + "\n")
    if args.plot:
        report.plot_roofline(args.plot, results, limits)
    status = runner.exit_status(results)
    if status:
        print("slmkernels bench: some rows failed validation or raised (see above); exit status 1", file=sys.stderr)
    if gen:
        status = max(status, generation.run(**gen))
    return status


def _generation_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict:
    """The generation area's arguments, checked (a bad one is a one-line usage error)."""
    models = _split(args.model) if args.model else []
    if len(models) != 1:
        parser.error("generation needs one model: --model GGUF")
    if not os.path.isfile(models[0]):
        parser.error(f"--model {models[0]}: no such file")
    parts = _split([args.parts])
    for part in parts:
        if part not in generation.PARTS:
            parser.error(f"--parts {part!r}: choose from {', '.join(generation.PARTS)}")
    if not parts:
        parser.error(f"--parts: give at least one of {', '.join(generation.PARTS)}")
    try:
        clients = [int(v) for v in _split([args.clients])]
    except ValueError:
        clients = []
    if not clients or min(clients) < 1 or max(clients) > 256:
        parser.error(f"--clients: integers in 1..256, comma-separated, got {args.clients!r}")
    return dict(path=models[0], parts=parts, repeats=args.repeat, clients=clients, tokens=args.tokens)
