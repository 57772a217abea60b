"""The speech app: a handful of utterances (synthesised here when espeak-ng is installed, else
the committed fixtures in speech_fixtures/), the CTC loss falling, decoding returning text,
the corpus tools and the command line."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from app_helpers import assert_resume_is_bit_identical

from rnnkit import cli
from rnnkit.apps import speech, speech_corpus
from rnnkit.audio import RATE, read_wav, write_wav
from rnnkit.ctc import ctc_trainer_loss, greedy_decode
from rnnkit.errors import RnnkitError
from rnnkit.optim import make_optimizer

FIXTURES = Path(__file__).resolve().parent / "speech_fixtures"
HAS_ESPEAK = shutil.which("espeak-ng") is not None


def _corpus(tmp_path, source: str) -> Path:
    if source == "fixtures":
        return FIXTURES
    if not HAS_ESPEAK:
        pytest.skip("espeak-ng is not installed (the fixtures case covers this machine)")
    out = tmp_path / "corpus"
    speech_corpus.synthesise(out, 6, seed=3, voices="espeak-ng:en-us,espeak-ng:en-gb",
                             max_words=2, log=lambda *a: None)
    return out


@pytest.mark.parametrize("source, units", [("fixtures", "chars"), ("espeak-ng", "chars"),
                                           ("fixtures", "words")])
def test_ctc_loss_falls_and_decoding_returns_text(tmp_path, source, units):
    cfg = speech.SpeechConfig(hidden_size=32, num_layers=1, dropout=0.0)
    feats, texts = speech.load_corpus(str(_corpus(tmp_path, source)), cfg.n_mels)
    units = speech.Chars() if units == "chars" else speech.Words.of(texts)
    batch = next(speech.SpeechDataset(feats, texts, 6, cfg.stack, shuffle=False,
                                      units=units).batches(0))
    model = speech._model(cfg, units, seed=0)
    optimizer = make_optimizer("adam", model.params, lr=1e-2)
    loss_fn, losses, spoken = ctc_trainer_loss(), [], 0
    # until the loss has fallen and the outputs are past the all-blank phase that follows
    while len(losses) < 100 and not (spoken >= 3 and losses[-1] < 0.5 * losses[0]):
        model.zero_grad()
        out, _, cache = model.forward(batch.inputs, None, batch.lengths, training=True)
        loss, dout = loss_fn(out, batch.targets, batch.lengths)
        model.backward(dout, cache)
        optimizer.step(model.grads)
        losses.append(loss)
        spoken = sum(map(bool, greedy_decode(out, batch.lengths)))
    assert spoken >= 3 and losses[-1] < 0.5 * losses[0]
    known = set(speech.ALPHABET) if isinstance(units, speech.Chars) else \
        {w for t in texts for w in t.split()}
    for beam in (1, 3):
        hyps = speech.transcribe_batch(model, batch.inputs, batch.lengths, beam, (), units)
        assert len(hyps) == 6 and any(hyps)
        assert all(h == " ".join(h.split()) for h in hyps)     # no stray spaces
        assert all(set(h if isinstance(units, speech.Chars) else h.split()) <= known
                   for h in hyps)
    rates = speech.error_rates(texts, texts)
    assert rates == {"wer": 0.0, "cer": 0.0}


def test_command_line_synth_train_evaluate_transcribe(tmp_path, capsys):
    if HAS_ESPEAK:
        assert cli.main(["speech", "synth", "--out", str(tmp_path / "c"), "--count", "8",
                         "--voices", "espeak-ng:en-us*", "--seed", "1"]) == 0
        rows = speech_corpus.read_manifest(tmp_path / "c")
        assert len(rows) == 8 and all(r[2].startswith("espeak-ng:en-us") for r in rows)
        assert all(read_wav(r[0]).size > RATE // 4 for r in rows)
        corpus = tmp_path / "c"
    else:
        corpus = FIXTURES
    run = tmp_path / "run"
    assert cli.main(["speech", "train", "--data", str(corpus), "--run-dir", str(run),
                     "--hidden-size", "8", "--num-layers", "1", "--max-steps", "2",
                     "--val-fraction", "0.2", "--test-fraction", "0.2", "--no-progress"]) == 0
    assert cli.main(["speech", "evaluate", str(run), "--beam", "2"]) == 0
    result = json.loads((run / "eval.json").read_text())
    assert result["utterances"] >= 1 and result["wer"] >= 0 and result["cer"] >= 0
    assert result["real_time_factor"] > 0
    capsys.readouterr()
    wav = str(FIXTURES / "0.wav")
    assert cli.main(["speech", "transcribe", str(run), wav, "--json", "--lexicon",
                     "digits"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["input"] == wav and isinstance(line["transcript"], str)
    assert set(line["transcript"].split()) <= set(speech_corpus.DIGIT_WORDS) | {"oh"}
    assert line["seconds"] == pytest.approx(len(read_wav(wav)) / RATE)


def test_a_lexicon_snaps_misspelt_words():
    digits = speech.lexicon_words("digits")
    assert speech.snap("thr feven ght zro oh", digits) == "three seven eight zero oh"
    assert speech.snap("feven", []) == "feven"
    assert speech.lexicon_words("Yes, no") == ["yes", "no"]
    with pytest.raises(RnnkitError, match="lexicon"):
        speech.lexicon_words("4,5")


def test_dataset_batches_are_padded_and_reproducible():
    feats = [np.random.default_rng(i).normal(size=(n, 40)).astype(np.float32)
             for i, n in enumerate([10, 31, 7, 22, 15])]
    texts = ["one", "two three", "oh", "nine nine", "five"]
    data = speech.SpeechDataset(feats, texts, 2, 3, seed=4, augment=True)
    first = list(data.batches(1))
    assert len(first) == 3 and sum(len(b.lengths) for b in first) == 5
    for b in first:
        assert b.inputs.shape[2] == 120 and b.inputs.shape[1] == b.lengths.max()
        for x, n in zip(b.inputs, b.lengths):
            assert (x[n:] == 0).all() and (x[:n] != 0).any()
    tail = list(data.batches(1, start=1))        # a resumed epoch sees the same masks
    for a, b in zip(first[1:], tail):
        np.testing.assert_array_equal(a.inputs, b.inputs)
    plain = speech.SpeechDataset(feats, texts, 2, 3, seed=4, shuffle=False)
    batch = next(plain.batches(0))    # unshuffled: the shortest first; " " is class 1
    assert [speech.decode(t[t >= 0]) for t in batch.targets] == ["oh", "one"]
    assert batch.lengths.tolist() == [3, 4] and batch.targets[0].tolist() == [16, 9, -1]


def test_digit_strings_use_both_names_of_zero():
    rng = np.random.default_rng(0)
    strings = [speech_corpus.random_digits(rng, 7) for _ in range(400)]
    words = [w for s in strings for w in s.split()]
    assert {len(s.split()) for s in strings} == set(range(1, 8))
    assert set(words) == set(speech_corpus.DIGIT_WORDS) | {"oh"}


def test_degrade_keeps_a_16k_recording_with_noise(tmp_path):
    x = 0.5 * np.sin(2 * np.pi * 300 * np.arange(RATE) / RATE)
    write_wav(tmp_path / "clean.wav", x, 22050)
    y = speech_corpus.degrade(tmp_path / "clean.wav", np.random.default_rng(1))
    assert y.dtype == np.float32 and np.isfinite(y).all() and np.abs(y).max() <= 1
    assert 0.9 * RATE < len(y) < 2.0 * RATE             # +-10 % speed, silence added
    assert np.std(y[:400]) > 0                           # the leading silence carries noise


def test_manifest_round_trip_and_errors(tmp_path):
    speech_corpus.write_manifest(tmp_path, [("a.wav", "one two", "v"), ("/abs/b.wav", "oh", "")])
    rows = speech_corpus.read_manifest(tmp_path)
    assert rows[0] == (tmp_path / "a.wav", "one two", "v")
    assert rows[1] == (Path("/abs/b.wav"), "oh", "")
    (tmp_path / "manifest.tsv").write_text("a.wav one two\n")
    with pytest.raises(RnnkitError, match="line 1"):
        speech_corpus.read_manifest(tmp_path)
    with pytest.raises(RnnkitError, match="manifest.tsv"):
        speech_corpus.read_manifest(tmp_path / "missing")
    with pytest.raises(RnnkitError, match="utterance 1"):
        (tmp_path / "manifest.tsv").write_text(f"{FIXTURES / '0.wav'}\tcall 911\n")
        speech.load_corpus(str(tmp_path), 40)


def test_settings_and_voices_are_checked(tmp_path):
    with pytest.raises(RnnkitError, match="--voices"):
        speech_corpus.select_voices("no-such-engine:*")
    with pytest.raises(RnnkitError, match="stack"):
        speech.train(speech.SpeechConfig(data=str(FIXTURES), stack=0),
                     speech.default_train_config(), tmp_path / "r")
    with pytest.raises(RnnkitError, match="enough utterances"):
        speech.train(speech.SpeechConfig(data=str(FIXTURES), val_fraction=0.5,
                                         test_fraction=0.5),
                     speech.default_train_config(), tmp_path / "r2")
    assert not (tmp_path / "r").exists() and not (tmp_path / "r2").exists()


def _words_run(run):
    return ["speech", "train", "--data", str(FIXTURES), "--val-data", str(FIXTURES),
            "--test-fraction", "0", "--units", "words", "--run-dir", str(run),
            "--hidden-size", "8", "--num-layers", "1", "--batch-size", "2", "--no-progress"]


def test_words_units_resume_bit_identical(tmp_path):
    assert_resume_is_bit_identical("speech", _words_run, tmp_path, stop=2, total=5)
    vocab = speech.WordVocab.load(tmp_path / "full" / "words.json")
    assert vocab.tokens == ["<pad>", "eight", "five", "four", "nine", "oh", "one", "seven",
                            "six", "three", "two", "zero"]          # <pad> is the blank


def test_words_units_evaluate_transcribe_and_their_errors(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(_words_run(run) + ["--max-steps", "2"]) == 0
    assert cli.main(["speech", "evaluate", str(run), "--data", str(FIXTURES), "--beam", "3"]) == 0
    assert json.loads((run / "eval.json").read_text())["words"] == 11
    capsys.readouterr()
    assert cli.main(["speech", "transcribe", str(run), str(FIXTURES / "0.wav"), "--json"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(line["transcript"].split()) <= set(speech_corpus.DIGIT_WORDS) | {"oh"}
    other = tmp_path / "other"                       # "ten" was in no training transcript
    other.mkdir()
    speech_corpus.write_manifest(other, [(str(FIXTURES / "0.wav"), "one ten", "")])
    with pytest.raises(RnnkitError, match=r"utterance 1.*words.json.*'one ten' with \['ten'\]"):
        speech.evaluate(run, data=str(other))
    words = run / "words.json"
    saved = words.read_text()
    words.write_text(saved.replace('"two"', '"tow"'))             # checksum no longer fits
    with pytest.raises(RnnkitError, match="words.json"):
        speech.evaluate(run)
    words.write_text(saved[:40])
    with pytest.raises(RnnkitError, match="words.json"):
        speech.predict(run, [str(FIXTURES / "0.wav")])
    words.unlink()
    with pytest.raises(RnnkitError, match="words.json"):
        speech.resume(run)
