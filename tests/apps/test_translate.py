"""The translation application on a tiny synthetic language pair: tokens, batches, learning,
decoders through the app (beam 1 is greedy), attention plots, resume, bad input."""
import json
import shutil

import numpy as np
import pytest

from app_helpers import assert_resume_is_bit_identical
from rnnkit.apps import translate
from rnnkit.cli import main
from rnnkit.data.parallel import ParallelDataset, detokenize, read_pairs, tokens
from rnnkit.errors import RnnkitError
from rnnkit.train import read_metrics

# "the red cat sees the dog ." -> "le chat rouge voit le chien ." (adjectives move: attention)
NOUNS = {"cat": "chat", "dog": "chien", "bird": "oiseau", "horse": "cheval", "king": "roi"}
ADJS = {"red": "rouge", "big": "grand", "old": "vieux", "black": "noir"}
VERBS = {"sees": "voit", "eats": "mange", "follows": "suit", "loves": "aime"}


def write_tsv(path, n=240, seed=0):
    rng = np.random.default_rng(seed)
    pick = (lambda d: list(d)[rng.integers(len(d))])
    lines = ["en\tfr"]
    for _ in range(n):
        a, n1, v, n2 = pick(ADJS), pick(NOUNS), pick(VERBS), pick(NOUNS)
        lines.append(f"The {a} {n1} {v} the {n2}.\tLe {NOUNS[n1]} {ADJS[a]} {VERBS[v]} le "
                     f"{NOUNS[n2]}.")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def train_args(data, run, *extra):
    return ["translate", "train", "--data", str(data), "--run-dir", str(run), "--embed-dim",
            "16", "--hidden-size", "16", "--dec-hidden-size", "32", "--batch-size", "16",
            "--lr", "0.02", "--test-size", "20", "--val-size", "20", "--min-freq", "1",
            "--no-progress", *extra]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One trained run, shared by the tests that only read it."""
    tmp = tmp_path_factory.mktemp("translate")
    data, run = write_tsv(tmp / "pairs.tsv"), tmp / "run"
    assert main(train_args(data, run, "--epochs", "12")) == 0
    return run


def test_tokens_split_elisions_and_detokenize_joins_them_back():
    text = "L'abîme, au-dessus des eaux: (il dit) qu'il soit!"
    words = tokens(text)
    assert words[:6] == ["l'", "abîme", ",", "au", "-", "dessus"]
    assert "qu'" in words and "il" in words
    assert detokenize(words) == text.lower()
    assert tokens("God's people.") == ["god'", "s", "people", "."]
    assert detokenize(tokens("God's people.")) == "god's people."
    assert detokenize(tokens("¿Dónde está Abel, tu hermano?")) == "¿dónde está abel, tu hermano?"


def test_parallel_batches_shift_the_target_and_resume_mid_epoch():
    src = [np.array([5, 6, 7]), np.array([8]), np.array([9, 10])]
    tgt = [np.array([11, 12]), np.array([13, 14, 15]), np.array([16])]
    data = ParallelDataset(src, tgt, 2, bos=2, eos=3, seed=4)
    batches = list(data.batches(1))
    assert sum(len(b.targets) for b in batches) == 3
    for b in batches:
        (s, tin), (s_len, t_len) = b.inputs, b.lengths
        for row in range(len(s)):
            k = next(i for i, x in enumerate(src) if len(x) == s_len[row]
                     and np.array_equal(x, s[row, :s_len[row]]))
            want = tgt[k]
            assert t_len[row] == len(want) + 1
            np.testing.assert_array_equal(tin[row, :t_len[row]], np.r_[2, want])
            np.testing.assert_array_equal(b.targets[row, :t_len[row]], np.r_[want, 3])
    tail = list(data.batches(1, start=1))
    np.testing.assert_array_equal(tail[0].targets, batches[1].targets)


def test_trains_evaluates_and_translates(run, capsys, tmp_path):
    rows = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "validation"]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] - 1.0          # the loss falls
    assert max(r["val_bleu"] for r in rows) > 50
    for name in ("config.json", "vocab_source.json", "vocab_target.json", "split.json",
                 "best.safetensors", "loss_curve.png"):
        assert (run / name).is_file(), name
    src, ref, _ = read_pairs(str(run / "test.tsv"), "source", "target")
    assert len(src) == 20 and len(read_pairs(str(run / "val.tsv"), "source", "target")[0]) == 20
    split = json.loads((run / "split.json").read_text())
    assert len(split["train"]) == 200 and not set(split["train"]) & set(split["test"])

    capsys.readouterr()
    assert main(["translate", "evaluate", str(run), "--beam", "3"]) == 0
    ev = json.loads((run / "eval.json").read_text())
    assert ev["pairs"] == 20 and ev["split"] == "test" and ev["beam_width"] == 3
    for method in ("greedy", "beam"):
        assert 50 < ev[method]["bleu"] <= 100 + 1e-9 and 50 < ev[method]["chrf"] <= 100 + 1e-9
        assert ev[method]["sentences_per_s"] > 0
    lines = (run / "translations_test.tsv").read_text().splitlines()
    assert lines[0].split("\t") == ["source", "reference", "greedy", "beam"] and len(lines) == 21

    plot = tmp_path / "att.png"
    capsys.readouterr()
    assert main(["translate", "predict", str(run), "The big dog loves the cat.", "--json",
                 "--attention-plot", str(plot)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["translation"] == "le chien grand aime le chat."
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_decoders_return_well_formed_output_and_beam_1_is_greedy(run):
    _, cfg, source, target, model = translate.load_run(run)
    tgt_vocab = target.vocab
    sentences = ["The old king eats the bird.", "The red horse follows the dog.", "The cat."]
    ids = [source.encode(s) for s in sentences]
    results = {b: translate.decode(model, ids, tgt_vocab, beam=b) for b in (0, 1, 4)}
    for b, out in results.items():
        for (toks, att), source in zip(out, ids):
            assert all(0 <= t < len(tgt_vocab) and t not in (tgt_vocab.eos_id, tgt_vocab.bos_id,
                                                             tgt_vocab.pad_id) for t in toks)
            assert att.shape == (len(toks) + 1, len(source))          # + the end token's
            np.testing.assert_allclose(att.sum(axis=1), 1.0, rtol=1e-5)
    assert [t for t, _ in results[1]] == [t for t, _ in results[0]]
    greedy = translate.predict(run, sentences, beam=0)
    beam1 = translate.predict(run, sentences, beam=1)
    assert [g["translation"] for g in greedy] == [b["translation"] for b in beam1]
    ev = translate.evaluate(run, log=lambda *a: None, beam=1)
    assert ev["beam"]["bleu"] == ev["greedy"]["bleu"]


def test_unknown_words_are_read_as_unk_and_listed(run):
    out = translate.predict(run, ["The purple cat sees the dog."], beam=2)[0]
    assert out["unknown_words"] == ["purple"] and out["translation"]


def test_subword_units_learn_translate_and_join_back(tmp_path, capsys):
    data, run = write_tsv(tmp_path / "pairs.tsv"), tmp_path / "run"
    assert main(train_args(data, run, "--epochs", "12", "--units", "bpe", "--subword-vocab",
                           "40")) == 0
    rows = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "validation"]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] - 1.0 and rows[-1]["val_bleu"] > 50
    _, _, source, target, _ = translate.load_run(run)
    # the vocabularies hold the pieces the training pairs were cut into, nothing else
    assert 4 < len(target.vocab) - 4 <= 40 and "\u2581chien" not in target.vocab
    assert target.split("Le chien.") == ["\u2581le", "\u2581ch", "ie", "n", "\u2581."]
    out = translate.predict(run, ["The big dog loves the cat.", "The cat."], beam=3)
    assert out[0]["translation"] == "le chien grand aime le chat."
    assert all("\u2581" not in o["translation"] and o["tokens"] for o in out)
    assert translate.evaluate(run, log=lambda *a: None, beam=1)["greedy"]["bleu"] > 50

    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "subwords_target.model").unlink()
    _fails(["translate", "predict", str(broken), "The cat."], capsys, "subwords_target.model")
    (broken / "subwords_target.model").write_bytes(b"not a model")
    _fails(["translate", "predict", str(broken), "The cat."], capsys, "subwords_target.model",
           "SentencePiece")
    _fails(train_args(data, tmp_path / "r", "--units", "bpe", "--subword-vocab", "3"), capsys,
           "subword_vocab", "[8, max_vocab = 20000]")
    _fails(train_args(data, tmp_path / "r", "--units", "bpe", "--subword-vocab", "30000"),
           capsys, "subword_vocab", "30000")
    with pytest.raises(RnnkitError, match="units"):
        translate.train(translate.TranslateConfig(data=str(data), units="chars"),
                        translate.default_train_config(), tmp_path / "r")


def test_label_smoothing_trains_on_the_smoothed_loss_and_validates_on_the_plain_one(tmp_path):
    data, run = write_tsv(tmp_path / "pairs.tsv", n=80), tmp_path / "run"
    assert main(train_args(data, run, "--label-smoothing", "0.2", "--max-steps", "1",
                           "--log-every", "1")) == 0
    rows = read_metrics(run / "metrics.jsonl")
    logged = next(r["loss"] for r in rows if r["kind"] == "train")
    # the same first batch through freshly made weights (the same seed) scores both ways
    cfg = translate.TranslateConfig(**json.loads((run / "config.json").read_text())["app"])
    fresh = translate._build(cfg, translate.default_train_config(), run, lambda *a: None)
    batch = next(iter(fresh.train_data.batches(0)))
    logits = fresh.model.forward(batch.inputs, None, batch.lengths, grad=False)[0]
    smooth = translate.loss_fn(logits, batch.targets, batch.lengths, label_smoothing=0.2)[0]
    plain = translate.loss_fn(logits, batch.targets, batch.lengths)[0]
    # near-uniform first logits: the two differ by little, but far more than rounding
    assert logged == pytest.approx(smooth, rel=1e-12) and abs(smooth - plain) > 1e-3
    model = translate.load_run(run, best=False)[-1]
    val = next(r["val_loss"] for r in rows if r["kind"] == "validation")
    assert val == pytest.approx(translate.mean_loss(model, fresh.val_data), rel=1e-9)
    with pytest.raises(RnnkitError, match="label_smoothing"):
        translate.train(translate.TranslateConfig(data=str(data), label_smoothing=1.0),
                        translate.default_train_config(), tmp_path / "r")


def test_longer_training_pairs_leave_the_held_out_pairs_unchanged(tmp_path):
    data = write_tsv(tmp_path / "pairs.tsv", n=120)
    with open(data, "a", encoding="utf-8") as f:        # 10 words: beyond --max-words 6
        f.writelines(f"The old {n} sees the big {n} and the dog.\tLe vieux {fr} voit le grand "
                     f"{fr} et le chien.\n" for n, fr in NOUNS.items())
    splits = {}
    for longest in ("0", "10"):
        run = tmp_path / f"run{longest}"
        assert main(train_args(data, run, "--max-words", "6", "--train-max-words", longest,
                               "--max-steps", "1")) == 0
        splits[longest] = json.loads((run / "split.json").read_text())
    long_lines = set(range(122, 127))
    for part in ("test", "val", "pairs"):
        assert splits["0"][part] == splits["10"][part]
    assert set(splits["10"]["train"]) == set(splits["0"]["train"]) | long_lines
    assert not long_lines & set(splits["0"]["train"] + splits["10"]["test"])
    assert splits["10"]["max_source_tokens"] == 11 > splits["0"]["max_source_tokens"]


def test_resume_continues_bit_identically(tmp_path):
    data = write_tsv(tmp_path / "pairs.tsv", n=120)
    assert_resume_is_bit_identical(
        "translate", lambda run: train_args(data, run, "--val-size", "10", "--test-size", "10"),
        tmp_path, stop=4, total=9)


def _fails(argv, capsys, *needles):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def test_bad_input_is_one_clear_line(run, tmp_path, capsys):
    _fails(train_args(tmp_path / "none.tsv", tmp_path / "r1"), capsys, "--data", "no such file")
    one = tmp_path / "one.tsv"
    one.write_text("en\nhello\n", encoding="utf-8")
    _fails(train_args(one, tmp_path / "r2"), capsys, "two columns")
    empty = write_tsv(tmp_path / "empty.tsv", n=30)
    empty.write_text(empty.read_text(encoding="utf-8") + "The cat.\t  \n", encoding="utf-8")
    _fails(train_args(empty, tmp_path / "r3"), capsys, "empty.tsv:32", "non-empty fr sentence")
    ragged = tmp_path / "ragged.tsv"
    ragged.write_text("en\tfr\na\tb\nc\n", encoding="utf-8")
    _fails(train_args(ragged, tmp_path / "r4"), capsys, "ragged.tsv:3", "2 tab-separated")
    _fails(train_args(write_tsv(tmp_path / "p.tsv", 30), tmp_path / "r5", "--source", "de"),
           capsys, "source", "'de'")

    long = " ".join(["the cat"] * 20) + "."
    _fails(["translate", "predict", str(run), long], capsys, "input 1", "at most 7")
    _fails(["translate", "predict", str(run), "Ich bin ein Berliner"], capsys,
           "at least one word seen in training")
    _fails(["translate", "predict", str(run), "The cat.", "¿¿"], capsys, "input 2")
    (tmp_path / "in.txt").write_text("The cat.\n\n", encoding="utf-8")
    _fails(["translate", "predict", str(run), "--file", str(tmp_path / "in.txt")], capsys,
           "empty line")
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "vocab_target.json").unlink()
    _fails(["translate", "predict", str(broken), "The cat."], capsys, "vocab_target.json")
    _fails(["translate", "evaluate", str(tmp_path / "nowhere")], capsys, "RUN", "no such folder")
    with pytest.raises(RnnkitError, match="beam"):
        translate.predict(run, ["The cat."], beam=-1)
