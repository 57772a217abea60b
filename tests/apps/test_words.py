"""The word-level language model application (`rnnkit words`) on a tiny slice of Shakespeare."""
import json

import numpy as np
import pytest
from app_helpers import assert_resume_is_bit_identical
from gradcheck import numeric_grad

from rnnkit.apps import words
from rnnkit.cli import main
from rnnkit.data import bundled_text
from rnnkit.losses import softmax_cross_entropy
from rnnkit.models import LanguageModel
from rnnkit.train import read_metrics

SMALL = ["--embed-dim", "24", "--hidden-size", "24", "--batch-size", "8", "--seq-len", "12",
         "--lr", "0.01", "--no-progress"]


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    path = tmp_path_factory.mktemp("words") / "text.txt"
    path.write_text(bundled_text()[:60_000], "utf-8")
    return path


@pytest.fixture(scope="module")
def run(text, tmp_path_factory):
    """One tiny run shared by the prediction and error tests."""
    run = tmp_path_factory.mktemp("words") / "run"
    assert main(["words", "train", "--data", str(text), "--run-dir", str(run), "--max-steps",
                 "120", "--val-every", "30", *SMALL]) == 0
    return run


def test_training_lowers_the_loss_and_validation_perplexity(run, capsys):
    rows = read_metrics(run / "metrics.jsonl")
    losses = [r["loss"] for r in rows if r["kind"] == "train"]
    vals = [r["val_loss"] for r in rows if r["kind"] == "validation"]
    vocab = json.loads((run / "vocab.json").read_text())["tokens"]
    assert np.mean(losses[-3:]) < losses[0] - 0.8
    assert len(vals) == 4 and vals[-1] < vals[0]
    assert main(["words", "evaluate", str(run)]) == 0
    result = json.loads((run / "eval.json").read_text())
    for split in ("validation", "test"):
        assert 1 < result[split]["perplexity"] < len(vocab) / 3
        assert result[split]["perplexity"] == pytest.approx(np.exp(result[split]["nats_per_word"]))


def test_vocabulary_comes_from_the_training_split_only():
    cfg = words.WordsConfig(min_freq=1, val_fraction=0.25, test_fraction=0.25)
    parts = words.split_tokens("a b a c , d d e . f e g".split(), cfg)
    assert parts == {"train": ["a", "b", "a", "c", ",", "d"], "validation": ["d", "e", "."],
                     "test": ["f", "e", "g"]}
    vocab = words.build_vocab(parts["train"], cfg)
    assert vocab.tokens == ["<pad>", "<unk>", "a", ",", "b", "c", "d"]
    assert list(vocab.encode(parts["test"], add_specials=False)) == [1, 1, 1]
    cfg2 = words.WordsConfig(min_freq=2, val_fraction=0.25, test_fraction=0.25)
    assert words.build_vocab(parts["train"], cfg2).tokens == ["<pad>", "<unk>", "a"]


def test_split_nll_carries_the_state_exactly_and_counts_the_positions_it_says():
    rng = np.random.default_rng(0)
    model = LanguageModel(13, 5, 6, tie_weights=False, dtype=np.float64, seed=1)
    ids = rng.integers(0, 13, 50)
    total, count = words.split_nll(model, ids, rows=1, seq_len=7)     # 49 targets, 7 chunks
    logits, _, _ = model.forward(ids[None, :-1], grad=False)
    whole = softmax_cross_entropy(logits, ids[None, 1:], reduction="sum")[0]
    assert count == 49 and total == pytest.approx(whole, rel=1e-12)
    _, count3 = words.split_nll(model, ids, rows=3, seq_len=5)
    positions = words.counted_positions(len(ids), 3)
    assert count3 == len(positions) == 48 and positions[0] == 1 and positions[-1] == 48


def test_tied_app_model_gradients_by_finite_differences_on_a_carried_chunk():
    """A truncated-BPTT chunk as the trainer runs it: the state carried in from the previous
    chunk is an input (no gradient flows into it); the tied matrix's gradient is checked at
    every entry."""
    cfg = words.WordsConfig(embed_dim=4, hidden_size=4, tie_weights=True)
    vocab = words.build_vocab("the cat sat on the mat . the dog sat on the cat .".split(), cfg)
    model = LanguageModel(len(vocab), 4, 4, tie_weights=True, dtype=np.float64, seed=3)
    rng = np.random.default_rng(2)
    ids = rng.integers(1, len(vocab), (2, 9))
    _, carried, _ = model.forward(ids[:, :4], grad=False)
    x, y = ids[:, 4:8], ids[:, 5:9]

    def loss():
        return softmax_cross_entropy(model.forward(x, carried, grad=False)[0], y)[0]

    model.zero_grad()
    logits, _, cache = model.forward(x, carried)
    model.backward(softmax_cross_entropy(logits, y)[1], cache)
    E = model.params["embed.E"]
    np.testing.assert_allclose(model.grads["embed.E"], numeric_grad(loss, E), rtol=1e-6,
                               atol=1e-9)


def test_predict_prints_the_top_k_next_words_with_their_probabilities(run, capsys):
    assert main(["words", "predict", str(run), "The king is", "--top-k", "5"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("The king is -> ") and line.count(" | ") == 4 and "\n" not in line
    [result] = words.predict(run, ["The king is"], top_k=5)
    probs = [w["probability"] for w in result["next"]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) < 1
    assert all(w["word"] not in ("<pad>", "<unk>") for w in result["next"])
    _, _, _, vocab, model = words.load_run(run)
    p = words.next_word_probabilities(model, vocab.encode("the king is", add_specials=False))
    assert p.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(probs, np.sort(np.delete(p, [0, vocab.unk_id]))[::-1][:5])
    assert [w["word"] for w in result["next"]] == [
        vocab.tokens[i] for i in np.argsort(-np.where(np.arange(len(p)) < 2, -1, p))[:5]]


def test_predict_names_the_unknown_words_and_can_show_unk(run):
    [r] = words.predict(run, ["The zqxv king"], top_k=3, show_unk=True)
    assert r["unknown"] == ["zqxv"] and "read as <unk>: zqxv" in r["text"]
    assert len(r["next"]) == 3


@pytest.mark.parametrize("argv, message", [
    (["predict", "{run}", ""], "input line 1: expected a non-empty line"),
    (["predict", "{run}", "zqxv qwpz"], "all of whose words are unknown"),
    (["predict", "{run}", "the", "--top-k", "0"], "--top-k: expected an integer >= 1"),
    (["predict", "{norun}", "the king"], "RUN: expected a run folder"),
    (["predict", "{novocab}", "the king"], "without vocab.json"),
    (["evaluate", "{novocab}"], "without vocab.json"),
    (["train", "--data", "{missing}", "--run-dir", "{new}"], "--data: expected a UTF-8 text file"),
    (["train", "--data", "{text}", "--run-dir", "{new}", "--batch-size", "400", "--seq-len",
      "64"], "expected a training part of at least"),
    (["train", "--data", "{text}", "--run-dir", "{new}", "--embed-dim", "8", "--batch-size",
      "8", "--seq-len", "12"],
     "embed_dim: expected hidden_size = 256 with tie_weights"),
])
def test_bad_input_is_one_line_on_stderr_and_exit_status_2(run, text, tmp_path, capsys,
                                                           argv, message):
    novocab = tmp_path / "novocab"
    novocab.mkdir()
    (novocab / "config.json").write_text((run / "config.json").read_text())
    paths = {"run": run, "norun": tmp_path / "nope", "novocab": novocab, "text": text,
             "missing": tmp_path / "missing.txt", "new": tmp_path / "new"}
    assert main(["words"] + [a.format(**paths) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("rnnkit words ") and message in err


def test_resume_is_bit_identical(text, tmp_path):
    def train_args(run_dir):
        return ["words", "train", "--data", str(text), "--run-dir", str(run_dir),
                "--val-every", "4", *SMALL]
    assert_resume_is_bit_identical("words", train_args, tmp_path, stop=4, total=9)
