"""Command line: dispatch only. Flags come from each application's settings dataclasses
(rnnkit.apps.common.add_flags); the work is done by the application modules (rnnkit.apps)."""
from __future__ import annotations

import argparse
import importlib
import json
import sys

from rnnkit.apps import common, load_apps
from rnnkit.errors import RnnkitError
from rnnkit.train.safety import TrainingInterrupted

DESCRIPTION = """\
Recurrent neural networks (RNN, LSTM, GRU) for the jobs in the notes: train a model on your
data, evaluate it, and use it. Every application has the same verbs:

  rnnkit APP train [--flags]          train into a new run folder (--run-dir)
  rnnkit APP evaluate RUN             score a run on its test data (writes RUN/eval.json)
  rnnkit APP predict RUN [INPUT ...]  one result a line; inputs from arguments, --file or stdin
  rnnkit APP resume RUN               continue a run exactly where it stopped

`rnnkit demo` trains a small character model on Shakespeare and prints generated text.
`rnnkit APP --help` and `rnnkit APP VERB --help` list every setting."""

# packages of the optional extras, to say which extra to install when one is missing
EXTRAS = {"tqdm": "train", "safetensors": "train", "matplotlib": "train", "numba": "fast",
          "onnx": "onnx", "seqeval": "apps", "sacrebleu": "apps", "sklearn": "bench",
          "statsmodels": "bench", "nltk": "apps"}


# tools that are not applications (no train/evaluate/predict): name -> module exposing
# SUMMARY, add_arguments(parser) and run(args, log) -> int exit status. An application's
# module may hold its own TOOLS the same way: extra verbs (`rnnkit speech synth`).
TOOLS: dict[str, str] = {}


class Parser(argparse.ArgumentParser):
    """Bad flags: one line naming the problem and where to look, not the whole usage."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _formatter(prog):
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _add_train(verbs, app, name: str, run_dir: str, help: str):
    p = verbs.add_parser(name, help=help, description=help, formatter_class=_formatter)
    p.add_argument("--run-dir", default=run_dir,
                   help=f"folder for this run's files; must not hold a run yet "
                   f"(default: {run_dir})")
    app_fields = common.add_flags(p.add_argument_group("settings of the application"),
                                  app.Config())
    train_fields = common.add_flags(p.add_argument_group("training"), app.default_train_config(),
                                    common.TRAIN_HELP)
    p.set_defaults(verb="train", app_fields=app_fields, train_fields=train_fields)
    return p


def _add_resume(verbs, name: str = "resume"):
    p = verbs.add_parser(name, help="continue a run from its latest checkpoint, bit-identically",
                         formatter_class=_formatter)
    p.add_argument("run", metavar="RUN", help="the run folder")
    p.add_argument("--max-steps", type=int, help="train until this many batches in all")
    p.add_argument("--epochs", type=float, help="train until this many epochs in all")
    p.set_defaults(verb="resume")
    return p


def _add_predict(verbs, app, name: str | None = None):
    name = name or getattr(app, "PREDICT_VERB", "predict")
    what = "generate text from a trained run" if name == "generate" else \
        "predict with a trained run, one result a line"
    p = verbs.add_parser(name, help=what, description=what, formatter_class=_formatter)
    p.add_argument("run", metavar="RUN", help="the run folder")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="inputs, one per argument (else --file, else standard input)")
    p.add_argument("--file", help="read inputs from this file, one a line ('-' = standard input)")
    p.add_argument("--json", action="store_true", help="write one JSON object a line")
    options = getattr(app, "PredictOptions", None)
    fields = common.add_flags(p, options()) if options else []
    p.set_defaults(verb="predict", verb_name=name, option_fields=fields)
    return p


def _add_evaluate(verbs, app):
    p = verbs.add_parser("evaluate", help="score a trained run; writes RUN/eval.json",
                         formatter_class=_formatter)
    p.add_argument("run", metavar="RUN", help="the run folder")
    options = getattr(app, "EvaluateOptions", None)
    fields = common.add_flags(p, options()) if options else []
    p.set_defaults(verb="evaluate", option_fields=fields)
    return p


def _add_tool(sub, name: str, path: str):
    tool = importlib.import_module(path)
    p = sub.add_parser(name, help=tool.SUMMARY, description=tool.SUMMARY,
                       formatter_class=_formatter)
    tool.add_arguments(p)
    p.set_defaults(verb="", tool=tool)
    return p


def build_parser(apps: dict) -> argparse.ArgumentParser:
    parser = Parser(prog="rnnkit", description=DESCRIPTION,
                                     formatter_class=_formatter)
    sub = parser.add_subparsers(dest="app", required=True, metavar="APP")
    text = apps["text"]
    demo = _add_train(sub, text, "demo", "runs/demo",
                      "train a character LSTM on the bundled Shakespeare, then print a sample")
    demo.set_defaults(app="text", reuse_folder=True)
    for name, app in apps.items():
        summary = getattr(app, "SUMMARY", None) or (app.__doc__ or name).strip().splitlines()[0]
        p = sub.add_parser(name, help=summary, description=summary, formatter_class=_formatter)
        verbs = p.add_subparsers(dest="verb", required=True, metavar="VERB")
        _add_train(verbs, app, "train", f"runs/{name}", "train a new model into a run folder")
        _add_evaluate(verbs, app)
        _add_predict(verbs, app)
        _add_resume(verbs)
        for verb, path in getattr(app, "TOOLS", {}).items():    # the app's own extra verbs
            _add_tool(verbs, verb, path).set_defaults(verb=verb)
        p.set_defaults(app=name)
    for name, path in TOOLS.items():
        _add_tool(sub, name, path).set_defaults(app=name)
    # the character model's old names, kept working for scripts that use them
    alias = "(old name of `rnnkit text %s`)"
    _add_train(sub, text, "train-char", "runs/char", alias % "train").set_defaults(app="text")
    _add_predict(sub, text, "sample").set_defaults(app="text")
    sub.choices["sample"].add_argument("--prime", help="text to start from " + alias % "generate")
    _add_resume(sub, "resume").set_defaults(app="text")
    sub.choices["resume"].help = alias % "resume"
    return parser


def _hide_aliases(parser: argparse.ArgumentParser) -> None:
    """Leave the old names out of the listing (they still work)."""
    for action in parser._subparsers._group_actions:
        action._choices_actions = [a for a in action._choices_actions
                                   if a.dest not in ("train-char", "sample", "resume")]


def run(args, apps: dict, log=print) -> int:
    if getattr(args, "tool", None) is not None:
        return args.tool.run(args, log=log)
    app = apps[args.app]
    if args.verb == "train":
        cfg = common.from_flags(app.Config, args, args.app_fields)
        tcfg = common.from_flags(type(app.default_train_config()), args, args.train_fields)
        extra = {"reuse_folder": True} if getattr(args, "reuse_folder", False) else {}
        common.check_choices(cfg)               # every setting checked before any work
        tcfg.check()
        app.train(cfg, tcfg, args.run_dir, log=log, **extra)
    elif args.verb == "resume":
        overrides = {k: v for k, v in (("max_steps", args.max_steps),
                                       ("epochs", args.epochs)) if v is not None}
        app.resume(args.run, log=log, **overrides)
    elif args.verb == "evaluate":
        options = {k: getattr(args, k) for k in args.option_fields}
        result = app.evaluate(args.run, log=log, **options)
        log(json.dumps(result, indent=1))
    elif args.verb == "predict":
        options = {k: getattr(args, k) for k in args.option_fields}
        if getattr(args, "prime", None) is not None:      # `rnnkit sample --prime TEXT`
            args.inputs = [args.prime] + args.inputs
        inputs = common.read_inputs(args.inputs, args.file)
        if not inputs and getattr(app, "PREDICT_NEEDS_INPUT", True):
            raise RnnkitError("INPUT: expected at least one input (as arguments, --file FILE, "
                              "or lines on standard input), got none")
        for result in app.predict(args.run, inputs, **options):
            print(json.dumps(result) if args.json else result["text"], flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    apps = load_apps()
    parser = build_parser(apps)
    _hide_aliases(parser)
    args = parser.parse_args(argv)
    where = f"rnnkit {args.app} {getattr(args, 'verb_name', args.verb)}".rstrip()
    try:
        status = run(args, apps)
    except TrainingInterrupted as e:            # a checkpoint is saved: `resume` continues
        print(f"{where}: {e}", file=sys.stderr)
        return 130
    except RnnkitError as e:
        print(f"{where}: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as e:
        extra = EXTRAS.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"{where}: needs the optional package {e.name!r}: pip install 'rnnkit[{extra}]'",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
