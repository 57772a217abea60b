"""Applications of the notes, one module each: data -> model -> training -> evaluation.

``rnnkit <app> <verb>`` dispatches to the module registered in ``APPS``; adding an
application is one line there. Each module exposes the same small interface:

    SUMMARY: str                 one line for ``rnnkit --help``
    Config                       dataclass of the app's settings; each field made with
                                 ``common.setting(default, help, choices)`` so that its flag
                                 describes itself (``--cell`` offers
                                 common.CELL_CHOICES)
    default_train_config()       -> rnnkit.train.TrainConfig with the app's defaults
    train(cfg, tcfg, run_dir, log=print) -> dict          a new run folder (see apps.common)
    resume(run_dir, log=print, **overrides) -> dict       continue bit-identically; overrides
                                                          are max_steps / epochs
    evaluate(run_dir, log=print, **options) -> dict       metrics; also written to eval.json
    predict(run_dir, inputs: list[str], **options) -> list[dict]
                                 one JSON-ready dict per input line, with "text": the line a
                                 person reads (the CLI prints it, or the dict with --json)

and optionally:

    PREDICT_VERB = "generate"    the verb's name (default "predict")
    PredictOptions, EvaluateOptions
                                 dataclasses (fields made with ``common.setting``) whose
                                 fields become flags of that verb and keyword options
    PREDICT_NEEDS_INPUT = False  predict may run with no input line (text generation)
    TOOLS = {"verb": "module"}   extra verbs, each a module as cli.TOOLS describes
                                 (SUMMARY, add_arguments(parser), run(args, log))

Errors a user can cause raise rnnkit.errors.RnnkitError; the CLI prints them as one line.
"""
from __future__ import annotations

import importlib

# name on the command line -> module
APPS = {
    "text": "rnnkit.apps.char_lm",
    "sentiment": "rnnkit.apps.sentiment",
    "mnist": "rnnkit.apps.mnist",
    "forecast": "rnnkit.apps.forecast",
    "ner": "rnnkit.apps.ner",
    "caption": "rnnkit.apps.caption",
    "translate": "rnnkit.apps.translate",
    "words": "rnnkit.apps.words",
    "speech": "rnnkit.apps.speech",
}


def load_apps() -> dict:
    """The registered applications whose modules are present: name -> module."""
    found = {}
    for name, path in APPS.items():
        try:
            found[name] = importlib.import_module(path)
        except ModuleNotFoundError as e:
            if e.name != path:              # the module is there but needs a missing package
                raise
    return found
