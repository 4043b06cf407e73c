"""The ``slmkernels`` command: ``slmkernels info`` prints what this machine runs."""

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
    parser = argparse.ArgumentParser(prog="slmkernels", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="CPU features, the ISA in use, and the kernels it runs")
    p_info.add_argument("--kernels", action="store_true", help="list the kernel chosen for each operation")
    p_info.set_defaults(func=_cmd_info)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
