"""Command line: `rnnkit demo [--flag value ...]`. Dispatch only; the work is in rnnkit.apps."""
from __future__ import annotations

import argparse
import dataclasses
import sys

from rnnkit.apps import char_demo


def _add_config_flags(parser: argparse.ArgumentParser, config_cls) -> None:
    for field in dataclasses.fields(config_cls):
        parser.add_argument("--" + field.name.replace("_", "-"), dest=field.name,
                            type=type(field.default), default=field.default,
                            help=f"(default: {field.default})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rnnkit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="train a character LSTM on bundled Shakespeare, then sample")
    _add_config_flags(demo, char_demo.DemoConfig)
    args = vars(parser.parse_args(argv))
    command = args.pop("command")
    if command == "demo":
        char_demo.run(char_demo.DemoConfig(**args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
