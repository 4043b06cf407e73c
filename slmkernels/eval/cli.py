"""``slmkernels eval``: argument parsing, the run, the table."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from ..cli_args import integer, max_threads

EPILOG = """\
examples:
  slmkernels eval --model SmolLM2-135M-Instruct.Q4_1.gguf --text /usr/share/common-licenses/GPL-3
  slmkernels eval --model M.gguf --text wiki.test.raw --ctx 512 --chunks 20 --llama-python venv/bin/python --json e.json

Each candidate's next-token distributions are compared with a float64 forward pass over the same
dequantized weights, on the same token ids, as llama-perplexity --kl-divergence does (mean KLD,
top-1 agreement, dp = Q(next) - P(next) percentiles, perplexity). With --llama-python, llama.cpp
(llama-cpp-python in that interpreter) runs the same chunks as one more candidate.
Exit status: 0 done, 2 bad arguments or unreadable files.
"""

PEER_TIMEOUT_S = 3600


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("eval", help="perplexity and KL divergence against a float64 reference forward pass",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, metavar="GGUF", help="the model file")
    p.add_argument("--text", required=True, metavar="FILE", help="UTF-8 text to score")
    p.add_argument("--ctx", type=integer(8, 1 << 20), default=512,
                   help="tokens per chunk, even (default 512; the second half is scored)")
    p.add_argument("--chunks", type=integer(0), default=0, help="at most this many chunks (default: all whole chunks)")
    p.add_argument("--threads", type=integer(1, max_threads()), default=None,
                   help=f"threads, 1..{max_threads()} (default: physical cores)")
    p.add_argument("--kv-dtype", default="f16", choices=("f32", "f16", "q8_0", "q4_0"), help="our KV cache (default f16)")
    p.add_argument("--act", default=None, help="our GEMV/GEMM activation modes to evaluate, comma-separated "
                                               "(see slmkernels.act_modes(); default: the default mode, q8x2-head)")
    p.add_argument("--llama-python", metavar="PATH", help="a python with llama-cpp-python: llama.cpp as a candidate")
    p.add_argument("--json", metavar="PATH", help="write the summary as JSON")
    p.set_defaults(func=cmd_eval, parser=p)
    return p


def _render(rows: list[tuple[str, dict]]) -> str:
    head = ("| candidate | PPL | ln(PPL/PPL_ref) | mean KLD | median KLD | 99% KLD | max KLD | top-1 | RMS dp | "
            "dp 1% | dp 99% |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for name, s in rows:
        lines.append(
            f"| {name} | {s['ppl']:.4f} | {s['ln_ppl_ratio']:+.5f} ± {s['ln_ppl_ratio_err']:.5f} | "
            f"{s['kld_mean']:.6f} ± {s['kld_err']:.6f} | {s['kld_median']:.6f} | {s['kld_p99']:.5f} | "
            f"{s['kld_max']:.4f} | {100 * s['top1']:.2f} ± {100 * s['top1_err']:.2f}% | {100 * s['dp_rms']:.3f}% | "
            f"{100 * s['dp_p1']:+.3f}% | {100 * s['dp_p99']:+.3f}% |")
    return "\n".join(lines)


def _read_exact(fh, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        b = fh.read(n - len(buf))
        if not b:
            break
        buf += b
    return bytes(buf)


def cmd_eval(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.parser
    if args.ctx % 2:
        parser.error(f"argument --ctx: must be an even integer in 8..{1 << 20}, got {args.ctx}")
    if args.llama_python and not os.path.exists(args.llama_python):
        parser.error(f"--llama-python {args.llama_python!r} not found")
    try:
        with open(args.text, encoding="utf-8") as fh:
            text = fh.read()
    except (OSError, UnicodeDecodeError) as e:
        parser.error(f"--text: {e}")

    import numpy as np

    import slmkernels as sk
    from slmkernels.model.gguf_reader import GGUFError
    from slmkernels.model.runtime import Model

    from . import Stats, chunks, log_softmax
    from .reference import ReferenceModel

    before_act = sk.get_act_mode()
    acts = [a.strip() for a in (args.act or before_act).split(",") if a.strip()]
    known = sk.act_modes()
    for a in acts:
        if a not in known:
            parser.error(f"--act {a!r}: choose from {', '.join(known)}")
    if args.threads:
        sk.set_num_threads(args.threads)
    threads = sk.get_num_threads()
    try:
        model = Model.from_gguf(args.model, context=args.ctx, kv_dtype=args.kv_dtype)
    except (OSError, GGUFError, ValueError) as e:
        parser.error(f"--model: {e}")
    tok = model.tokenizer
    ids = tok.encode(text)
    bos = tok.bos_id if tok.add_bos else None
    parts = chunks(ids, args.ctx, bos, args.chunks or None)
    if not parts:
        parser.error(f"--text: {len(ids)} tokens, fewer than one chunk of --ctx {args.ctx}")
    first = args.ctx // 2
    vocab = model.config.vocab
    print(f"eval: {len(ids)} tokens, {len(parts)} chunks of {args.ctx}, {len(parts) * (args.ctx - 1 - first)} scored, "
          f"{threads} threads, isa {sk.get_isa()}", file=sys.stderr)

    ref = ReferenceModel(model.reader, model.config)
    names = [f"slmkernels act={a} kv={args.kv_dtype}" for a in acts]
    stats = {n: Stats() for n in names}
    peer = None
    req_path = None
    if args.llama_python:
        peer_name = f"llama.cpp kv={args.kv_dtype}"
        stats[peer_name] = Stats()
        fd, req_path = tempfile.mkstemp(suffix=".json")
        with os.fdopen(fd, "w") as fh:
            json.dump({"model": os.path.abspath(args.model), "threads": threads, "ctx": args.ctx, "first": first,
                       "vocab": vocab, "kv_dtype": args.kv_dtype, "chunks": [c.tolist() for c in parts]}, fh)
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llama_peer.py")
        peer = subprocess.Popen([args.llama_python, script, req_path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    nbytes = (args.ctx - 1 - first) * vocab * 4
    t0 = time.perf_counter()
    try:
        for ci, c in enumerate(parts):
            targets = c[first + 1 :]
            logp_ref = log_softmax(ref.forward(c, rows=slice(first, args.ctx - 1)))
            for a, name in zip(acts, names):
                sk.set_act_mode(a)
                seq = model.new_sequence()
                try:
                    logits = model.forward(seq, c, all_logits=True)[first : args.ctx - 1]
                finally:
                    model.free(seq)
                stats[name].add(logp_ref, logits, targets)
            if peer is not None:
                raw = _read_exact(peer.stdout, nbytes)
                if len(raw) != nbytes:
                    err = peer.stderr.read().decode(errors="replace").strip().splitlines()
                    print(f"slmkernels eval: llama.cpp stopped: {err[-1] if err else 'no output'}", file=sys.stderr)
                    return 1
                stats[peer_name].add(logp_ref, np.frombuffer(raw, dtype=np.float32).reshape(-1, vocab), targets)
            done = " | ".join(f"{n}: KLD {np.concatenate(s.kld).mean():.5f}" for n, s in stats.items())
            print(f"chunk {ci + 1}/{len(parts)} ({time.perf_counter() - t0:.0f} s) {done}", file=sys.stderr)
    finally:
        sk.set_act_mode(before_act)
        if peer is not None:
            peer.stdout.close()
            try:
                peer.wait(timeout=PEER_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                peer.kill()
            peer.stderr.close()
        if req_path:
            os.unlink(req_path)
    rows = [(n, s.summary()) for n, s in stats.items()]
    print(f"reference (float64 over the dequantized weights): PPL {rows[0][1]['ppl_ref']:.4f}")
    print(_render(rows))
    if args.json:
        doc = {"model": os.path.basename(args.model), "text": os.path.basename(args.text), "ctx": args.ctx,
               "chunks": len(parts), "threads": threads, "isa": sk.get_isa(), "kv_dtype": args.kv_dtype,
               "candidates": dict(rows)}
        with open(args.json, "w") as fh:
            json.dump(doc, fh, indent=1)
    return 0
