"""Command line: dispatch only. Flags come from each application's settings dataclasses
(rnnkit.apps.common.add_flags); the work is done by the application modules (rnnkit.apps)."""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import json
import os
import sys
from pathlib import Path

from rnnkit.apps import common, load_apps
from rnnkit.errors import RnnkitError
from rnnkit.train import distributed
from rnnkit.train.safety import TrainingInterrupted

DESCRIPTION = """\
Recurrent neural networks (RNN, LSTM, GRU) for the jobs in the notes: train a model on your
data, evaluate it, and use it. Every application has the same verbs:

  rnnkit APP train [--flags]          train into a new run folder (--run-dir)
  rnnkit APP evaluate RUN             score a run on its test data (writes RUN/eval.json)
  rnnkit APP predict RUN [INPUT ...]  one result a line; inputs from arguments, --file or stdin
  rnnkit APP resume RUN               continue a run exactly where it stopped

`rnnkit demo` trains a small character model on Shakespeare and prints generated text.
`rnnkit data get all` fetches every application's data set into a cache, once.
`rnnkit trace` prints the notes' step tables and gradient flow; `rnnkit memory` runs the
long-memory tasks. `rnnkit APP --help` and `rnnkit APP VERB --help` list every setting."""

# packages of the optional extras, to say which extra to install when one is missing
EXTRAS = {"tqdm": "train", "safetensors": "train", "matplotlib": "train", "numba": "fast",
          "onnx": "onnx", "seqeval": "apps", "sacrebleu": "apps", "sklearn": "bench",
          "statsmodels": "bench", "nltk": "apps", "tensorboardX": "tensorboard",
          "jiwer": "apps", "rapidfuzz": "apps", "mpi4py": "mpi"}


# tools that are not applications (no train/evaluate/predict): name -> module exposing
# SUMMARY, add_arguments(parser) and run(args, log) -> int exit status. An application's
# module may hold its own TOOLS the same way: extra verbs (`rnnkit speech synth`).
TOOLS: dict[str, str] = {
    "data": "rnnkit.data.command",
    "memory": "rnnkit.apps.memory",
    "trace": "rnnkit.diagnostics.tool",
}


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
    _add_distributed(p)
    p.set_defaults(verb="train", app_fields=app_fields, train_fields=train_fields)
    return p


def _add_distributed(p) -> None:
    p.add_argument("--distributed", choices=distributed.BACKENDS, default="auto",
                   help="data-parallel backend over the processes of torchrun (torch) or "
                   "mpirun (mpi); auto: from the launcher's variables (default: auto)")


def _join(args, log):
    """The processes of this run (one without a launcher); the first one alone logs."""
    comm = distributed.world() if args.distributed == "auto" else \
        distributed.connect(args.distributed)
    distributed.use(comm)
    return comm, log if comm.rank == 0 else (lambda *a, **k: None)


def _add_resume(verbs, name: str = "resume"):
    p = verbs.add_parser(name, help="continue a run from its latest checkpoint, bit-identically",
                         formatter_class=_formatter)
    p.add_argument("run", metavar="RUN", help="the run folder")
    p.add_argument("--max-steps", type=int, help="train until this many batches in all")
    p.add_argument("--epochs", type=float, help="train until this many epochs in all")
    _add_distributed(p)
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
    p.set_defaults(verb="predict", verb_name=name, option_fields=fields, option_cls=options)
    return p


def _add_evaluate(verbs, app):
    p = verbs.add_parser("evaluate", help="score a trained run; writes RUN/eval.json",
                         formatter_class=_formatter)
    p.add_argument("run", metavar="RUN", help="the run folder")
    options = getattr(app, "EvaluateOptions", None)
    fields = common.add_flags(p, options()) if options else []
    p.set_defaults(verb="evaluate", option_fields=fields, option_cls=options)
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


def _options(args) -> dict:
    """The verb's options as keywords, each checked against its declared range first."""
    if args.option_cls is None:
        return {}
    return vars(common.from_flags(args.option_cls, args, args.option_fields))


def run(args, apps: dict, log=print) -> int:
    if getattr(args, "tool", None) is not None:
        return args.tool.run(args, log=log)
    app = apps[args.app]
    # the optional packages a verb needs, found missing before any work rather than after it
    common.require_packages("safetensors", *(("matplotlib",) if args.verb in ("train", "resume")
                                             else ()))
    if args.verb in ("train", "resume"):
        comm, log = _join(args, log)
    if args.verb == "train" and distributed.restart_count() and \
            (Path(args.run_dir) / "checkpoints" / "latest.json").is_file():
        # torchrun restarted the workers (--max-restarts): the run goes on from its checkpoint
        log(f"restart {distributed.restart_count()}: resuming {args.run_dir}")
        app.resume(args.run_dir, log=log)
    elif args.verb == "train":
        cfg = common.from_flags(app.Config, args, args.app_fields)
        tcfg = common.from_flags(type(app.default_train_config()), args, args.train_fields)
        extra = {"reuse_folder": True} if getattr(args, "reuse_folder", False) else {}
        common.check_choices(cfg)               # every setting checked before any work
        tcfg.check()
        if tcfg.progress:
            common.require_packages("tqdm")
        with common.undone_on_error(args.run_dir):
            app.train(cfg, tcfg, args.run_dir, log=log, **extra)
    elif args.verb == "resume":
        overrides = {k: v for k, v in (("max_steps", args.max_steps),
                                       ("epochs", args.epochs)) if v is not None}
        with _settings_of_run(app, args):
            app.resume(args.run, log=log, **overrides)
    elif args.verb == "evaluate":
        options = _options(args)
        with _settings_of_run(app, args):
            result = app.evaluate(args.run, log=log, **options)
        log(json.dumps(result, indent=1))
    elif args.verb == "predict":
        options = _options(args)
        if getattr(args, "prime", None) is not None:      # `rnnkit sample --prime TEXT`
            args.inputs = common.read_inputs([args.prime], name="--prime") + args.inputs
        inputs = common.read_inputs(args.inputs, args.file)
        if not inputs and getattr(app, "PREDICT_NEEDS_INPUT", True):
            raise RnnkitError("INPUT: expected at least one input (as arguments, --file FILE, "
                              "or lines on standard input), got none")
        with _settings_of_run(app, args):
            results = app.predict(args.run, inputs, **options)
        for result in results:
            print(json.dumps(result) if args.json else result["text"], flush=True)
    return 0


@contextlib.contextmanager
def _settings_of_run(app, args):
    """An error about a setting of the run (not a flag of this command) names the file the
    setting came from: RUN/config.json."""
    own = set(getattr(args, "option_fields", None) or ()) | {"max_steps", "epochs"}
    settings = {f.name for f in dataclasses.fields(app.Config)} - own
    try:
        yield
    except RnnkitError as e:
        field = str(e).split(":", 1)[0]
        if field not in settings:
            raise
        raise RnnkitError(f"{os.path.join(args.run, 'config.json')}: app.{e}") from None


def _missing_package(e: ModuleNotFoundError, where: str) -> int:
    """One line naming the extra that brings a missing optional package (else re-raise)."""
    package = (e.name or "").split(".")[0]
    extra = EXTRAS.get(package)
    if extra is None:
        raise e
    print(f"{where}: needs the optional package {package!r}: pip install 'rnnkit[{extra}]'",
          file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    try:            # an application or tool module may import an optional package
        apps = load_apps()
        parser = build_parser(apps)
    except ModuleNotFoundError as e:
        return _missing_package(e, "rnnkit")
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
        return _missing_package(e, where)
    except KeyboardInterrupt:
        print(f"{where}: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
