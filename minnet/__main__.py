"""Command line: ``python -m minnet demo [--plot PATH]`` and ``python -m minnet check FILE``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minnet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo_parser = commands.add_parser(
        "demo",
        help="reproduce the tutorial's gradient checks and diagnose them, then train a small net",
    )
    demo_parser.add_argument(
        "--plot",
        metavar="PATH",
        help="also write a PNG of the decision boundary and the loss curves (needs matplotlib)",
    )
    check_parser = commands.add_parser(
        "check",
        help="gradient-check every Layer subclass defined in a Python file (exit 1 on failure)",
        description="Builds each Layer subclass defined in FILE (from the file's CHECK_EXAMPLES "
        "dict, {LayerClass: lambda: (layer, x)}, or with no arguments on a random input), "
        "checks it alone, prints one line per layer and the full report of each that does not "
        "pass.",
    )
    check_parser.add_argument("file", help="a Python file defining minnet Layer subclasses")
    check_parser.add_argument("--fast", action="store_true", help="one direction per tensor")
    check_parser.add_argument("--epsilon", type=float, default=None, help="the step (adaptive)")
    check_parser.add_argument("--threshold", type=float, default=1e-6, help="default 1e-6")
    check_parser.add_argument(
        "--seed", type=int, default=0, help="seed of the inputs and of the check (default 0)"
    )
    args = parser.parse_args(argv)
    if args.command == "check":
        from .testing import main_check

        options = dict(
            fast=args.fast, epsilon=args.epsilon, threshold=args.threshold, seed=args.seed
        )
        return main_check(args.file, **options)
    if args.command == "demo":
        from .teaching.demo import main as demo

        return demo(plot=args.plot)
    return 2


if __name__ == "__main__":
    sys.exit(main())
