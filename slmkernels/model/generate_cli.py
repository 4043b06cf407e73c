"""``slmkernels generate`` (one prompt: an argument, a file or stdin; streamed text or --json) and
``slmkernels chat`` (an interactive conversation in the terminal)."""

from __future__ import annotations

import argparse
import json
import sys

from ..cli_args import add_model_args, add_sampling_args, fail, load_model, sampling_kwargs


def add_parser(sub) -> None:
    p = sub.add_parser("generate", help="run a GGUF model on one prompt and stream its text",
                       description="Prompt from the argument, --file, or standard input ('-' or no argument).")
    p.add_argument("prompt", nargs="?", default=None, help="the prompt (with --chat: the user message); '-' = stdin")
    p.add_argument("--file", metavar="PATH", help="read the prompt from this file")
    p.add_argument("--chat", action="store_true", help="apply the file's chat template to the prompt")
    p.add_argument("--system", metavar="TEXT", help="system message (implies --chat)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object (text, finish_reason, token counts, timings) instead of streaming")
    add_model_args(p)
    add_sampling_args(p, 128)
    p.set_defaults(func=run_generate)

    c = sub.add_parser("chat", help="talk to a GGUF model in the terminal (/reset clears the history, Ctrl-D quits)",
                       description="Interactive chat: replies stream as they are decoded; Ctrl-C stops the current "
                                   "reply, /reset forgets the conversation, /exit or Ctrl-D quits. Each turn reuses "
                                   "the conversation's KV cache, so only the new message is prefilled.")
    c.add_argument("--system", metavar="TEXT", help="system message")
    c.add_argument("--stats", action="store_true", help="after each reply, print tokens and timings")
    add_model_args(c)
    add_sampling_args(c, 512)
    c.set_defaults(func=run_chat)


def _read_prompt(args: argparse.Namespace, prog: str) -> str:
    if args.file is not None and args.prompt not in (None, "-"):
        fail(prog, "give the prompt either as an argument or with --file, not both")
    if args.file is not None:
        try:
            with open(args.file, encoding="utf-8") as f:
                return f.read()
        except (OSError, UnicodeDecodeError) as e:
            fail(prog, f"argument --file: cannot read {args.file}: {e}")
    if args.prompt is None or args.prompt == "-":
        if args.prompt is None and sys.stdin.isatty():
            fail(prog, "no prompt: give it as an argument, with --file, or on standard input")
        try:
            return sys.stdin.read()
        except UnicodeDecodeError as e:
            fail(prog, f"standard input is not UTF-8 text: {e}")
    return args.prompt


def run_generate(args: argparse.Namespace) -> int:
    import slmkernels as sk

    from .generate import GenerationStats

    prog = "slmkernels generate"
    prompt = _read_prompt(args, prog)
    if not prompt.strip():
        fail(prog, "the prompt is empty")
    model = load_model(args, prog)
    stats = GenerationStats()
    kw = dict(sampling_kwargs(args), stats=stats, stop=args.stop)
    try:
        if args.chat or args.system is not None:
            msgs = ([{"role": "system", "content": args.system}] if args.system is not None else [])
            gen = model.chat(msgs + [{"role": "user", "content": prompt}], args.max_tokens, **kw)
        else:
            gen = model.generate(prompt, args.max_tokens, **kw)
    except ValueError as e:  # the prompt does not fit the context, a template refused the messages...
        fail(prog, f"argument --context: {e}" if "context" in str(e) else str(e))
    if args.json:
        for _ in gen:
            pass
        out = dict(text=gen.text, **stats.as_dict(), model=args.model, isa=sk.get_isa(), threads=sk.get_num_threads())
        print(json.dumps(out, ensure_ascii=False))
        return 0
    for t in gen:
        sys.stdout.write(t.text)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()
    print(_stats_line(stats), file=sys.stderr)
    return 0


def _stats_line(stats) -> str:
    import slmkernels as sk

    cached = f" ({stats.cached_tokens} reused)" if stats.cached_tokens else ""
    return (f"[{stats.finish_reason}] prefill: {stats.prompt_tokens} tokens{cached}, "
            f"{stats.prefill_tokens_per_s:.1f} tok/s; decode: {stats.generated_tokens} tokens, "
            f"{stats.decode_tokens_per_s:.1f} tok/s; first token {stats.first_token_seconds * 1e3:.0f} ms "
            f"({sk.get_isa()}, {sk.get_num_threads()} threads)")


def run_chat(args: argparse.Namespace) -> int:
    from .generate import GenerationStats

    prog = "slmkernels chat"
    model = load_model(args, prog)
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    system = [{"role": "system", "content": args.system}] if args.system else []
    history: list[dict] = []
    out = sys.stdout
    out.write(f"slmkernels chat: {args.model} ({model.context} tokens of context). "
              "/reset clears the conversation, /exit or Ctrl-D quits, Ctrl-C stops a reply.\n")
    while True:
        try:
            line = input("> ")
        except EOFError:
            out.write("\n")
            return 0
        except KeyboardInterrupt:  # at the prompt: drop the line, ask again
            out.write("\n")
            continue
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            return 0
        if text == "/reset":
            history.clear()
            out.write("(conversation cleared)\n")
            continue
        history.append({"role": "user", "content": line})
        stats = GenerationStats()
        reply = ""
        gen = None
        try:
            gen = model.chat(system + history, args.max_tokens, stop=args.stop, stats=stats, **sampling_kwargs(args))
            for t in gen:
                reply += t.text
                out.write(t.text)
                out.flush()
        except ValueError as e:  # the conversation no longer fits the context
            history.pop()
            out.write(f"(cannot answer: {e}; /reset starts over)\n")
            continue
        except KeyboardInterrupt:
            # its sequence is parked, so the next turn still reuses the conversation's prefix
            if gen is not None:
                gen.close()
            out.write(" [stopped]")
        out.write("\n")
        if gen is not None and gen.finish_reason in ("length", "context"):
            out.write(f"[{gen.finish_reason}: the reply was cut]\n")
        if args.stats:
            out.write(_stats_line(stats) + "\n")
        out.flush()
        history.append({"role": "assistant", "content": reply})
