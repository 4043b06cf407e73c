"""The ``slmkernels`` command: ``slmkernels info`` prints what this machine runs;
``slmkernels bench`` validates and times the kernels against the machine's limits and peers;
``slmkernels generate --model PATH "prompt"`` runs a GGUF model and streams its text;
``slmkernels chat --model PATH`` talks to it in the terminal; ``slmkernels serve --model PATH``
answers OpenAI-style HTTP requests."""

from __future__ import annotations

import argparse
import sys


def _cmd_info(args: argparse.Namespace) -> int:
    import slmkernels as sk

    info = sk.cpu_info()
    print(f"slmkernels {sk.__version__}")
    print(f"arch:           {info['arch']}")
    print(f"features:       {' '.join(info['features']) or '(none)'}")
    print(f"isa in use:     {info['isa']}")
    print(f"supported isas: {', '.join(info['supported_isas'])}")
    print(f"threads:        {info['num_threads']} (physical cores: {info['physical_cores']})")
    if args.kernels:
        _print_kernels(sk.kernels(), info["isa"])
    return 0


def _print_kernels(kernels: list, isa: str) -> None:
    """Every kernel of the registry (listed by op, format, then ISA rung), '*' on the one that runs
    for its op and format under the ISA in use."""
    print(f"kernels ({len(kernels)}; * = runs under {isa}):")
    print(f"    {'op':<11} {'format':<7} {'isa':<13} {'tile':<7} {'min M':<6} name")
    for k in kernels:
        tile = f"{k['tile'][0]}x{k['tile'][1]}" if k["tile"] else "-"
        mark = "*" if k["active"] else " "
        print(f"  {mark} {k['op']:<11} {k['format'] or '-':<7} {k['isa']:<13} {tile:<7} {k['min_m'] or '-':<6} {k['name']}")


def main(argv: list[str] | None = None) -> int:
    """Runs a command; Ctrl-C ends it with one line (exit status 130), a closed pipe (`| head`)
    quietly (141, as a process killed by SIGPIPE)."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("\nslmkernels: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout's reader went away: point stdout at /dev/null so the interpreter's final
        # flush does not raise again
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _main(argv: list[str] | None = None) -> int:
    from slmkernels.bench.cli import add_parser as add_bench_parser
    from slmkernels.cli_args import OneLineParser
    from slmkernels.eval.cli import add_parser as add_eval_parser
    from slmkernels.model.generate_cli import add_parser as add_generate_parser
    from slmkernels.server import add_parser as add_serve_parser

    parser = OneLineParser(prog="slmkernels", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="CPU features, the ISA in use, and the kernels it runs")
    p_info.add_argument("--kernels", action="store_true",
                        help="list every kernel of the registry and mark the one that runs for each operation")
    p_info.set_defaults(func=_cmd_info)
    # every subcommand reports a bad value in one line (OneLineParser, inherited from `parser`)
    add_bench_parser(sub)
    add_generate_parser(sub)
    add_serve_parser(sub)
    add_eval_parser(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
