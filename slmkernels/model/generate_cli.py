"""`slmkernels generate --model PATH [--chat] "prompt"`: streams text, then prints tokens/s."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="run a GGUF model and stream its text")
    p.add_argument("prompt", help="the prompt (with --chat: the user message)")
    p.add_argument("--model", required=True, help="path to a .gguf file (llama, qwen2, granite families)")
    p.add_argument("--chat", action="store_true", help="apply the file's chat template to the prompt")
    p.add_argument("--threads", type=int, default=None, help="kernel threads (default: physical cores)")
    p.add_argument("--max-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--repeat-penalty", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--context", type=int, default=None, help="KV cache size in tokens (default: min(file, 4096))")
    p.add_argument("--kv-dtype", default="f16", choices=["f32", "f16", "q8_0", "q4_0"])
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import slmkernels as sk

    from .gguf_reader import GGUFError
    from .runtime import GenerationStats, Model

    if args.threads is not None:
        sk.set_num_threads(args.threads)
    try:
        model = Model.from_gguf(args.model, context=args.context, kv_dtype=args.kv_dtype)
    except (OSError, GGUFError) as e:
        print(f"slmkernels generate: cannot load {args.model}: {e}", file=sys.stderr)
        return 1
    stats = GenerationStats()
    kw = dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
              repetition_penalty=args.repeat_penalty, seed=args.seed, stats=stats)
    if args.chat:
        tokens = model.chat([{"role": "user", "content": args.prompt}], args.max_tokens, **kw)
    else:
        tokens = model.generate(args.prompt, args.max_tokens, **kw)
    for t in tokens:
        sys.stdout.write(t.text)
        sys.stdout.flush()
    sys.stdout.write("\n")
    print(f"prefill: {stats.prompt_tokens} tokens, {stats.prefill_tokens_per_s:.1f} tok/s; "
          f"decode: {stats.generated_tokens} tokens, {stats.decode_tokens_per_s:.1f} tok/s "
          f"({sk.get_isa()}, {sk.get_num_threads()} threads)", file=sys.stderr)
    return 0
