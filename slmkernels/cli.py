"""The ``slmkernels`` command: ``slmkernels info`` prints what this machine runs;
``slmkernels bench`` validates and times the kernels against the machine's limits and peers;
``slmkernels generate --model PATH "prompt"`` runs a GGUF model and streams its text."""

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
        for op, name in sorted(sk.kernel_names().items()):
            print(f"  {op:<20} {name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from slmkernels.bench.cli import add_parser as add_bench_parser
    from slmkernels.model.generate_cli import add_parser as add_generate_parser

    parser = argparse.ArgumentParser(prog="slmkernels", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="CPU features, the ISA in use, and the kernels it runs")
    p_info.add_argument("--kernels", action="store_true", help="list the kernel chosen for each operation")
    p_info.set_defaults(func=_cmd_info)
    add_bench_parser(sub)
    add_generate_parser(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
