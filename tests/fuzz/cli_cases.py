"""Bad values for every flag, positional and input of every command (issue 29): each app's
train / evaluate / predict / resume, `demo`, the old names (train-char, sample, resume) and
the tools in rnnkit.cli.TOOLS, run in-process through rnnkit.cli.main and classified:

    clear       non-zero exit, exactly one line on stderr, no traceback, naming what was
                wrong as the user wrote it (the flag, RUN, the input, or the file)
    wrong name  one line, but it names none of those
    unclear     non-zero exit but several lines (or none) on stderr
    traceback   an exception escaped main()
    accepted    the command reached its work with the bad value (training: Trainer.fit is
                replaced by a stand-in that records this), or exited 0
    damaged     one clear line, but the run folder read was changed (resume) or a new run
                folder was left behind (train), so the corrected command is then refused

Which values are bad is declared here, not read from the apps (else nothing could fail):
every numeric flag refuses NaN, infinity, -1 and text; 0 and 10**12 are bad unless the flag
is listed in ZERO_OK / HUGE_OK; an empty string is bad unless it is the flag's default.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

from rnnkit import cli
from rnnkit.apps import load_apps
from rnnkit.train import Trainer

from tiny_runs import INPUT, SMALL, make_data, make_runs

NOT_UTF8 = os.fsdecode(b"\xff\xfe-not-utf8")      # what a shell passes for undecodable bytes

# 0 has a meaning (off, greedy, all, no limit) for these (NAME, or APP.NAME in one app)
ZERO_OK = {"max_steps", "bptt", "clip_norm", "clip_value", "val_every", "patience",
           "checkpoint_every", "checkpoint_minutes", "seed", "split_seed", "pair_seed",
           "sample_length", "length", "dropout", "embed_dropout", "weight_decay",
           "unk_replace", "train_limit", "alpha", "min_freq", "top_k", "beam",
           "keep_checkpoints", "forecast.val_size", "ner.case_dim", "words.max_vocab",
           "explode_factor", "vanish_ratio", "speech.test_fraction",
           "translate.train_max_words", "label_smoothing"}
# valid command lines of the tools that need more than their name
TOOL_BASES = {"trace": ["trace", "--x", "1", "2", "3"],
              "speech synth": ["speech", "synth", "--out", "NEW", "--count", "1"]}
# 10**12 is merely large for these (step counts, caps, seeds), not an allocation
HUGE_OK = {"max_steps", "epochs", "val_every", "log_every", "checkpoint_every",
           "checkpoint_minutes", "patience", "seed", "split_seed", "pair_seed",
           "keep_checkpoints", "max_bad_steps", "max_vocab", "train_limit", "max_words",
           "train_max_words",
           "lr", "temperature", "clip_norm", "clip_value", "bptt", "top_k", "explode_factor",
           # absurd but a run the trainer survives: non-finite steps are skipped, then it stops
           "weight_decay",
           # a threshold: no word kept still leaves the tagger its characters
           "ner.min_freq"}
# apps whose predict reads unknown words as <unk> by design
UNKNOWN_WORDS_OK = {"ner", "translate", "words"}
PATH_FLAGS = {"data", "text", "file", "attention_plot", "run_dir"}
SECONDS = 20            # a case still running after this counts as accepted


class Reached(BaseException):
    """Training started: the bad value got through every check."""


@dataclass
class Case:
    command: str            # e.g. "sentiment train", "demo", "sample"
    target: str             # the flag or positional fuzzed, as the user writes it
    value: str
    argv: list
    app: str | None
    verb: str
    run: Path | None = None        # the run folder the command reads (checked unchanged)
    new_run: Path | None = None    # the run folder a train command would create
    cwd: Path = Path(".")          # the command runs here (a scratch folder)

    @property
    def id(self) -> str:
        return f"{self.command} {self.target}={self.value!r}"


@dataclass
class Fixtures:
    folder: Path
    data: dict
    runs: dict
    foreign: dict           # name -> path of a file or folder that is not valid input


def make_fixtures(folder: Path) -> Fixtures:
    apps = load_apps()
    data = make_data(folder / "data")
    runs = make_runs(folder, data, apps)
    bad = folder / "bad"
    bad.mkdir(exist_ok=True)
    (bad / "empty.txt").write_bytes(b"")
    (bad / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (bad / "not_utf8.txt").write_bytes(b"\xff\xfe\x00bad bytes\n")
    (bad / "blank_line.txt").write_text(INPUT["text"] + "\n\n", "utf-8")
    (bad / "folder").mkdir(exist_ok=True)
    foreign = {"missing": bad / "no-such-file", "folder": bad / "folder",
               "empty": bad / "empty.txt", "png": bad / "image.png",
               "not-utf8 bytes": bad / "not_utf8.txt", "blank line": bad / "blank_line.txt",
               "existing run": runs["text"], "missing parent": bad / "no-such-dir" / "a.png"}
    return Fixtures(folder, data, runs, foreign)


# --- the commands and their valid base command lines -------------------------------------------
def _commands(parser: argparse.ArgumentParser):
    """(command name, app, verb, sub-parser) for every command the parser knows."""
    sub = parser._subparsers._group_actions[0]
    for name, p in sub.choices.items():
        if p._subparsers is not None:
            for verb, vp in p._subparsers._group_actions[0].choices.items():
                yield f"{name} {verb}", name, vp.get_default("verb"), vp
        else:
            yield name, p.get_default("app"), p.get_default("verb"), p


def _base(fx: Fixtures, command: str, app: str, verb: str, new_run: Path):
    """A valid command line for `command` (None for a tool: no known valid base)."""
    head = command.split()
    if verb == "train":
        data_flag = "--text" if app == "text" else "--data"
        return head + [data_flag, str(fx.data[app]), "--run-dir", str(new_run), *SMALL[app],
                       "--max-steps", "2", "--no-progress"]
    if verb in ("evaluate", "resume"):
        return head + [str(fx.runs[app])]
    if verb == "predict":
        return head + [str(fx.runs[app]), INPUT[app]]
    return None


def _listed(names: set, app: str | None, name: str) -> bool:
    return name in names or f"{app}.{name}" in names


def _values_for(action: argparse.Action, app: str | None, tool: bool) -> list:
    """(value, is it bad) for one option: the bad ones; for tools only those that are bad
    whatever the flag means (text for numbers, NaN, infinity, undecodable bytes)."""
    name, kind = action.dest, action.type
    if isinstance(action, argparse.BooleanOptionalAction):
        return ["=maybe"]
    if action.choices:
        return ["unknown", "", NOT_UTF8]
    if kind is int:
        values = ["x", "", "2.5", "nan", NOT_UTF8]
        if not tool:
            values += ["-1"] + (["0"] if not _listed(ZERO_OK, app, name) else []) + \
                ([str(10 ** 12)] if not _listed(HUGE_OK, app, name) else [])
        return values
    if kind is float:
        values = ["x", "", "nan", "inf", "-inf", NOT_UTF8]
        if not tool:
            values += ["-1"] + (["0"] if not _listed(ZERO_OK, app, name) else []) + \
                (["1e12"] if not _listed(HUGE_OK, app, name) else [])
        return values
    if name == "run_dir":       # a missing or empty folder is fine: it is made
        return ["", "path:png", "path:existing run"]
    if tool and name == "out":     # a new folder to write (rnnkit speech synth --out)
        return ["", "path:png"]
    if name == "tensorboard":       # a folder to write event files into ('' = off)
        return ["path:png", "path:not-utf8 bytes"]
    if name == "attention_plot" or tool and name in ("json", "png"):
        # a file to write: a folder, or in a missing folder (any bytes make a POSIX name)
        return ["path:folder", "path:missing parent"]
    if name in PATH_FLAGS or tool and (action.metavar or "").upper() in ("PATH", "FILE"):
        return ["path:missing", "path:folder", "path:not-utf8 name"] + \
            ([] if name == "attention_plot" else
             ["path:empty", "path:png", "path:not-utf8 bytes"]) + \
            (["path:blank line"] if name == "file" else []) + \
            ([""] if action.default not in ("", None) else [])
    if action.nargs == 0:
        return []           # a flag without a value (--json)
    values = ["zzq-unknown", NOT_UTF8]
    return values + ([""] if action.default != "" else [])


def _resolve(fx: Fixtures, value: str) -> str:
    if value.startswith("path:"):
        what = value[5:]
        return str(fx.foreign[what]) if what != "not-utf8 name" else \
            str(fx.folder / "bad" / NOT_UTF8)
    return value


def _with_flag(argv: list, flag: str, value: str) -> list:
    """argv with `flag` set to `value` (replacing a value already there)."""
    out = list(argv)
    if value.startswith("="):
        return out + [flag + value]
    if flag in out:
        i = out.index(flag)
        out[i + 1] = value
        return out
    return out + [flag, value]


def cases(fx: Fixtures) -> list:
    apps = load_apps()
    parser = cli.build_parser(apps)
    out = []
    cwd = fx.folder / "cwd"
    cwd.mkdir(exist_ok=True)
    for n, (command, app, verb, p) in enumerate(_commands(parser)):
        # a tool, or an application's own extra verb (rnnkit speech synth)
        tool = app not in apps or verb not in ("train", "evaluate", "predict", "resume")
        new_run = fx.folder / "new" / f"{n}"
        base = None if tool else _base(fx, command, app, verb, new_run)
        reads = None if tool or verb == "train" else fx.runs[app]
        if command in TOOL_BASES:
            base = [str(new_run) if a == "NEW" else a for a in TOOL_BASES[command]]
        elif tool:
            base = command.split() + [
                str(fx.runs["text"]) for a in p._actions
                if not a.option_strings and a.nargs in (None, 1)]
        for action in p._actions:
            if action.dest == "help":
                continue
            if action.option_strings:
                flag = action.option_strings[0]
                for value in _values_for(action, app, tool):
                    if value == "path:existing run" and p.get_default("reuse_folder"):
                        continue        # the demo trains again into its folder by design
                    argv = _with_flag(base, flag, _resolve(fx, value))
                    out.append(Case(command, flag, value, argv, app, verb, reads, new_run,
                                    cwd))
            elif tool:              # a tool's positional (rnnkit data get NAME): bad names
                for value in ("zzq-unknown", "", NOT_UTF8):
                    argv = command.split() + [value]
                    out.append(Case(command, (action.metavar or action.dest).upper(), value,
                                    argv, app, verb, None, new_run, cwd))
            elif action.dest == "run":
                for value in ("path:missing", "path:folder", "path:png", "", "path:not-utf8 name",
                              "other app's run"):
                    other = fx.runs["sentiment" if app != "sentiment" else "text"]
                    argv = list(base)
                    argv[argv.index(str(fx.runs[app]))] = \
                        str(other) if value == "other app's run" else _resolve(fx, value)
                    out.append(Case(command, "RUN", value, argv, app, verb, None, new_run, cwd))
            elif action.dest == "inputs":
                values = ["", "   ", NOT_UTF8, "zzqx qqzv"] + \
                    (["abc", "nan"] if app in ("forecast", "mnist", "caption") else [])
                for value in values:
                    if value == "zzqx qqzv" and app in UNKNOWN_WORDS_OK:
                        continue
                    argv = list(base)
                    argv[argv.index(INPUT[app])] = value
                    out.append(Case(command, "INPUT", value, argv, app, verb, fx.runs[app],
                                    cwd=cwd))
    return out


# --- running one case --------------------------------------------------------------------------
def _timeout(signum, frame):
    raise Reached()


def _snapshot(run: Path) -> dict:
    return {p.relative_to(run): p.read_bytes() for p in run.rglob("*")
            if p.is_file() and p.name not in ("eval.json",) and p.suffix != ".png"}


def outcome(case: Case) -> tuple[str, str]:
    """-> (clear | wrong name | unclear | traceback | accepted | damaged, detail)."""
    def reached(self, *a, **k):
        raise Reached()
    before = _snapshot(case.run) if case.run is not None and case.verb == "resume" else None
    err, out = io.StringIO(), io.StringIO()
    old = signal.signal(signal.SIGALRM, _timeout)
    signal.setitimer(signal.ITIMER_REAL, SECONDS)
    try:
        with mock.patch.object(Trainer, "fit", reached), contextlib.redirect_stderr(err), \
                contextlib.redirect_stdout(out), mock.patch("sys.stdin", io.StringIO("")), \
                contextlib.chdir(case.cwd):     # where an empty path would write
            try:
                code = cli.main(case.argv)
            except SystemExit as e:
                code = e.code
    except Reached:
        return "accepted", "reached the work"
    except Exception as e:          # noqa: BLE001 (this is what the harness measures)
        return "traceback", f"{type(e).__name__}: {e}"[:300]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        if before is not None:
            damage = _snapshot(case.run) != before
            _restore(case.run, before)
    lines = err.getvalue().strip().splitlines()
    if code == 0:
        return "accepted", "exit 0"
    if len(lines) != 1 or "Traceback" in err.getvalue():
        return "unclear", err.getvalue()[-300:]
    if before is not None and damage:
        return "damaged", f"{lines[0]} (and the run folder was changed)"
    if case.verb == "train" and case.new_run is not None and case.new_run.exists() and \
            any(case.new_run.iterdir()):
        shutil.rmtree(case.new_run)
        return "damaged", f"{lines[0]} (and a run folder was left behind)"
    if not _names_target(case, lines[0]):
        return "wrong name", lines[0]
    return "clear", lines[0]


def _names_target(case: Case, line: str) -> bool:
    """Does the error name what was wrong: the flag (as written or as its setting's name),
    the positional, the input, or a path it was given?"""
    flag = case.target.lstrip("-")
    words = {"RUN": ("RUN", "run_dir"), "INPUT": ("input", "INPUT", "prime", "sentences",
                                                  "standard input")}.get(case.target, ())
    if any(w in line for w in (case.target, flag, flag.replace("-", "_"), *words)):
        return True
    value = _resolve_value(case)
    return bool(value) and len(value) > 3 and value in line


def _resolve_value(case: Case) -> str:
    if not case.target.startswith("-"):             # a positional: RUN, INPUT, a tool's NAME
        return case.value if not case.value.startswith("path:") else ""
    i = case.argv.index(case.target) if case.target in case.argv else -1
    return case.argv[i + 1] if 0 <= i < len(case.argv) - 1 else ""


def _restore(run: Path, files: dict) -> None:
    for p in list(run.rglob("*")):
        if p.is_file() and p.relative_to(run) not in files and p.suffix != ".png" and \
                p.name != "eval.json":
            p.unlink()
    for rel, data in files.items():
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_bytes(data)


def cleanup(case: Case) -> None:
    if case.new_run is not None and case.new_run.exists():
        shutil.rmtree(case.new_run)
