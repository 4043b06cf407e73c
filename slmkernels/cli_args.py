"""Checked command-line values: each bad value is one line naming the flag and what it allows,
exit status 2, before anything is loaded or printed (OneLineParser.error)."""

from __future__ import annotations

import argparse
import math
import os
import sys


class OneLineParser(argparse.ArgumentParser):
    """argparse, but an error is one line on stderr (no usage block) and exit status 2."""

    def error(self, message: str):  # noqa: D102 (argparse's signature)
        self.exit(2, f"{self.prog}: error: {message}\n")


def integer(lo: int | None = None, hi: int | None = None, what: str = ""):
    def parse(s: str) -> int:
        try:
            v = int(s, 10)
        except ValueError:
            v = None
        if v is None or (lo is not None and v < lo) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"must be an integer {_range(lo, hi)}{what}, got {s!r}")
        return v

    return parse


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, what: str = ""):
    def parse(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            v = math.nan
        ok = math.isfinite(v) and (lo is None or (v > lo if lo_open else v >= lo)) and (hi is None or v <= hi)
        if not ok:
            lb = "(" if lo_open else "["
            rng = f"in {lb}{lo}, {hi}]" if lo is not None and hi is not None else (
                f"{'>' if lo_open else '>='} {lo}" if lo is not None else f"<= {hi}")
            raise argparse.ArgumentTypeError(f"must be a finite number {rng}{what}, got {s!r}")
        return v

    return parse


def _range(lo, hi) -> str:
    if lo is not None and hi is not None:
        return f"in {lo}..{hi}" if isinstance(lo, int) else f"in [{lo}, {hi}]"
    if lo is not None:
        return f">= {lo}"
    return f"<= {hi}" if hi is not None else ""


def max_threads() -> int:
    return os.cpu_count() or 1


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, metavar="GGUF", help="path to a .gguf file")
    p.add_argument("--threads", type=integer(1, max_threads()), default=None,
                   help=f"kernel threads, 1..{max_threads()} (default: physical cores)")
    p.add_argument("--context", type=integer(1, 1 << 20), default=None,
                   help="KV cache size in tokens (default: min(file, 4096))")
    p.add_argument("--kv-dtype", default="f16", choices=["f32", "f16", "q8_0", "q4_0"])
    p.add_argument("--kv-block-tokens", type=integer(1, 4096), default=256,
                   help="tokens per KV cache block (default 256; at most the context rounded up to 16)")


def add_sampling_args(p: argparse.ArgumentParser, max_tokens: int) -> None:
    p.add_argument("--max-tokens", type=integer(0, 1 << 20), default=max_tokens,
                   help=f"most tokens to generate (default {max_tokens})")
    p.add_argument("--temperature", type=number(0, 100), default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-k", type=integer(0), default=0, help="0 = off")
    p.add_argument("--top-p", type=number(0, 1, lo_open=True), default=1.0, help="1 = off")
    p.add_argument("--min-p", type=number(0, 1), default=0.0, help="0 = off")
    p.add_argument("--typical-p", type=number(0, 1, lo_open=True), default=1.0, help="1 = off")
    p.add_argument("--repeat-penalty", type=number(0, 100, lo_open=True), default=1.0, help="1 = off")
    p.add_argument("--presence-penalty", type=number(-2, 2), default=0.0)
    p.add_argument("--frequency-penalty", type=number(-2, 2), default=0.0)
    p.add_argument("--seed", type=integer(0, 2**63 - 1, " (omit it for a random seed)"), default=None)
    p.add_argument("--stop", action="append", default=None, metavar="TEXT",
                   help="stop before this text (repeatable); it is never printed")


def sampling_kwargs(args: argparse.Namespace) -> dict:
    return dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, min_p=args.min_p,
                typical_p=args.typical_p, repetition_penalty=args.repeat_penalty,
                presence_penalty=args.presence_penalty, frequency_penalty=args.frequency_penalty, seed=args.seed)


def load_model(args: argparse.Namespace, prog: str, **kw):
    """Threads and the model, or one line and exit status 2 (1 for a file that cannot be read)."""
    import slmkernels as sk

    from .model.gguf_reader import GGUFError
    from .model.runtime import Model

    if args.threads is not None:
        sk.set_num_threads(args.threads)
    try:
        return Model.from_gguf(args.model, context=args.context, kv_dtype=args.kv_dtype,
                               kv_block_tokens=args.kv_block_tokens, **kw)
    except FileNotFoundError:
        fail(prog, f"argument --model: no such file: {args.model}")
    except (OSError, GGUFError) as e:
        print(f"{prog}: cannot load {args.model}: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    except ValueError as e:  # e.g. --context the file cannot serve
        fail(prog, f"argument --context: {e}")


def fail(prog: str, message: str):
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(2)
