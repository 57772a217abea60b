"""The command line over every application, the text app's new verbs and sampling, honest
progress, and one-line errors."""
import json
import time

import numpy as np
import pytest

from rnnkit.apps import char_lm, common, load_apps
from rnnkit.cli import build_parser, main
from rnnkit.data import Batch, bundled_text
from rnnkit.models import LanguageModel


def test_help_lists_every_application_with_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for name, app in load_apps().items():
        assert name in out and app.SUMMARY.split()[0] in out
    assert "train-char" not in out              # the old names work but are not advertised


def test_every_flag_describes_itself():
    parser = build_parser(load_apps())
    seen = 0
    for app in load_apps():
        verbs = parser._subparsers._group_actions[0].choices[app]._subparsers
        for verb, p in verbs._group_actions[0].choices.items():
            for action in p._actions:
                if action.option_strings and action.dest != "help":
                    assert action.help and "(default" != action.help[:8], (app, verb,
                                                                            action.dest)
                    seen += 1
                if action.dest == "cell":
                    assert list(action.choices) == ["rnn", "lstm", "gru", "lnlstm", "lngru"]
    assert seen > 80


def tiny_text(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(bundled_text()[:20_000], "utf-8")
    return path


def text_args(path, run):
    return ["text", "train", "--data", str(path), "--run-dir", str(run), "--hidden-size", "24",
            "--embed-dim", "8", "--batch-size", "8", "--seq-len", "16", "--max-steps", "30",
            "--val-every", "10", "--sample-length", "10", "--no-progress"]


def test_text_train_evaluate_generate(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(text_args(tiny_text(tmp_path), run)) == 0
    capsys.readouterr()
    assert main(["text", "evaluate", str(run)]) == 0
    ev = json.loads((run / "eval.json").read_text())
    assert 0 < ev["val_nats_per_char"] < np.log(60)
    assert ev["val_bits_per_char"] == pytest.approx(ev["val_nats_per_char"] / np.log(2))
    capsys.readouterr()
    assert main(["text", "generate", str(run), "KING", "LORD", "--length", "12", "--top-k",
                 "5", "--json"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["prime"] for o in out] == ["KING", "LORD"]
    assert out[0]["text"].startswith("KING") and len(out[0]["text"]) == 16
    assert main(["text", "generate", str(run), "K\u00e9\u20ac"]) == 2
    err = capsys.readouterr().err
    assert "only characters seen in training" in err and len(err.strip().splitlines()) == 1


def test_top_k_and_nucleus_keep_only_the_likely_tokens():
    z = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    draws = lambda **how: {char_lm.sample_token(z, np.random.default_rng(s), **how)
                           for s in range(300)}
    assert draws(top_k=1) == {0}
    assert draws(top_k=2) == {0, 1}
    assert draws(top_p=0.5) == {0}              # 0.5 alone reaches p
    assert draws(top_p=0.79) == {0, 1}
    assert draws(top_p=0.81) == {0, 1, 2}
    assert draws() == {0, 1, 2, 3}


def test_plain_sampling_is_the_language_models_own():
    model = LanguageModel(7, 4, 8, seed=0)
    a = model.generate([1, 2], 30, temperature=0.8, rng=np.random.default_rng(3))
    b = char_lm.generate(model, [1, 2], 30, np.random.default_rng(3), temperature=0.8)
    assert a == b


class SlowModel:
    def __init__(self, seconds):
        self.seconds, self.zeroed = seconds, False

    def forward(self, x, state=None, lengths=None, **kw):
        time.sleep(self.seconds)
        return np.zeros((len(x), 2), np.float32), None, None

    def backward(self, dout, cache):
        pass

    def zero_grad(self):
        self.zeroed = True


@pytest.mark.parametrize("seconds, said", [(0.3, True), (0.0, False)])
def test_warm_up_says_when_it_compiles(seconds, said):
    lines = []
    model = SlowModel(seconds)
    batch = Batch(inputs=np.zeros((4, 3), np.int64), targets=np.zeros(4, np.int64))
    common.warm_up(model, batch, log=lines.append, delay=0.2)
    assert bool(lines) == said and model.zeroed
    if said:
        assert lines == ["compiling kernels (first run on this machine, ~40 s)..."]


def test_a_missing_optional_package_names_the_extra(tmp_path, capsys, monkeypatch):
    for name in ("tqdm", "tqdm.auto"):
        monkeypatch.setitem(__import__("sys").modules, name, None)
    args = text_args(tiny_text(tmp_path), tmp_path / "run")
    args[-1] = "--progress"
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "pip install 'rnnkit[train]'" in err and len(err.strip().splitlines()) == 1


def test_old_names_still_work(tmp_path, capsys):
    run = tmp_path / "run"
    args = text_args(tiny_text(tmp_path), run)
    assert main(["train-char"] + args[2:]) == 0
    assert main(["resume", str(run), "--max-steps", "35"]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "--length", "5", "--prime", "AB"]) == 0
    assert capsys.readouterr().out.startswith("AB")
    assert json.loads((run / "config.json").read_text())["train"]["max_steps"] == 35
    demo = ["demo"] + args[2:]
    assert main(demo) == 0 and main(demo) == 0          # the demo may run again in its folder
