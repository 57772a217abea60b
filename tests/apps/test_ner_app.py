"""The NER application on a tiny CoNLL-formatted corpus written to tmp_path: training lowers
the loss, evaluate/predict give entity-level results, resume continues bit-identically, and
bad data files give one clear RnnkitError naming the file and line."""
import json

import numpy as np
import pytest

from rnnkit.apps import ner
from rnnkit.data.conll import (Encoder, TagSet, TaggingDataset, build_char_vocab,
                               build_word_vocab, casing, normalise_word, read_conll)
from rnnkit.errors import RnnkitError
from rnnkit.train import TrainConfig
from rnnkit.train.callbacks import read_metrics
from rnnkit.train.checkpoint import latest_checkpoint, load_checkpoint

PEOPLE = ["Peter", "Anna", "Jones", "Maria", "Smith"]
PLACES = ["Paris", "Berlin", "Madrid", "London"]
ORGS = ["EU", "UN", "NATO"]


def _corpus(n: int, seed: int) -> str:
    """Sentences like 'Peter visited Paris for the EU on abjcdh .' with their IOB2 tags."""
    rng = np.random.default_rng(seed)
    lines = ["-DOCSTART- -X- -X- O", ""]
    for _ in range(n):
        words = [(rng.choice(PEOPLE), "B-PER")]
        if rng.random() < 0.5:
            words.append((rng.choice(PEOPLE), "I-PER"))
        words += [("visited", "O"), (rng.choice(PLACES), "B-LOC"), ("for", "O"),
                  ("the", "O"), (rng.choice(ORGS), "B-ORG"), ("on", "O"),
                  ("".join(rng.choice(list("abcdefghij"), 6)), "O"), (".", "O")]    # rare
        lines += [f"{w} NNP B-NP {t}" for w, t in words] + [""]
    return "\n".join(lines) + "\n"


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "conll"
    folder.mkdir()
    for split, (n, seed) in {"train": (40, 0), "valid": (10, 1), "test": (10, 2)}.items():
        (folder / f"{split}.txt").write_text(_corpus(n, seed), "utf-8")
    return folder


def _configs(data, **train):
    cfg = ner.NERConfig(data=str(data), word_dim=8, char_dim=6, char_hidden=5, case_dim=3,
                        hidden_size=8, batch_size=8, lr=0.01, eval_batch_size=16)
    tcfg = TrainConfig(**dict(dict(epochs=4, val_every=0, log_every=1, progress=False,
                                   checkpoint_every=5), **train))
    return cfg, tcfg


def test_read_conll_sentences_documents_and_errors(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n"
                    "-DOCSTART- -X- -X- O\nPeter NNP B-NP B-PER\n", "utf-8")
    sentences = read_conll(path)
    assert [s.words for s in sentences] == [["EU", "rejects"], ["Peter"]]
    assert [s.tags for s in sentences] == [["B-ORG", "O"], ["B-PER"]]
    path.write_text("EU NNP B-NP B-ORG\nrejects\n", "utf-8")
    with pytest.raises(RnnkitError, match=r"a\.txt, line 2: expected a token line"):
        read_conll(path)
    path.write_text("EU NNP B-NP ORG\n", "utf-8")
    with pytest.raises(RnnkitError, match=r"line 1: expected an IOB2 tag .* got 'ORG'"):
        read_conll(path)
    with pytest.raises(RnnkitError, match="no such file"):
        read_conll(tmp_path / "missing.txt")
    path.write_text("\n-DOCSTART- -X- -X- O\n\n", "utf-8")
    with pytest.raises(RnnkitError, match="at least one sentence"):
        read_conll(path)


def test_vocabularies_come_from_training_words(tmp_path):
    (tmp_path / "train.txt").write_text("Peter NNP B-NP B-PER\nPETER NNP B-NP B-PER\n"
                                        "1996-08-22 CD I-NP O\n\nrare NN I-NP O\n", "utf-8")
    sentences = read_conll(tmp_path / "train.txt")
    words, freq = build_word_vocab(sentences, min_freq=2)
    assert words.tokens == ["<pad>", "<unk>", "peter"] and freq.tolist() == [0, 0, 2]
    assert normalise_word("1996-08-22") == "0000-00-00"
    encoder = Encoder(words, build_char_vocab(sentences))
    inputs, lengths = encoder.batch([["Peter", "visits", "Peter", "Zürich"], ["PETER"]])
    assert lengths.tolist() == [4, 1]
    assert inputs.words.tolist() == [[2, 1, 2, 1], [2, 0, 0, 0]]
    # distinct spellings read once; unseen characters (Z, ü) map to the unknown character
    assert inputs.chars.shape[0] == 4 and inputs.char_index.tolist() == [[0, 1, 0, 2],
                                                                          [3, 0, 0, 0]]
    unk = encoder.chars.index["\ufffd"]
    assert inputs.chars[2, 0] == unk and inputs.chars[2, 1] == unk
    assert [casing(w) for w in ("Peter", "PETER", "rare", "1996", "1996-08-22")] == \
        [5, 4, 3, 1, 2]
    assert TagSet.from_sentences(sentences).tags == ["B-PER", "O"]


def test_training_data_source_resumes_mid_epoch_with_the_same_unk_draws(data):
    sentences = read_conll(data / "train.txt")
    words, freq = build_word_vocab(sentences)
    ds = TaggingDataset(sentences, Encoder(words, build_char_vocab(sentences)),
                        TagSet.from_sentences(sentences), 8, seed=3, unk_replace=0.5,
                        word_freq=freq)
    full = list(ds.batches(1))
    tail = list(ds.batches(1, 2))
    assert len(full) == 5 and len(tail) == 3
    for a, b in zip(full[2:], tail):
        np.testing.assert_array_equal(a.inputs.words, b.inputs.words)
        np.testing.assert_array_equal(a.targets, b.targets)
    replaced = sum(int((b.inputs.words == words.unk_id).sum()) for b in full)
    assert replaced > 0                           # some words seen once read as <unk>
    assert sum(int(b.lengths.sum()) for b in full) == sum(len(s.words) for s in sentences)


def test_ner_train_evaluate_predict(data, tmp_path):
    cfg, tcfg = _configs(data, epochs=15)
    run = tmp_path / "run"
    summary = ner.train(cfg, tcfg, run, log=lambda *a: None)
    rows = read_metrics(run / "metrics.jsonl")
    losses = [r["loss"] for r in rows if r["kind"] == "train"]
    assert losses[-1] < 0.5 * losses[0]
    assert summary["best_val_f1"] > 0.8
    result = ner.evaluate(run, "test", log=lambda *a: None)
    assert json.loads((run / "eval.json").read_text())["f1"] == result["f1"]
    assert result["f1"] > 0.8 and set(result["per_type"]) == {"PER", "LOC", "ORG"}
    printed = []
    out = ner.predict(run, ["Anna Smith visited Berlin for the UN on xyz .", "Zoltan visited Rome"],
                      log=printed.append)
    assert out[0]["words"][:2] == ["Anna", "Smith"] and len(out[1]["tags"]) == 3
    assert out[0]["tags"][0] == "B-PER" and out[0]["tags"][2:5] == ["O", "B-LOC", "O"]
    assert {"type": "LOC", "text": "Berlin", "start": 3, "end": 3} in out[0]["entities"]
    assert printed[0].startswith("[PER Anna") and " visited [LOC Berlin] for" in printed[0]
    with pytest.raises(RnnkitError, match=r"sentences\[1\]: expected a sentence of at least"):
        ner.predict(run, ["Anna visited Paris", "   "])


def test_ner_resume_is_bit_identical(data, tmp_path):
    cfg, tcfg = _configs(data, epochs=2, checkpoint_every=3)
    quiet = lambda *a: None
    ner.train(cfg, tcfg, tmp_path / "straight", log=quiet)
    _, cut = _configs(data, epochs=2, checkpoint_every=3, max_steps=6)
    ner.train(cfg, cut, tmp_path / "cut", log=quiet)
    ner.resume(tmp_path / "cut", log=quiet, max_steps=0)
    a, b = (load_checkpoint(latest_checkpoint(tmp_path / run / "checkpoints"))
            for run in ("straight", "cut"))
    assert a["trainer"]["step"] == b["trainer"]["step"] == 10
    for k in a["model_params"]:
        np.testing.assert_array_equal(a["model_params"][k], b["model_params"][k])
    for k in a["optim_state"]["slots"]:
        np.testing.assert_array_equal(a["optim_state"]["slots"][k], b["optim_state"]["slots"][k])


def test_ner_bad_inputs_name_the_problem(data, tmp_path):
    cfg, tcfg = _configs(tmp_path / "nowhere")
    with pytest.raises(RnnkitError, match=r"nowhere/train\.txt.*no such file"):
        ner.train(cfg, tcfg, tmp_path / "run")
    cfg, tcfg = _configs(data)
    cfg.output = "hmm"
    with pytest.raises(RnnkitError, match=r"output: expected one of \('softmax', 'crf'\)"):
        ner.train(cfg, tcfg, tmp_path / "run")
    with pytest.raises(RnnkitError, match="config.json"):
        ner.evaluate(tmp_path / "no_run")


def test_ner_from_the_command_line(data, tmp_path, capsys):
    """rnnkit ner train / evaluate / predict through the CLI's dispatcher; a missing data
    folder is one line on stderr and exit 2."""
    from rnnkit.cli import main
    run = tmp_path / "cli_run"
    small = ["--word-dim", "8", "--char-dim", "6", "--char-hidden", "5", "--case-dim", "3",
             "--hidden-size", "8", "--batch-size", "8", "--lr", "0.01", "--epochs", "15",
             "--no-progress"]
    assert main(["ner", "train", "--data", str(data), "--run-dir", str(run), *small]) == 0
    assert main(["ner", "evaluate", str(run), "--split", "valid"]) == 0
    assert json.loads((run / "eval.json").read_text())["split"] == "valid"
    capsys.readouterr()
    assert main(["ner", "predict", str(run), "Anna Smith visited Berlin for the UN on xyz ."]) == 0
    out = capsys.readouterr().out
    assert out.startswith("[PER Anna") and " visited [LOC Berlin] for" in out
    assert main(["ner", "train", "--data", str(tmp_path / "nowhere"), "--run-dir",
                 str(tmp_path / "r2"), *small]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("rnnkit ner train:") and "nowhere" in err[0]


def test_ner_without_seqeval_names_the_extra_before_training(data, tmp_path, capsys,
                                                              monkeypatch):
    import sys
    from rnnkit.cli import main
    monkeypatch.setitem(sys.modules, "seqeval", None)          # as if it were not installed
    assert main(["ner", "train", "--data", str(data), "--run-dir", str(tmp_path / "r"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["rnnkit ner train: needs the optional package 'seqeval': "
                   "pip install 'rnnkit[apps]'"]
    assert not (tmp_path / "r").exists()
