"""Command line: ``python -m minnet demo [--plot PATH]``."""

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
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import main as demo

        return demo(plot=args.plot)
    return 2


if __name__ == "__main__":
    sys.exit(main())
