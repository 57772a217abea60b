"""Command line. Dispatch only: each command maps flags onto a config dataclass and calls an app.

    rnnkit demo                        train a character LSTM on bundled Shakespeare, then sample
    rnnkit train-char [--flags]        the same with every setting exposed (--help lists them)
    rnnkit resume RUN_DIR [--max-steps N | --epochs E]
    rnnkit sample RUN_DIR [--length N] [--temperature T] [--prime TEXT]
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

from rnnkit.apps import char_lm
from rnnkit.errors import RnnkitError
from rnnkit.train import TrainConfig


def _add_flags(parser: argparse.ArgumentParser, instance) -> list[str]:
    """One --flag per dataclass field, default from `instance`; returns the field names."""
    names = []
    for f in dataclasses.fields(instance):
        default = getattr(instance, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, default=default,
                                action=argparse.BooleanOptionalAction)
        else:
            parser.add_argument(flag, dest=f.name, type=type(default), default=default,
                                help=f"(default: {default!r})")
        names.append(f.name)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rnnkit", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, run_dir in (("demo", "runs/demo"), ("train-char", "runs/char")):
        p = sub.add_parser(name, help="train a character-level language model, then sample")
        p.add_argument("--run-dir", default=run_dir, help=f"(default: {run_dir})")
        app_fields = _add_flags(p, char_lm.CharLMConfig())
        train_fields = _add_flags(p, char_lm.default_train_config())
        p.set_defaults(app_fields=app_fields, train_fields=train_fields)
    p = sub.add_parser("resume", help="continue a run from its latest checkpoint")
    p.add_argument("run_dir")
    p.add_argument("--max-steps", type=int, help="train until this many batches in all")
    p.add_argument("--epochs", type=float, help="train until this many epochs in all")
    p = sub.add_parser("sample", help="generate text from a trained run")
    p.add_argument("run_dir")
    p.add_argument("--length", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--prime")
    p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.command in ("demo", "train-char"):
            cfg = char_lm.CharLMConfig(**{k: getattr(args, k) for k in args.app_fields})
            tcfg = TrainConfig(**{k: getattr(args, k) for k in args.train_fields})
            char_lm.train(cfg, tcfg, args.run_dir)
        elif args.command == "resume":
            overrides = {k: v for k, v in (("max_steps", args.max_steps),
                                           ("epochs", args.epochs)) if v is not None}
            char_lm.resume(args.run_dir, **overrides)
        elif args.command == "sample":
            print(char_lm.sample(args.run_dir, length=args.length, temperature=args.temperature,
                                 prime=args.prime, seed=args.seed))
    except RnnkitError as e:
        print(f"rnnkit {args.command}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
