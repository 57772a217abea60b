"""rnnkit.data: vocabularies, padding and bucketing, data sources that resume exactly, token
streams, time-series scalers and windows, and the shared real data sets."""
import csv
import json
import re

import numpy as np
import pytest

import rnnkit.data as data
from rnnkit import RnnkitError
from rnnkit.data import (Batch, CharVocab, MinMaxScaler, SequenceDataset, StandardScaler,
                         TextStream, WindowDataset, WordVocab, bucket_batches, lm_batches,
                         load_csv_series, load_vocab, make_windows, pad_sequences,
                         scaler_from_dict, tokenize, train_val_test_split, vocab_from_dict)
from rnnkit.errors import check_lengths
from shared_data import shared_data



def raises(fn, name):
    """fn() raises RnnkitError 'NAME: expected ..., got ...'; returns the message."""
    with pytest.raises(RnnkitError, match=r"^" + re.escape(name) + r": expected .*, got ") as e:
        fn()
    return str(e.value)


def collect(source, epoch, start=0):
    return list(source.batches(epoch, start))


def assert_same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.inputs, y.inputs)
        np.testing.assert_array_equal(x.targets, y.targets)
        if x.lengths is None:
            assert y.lengths is None
        else:
            np.testing.assert_array_equal(x.lengths, y.lengths)


# ---------------------------------------------------------------- vocabularies

def test_char_vocab_moved_to_vocab_module_and_still_exported():
    from rnnkit.data.vocab import CharVocab as moved
    assert data.CharVocab is moved
    vocab = CharVocab("hello")
    assert vocab.chars == ["e", "h", "l", "o"]
    assert vocab.decode(vocab.encode("hole")) == "hole"
    raises(lambda: vocab.decode([0, 4]), "ids")


def test_tokenize_splits_words_and_punctuation():
    assert tokenize("It's a Cat, isn't it?!") == ["it's", "a", "cat", ",", "isn't", "it",
                                                  "?", "!"]
    assert tokenize("U.S. 1968", lower=False) == ["U", ".", "S", ".", "1968"]
    raises(lambda: tokenize(["a list"]), "text")


def test_word_vocab_specials_frequency_order_and_round_trip():
    vocab = WordVocab.build(["the cat sat", "the dog sat", "the cat ran"], bos=True, eos=True)
    assert vocab.tokens[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"]
    assert (vocab.pad_id, vocab.unk_id, vocab.bos_id, vocab.eos_id) == (0, 1, 2, 3)
    # the: 3, cat: 2, sat: 2, dog: 1, ran: 1; ties alphabetical
    assert vocab.tokens[4:] == ["the", "cat", "sat", "dog", "ran"]
    ids = vocab.encode("The dog ran")
    np.testing.assert_array_equal(ids, [2, 4, 7, 8, 3])
    assert ids.dtype == np.int64
    assert vocab.decode(ids) == "the dog ran"
    assert vocab.to_tokens(ids) == ["<bos>", "the", "dog", "ran", "<eos>"]
    assert vocab.decode(ids, skip_specials=False) == "<bos> the dog ran <eos>"
    np.testing.assert_array_equal(vocab.encode(["cat", "sat"], add_specials=False), [5, 6])


def test_unknown_tokens_map_to_unk_or_raise_naming_the_token():
    with_unk = WordVocab.build(["a b c"])
    np.testing.assert_array_equal(with_unk.encode("a zebra c"),
                                  [with_unk.index["a"], 1, with_unk.index["c"]])
    assert with_unk.decode(with_unk.encode("a zebra")) == "a <unk>"
    strict = WordVocab.build(["a b c"], unk=False)
    assert strict.unk_id is None and strict.tokens[0] == "<pad>" and len(strict) == 4
    msg = raises(lambda: strict.encode("a zebra c"), "text")
    assert "'zebra'" in msg
    raises(lambda: strict.decode([0, 9]), "ids")


def test_min_freq_and_max_size():
    texts = ["a a a a b b b c c d", "a b c e"]
    vocab = WordVocab.build(texts, min_freq=2)
    assert vocab.tokens == ["<pad>", "<unk>", "a", "b", "c"]
    small = WordVocab.build(texts, max_size=4)           # specials count towards max_size
    assert small.tokens == ["<pad>", "<unk>", "a", "b"]
    assert len(WordVocab.build(texts, max_size=100)) == 7
    raises(lambda: WordVocab.build(texts, min_freq=0), "min_freq")
    raises(lambda: WordVocab.build(texts, max_size=1), "max_size")
    raises(lambda: WordVocab.build("a single string"), "texts")


def test_save_and_load_both_kinds_with_a_type_field(tmp_path):
    word = WordVocab.build(["Hello, world. Hello!"], eos=True, lower=False)
    char = CharVocab("abc", unk="?")
    word.save(tmp_path / "word.json")
    char.save(tmp_path / "char.json")
    assert json.loads((tmp_path / "word.json").read_text())["type"] == "word"
    assert json.loads((tmp_path / "char.json").read_text())["type"] == "char"

    word2 = WordVocab.load(tmp_path / "word.json")
    assert word2.tokens == word.tokens and word2.lower is False and word2.eos_id == word.eos_id
    np.testing.assert_array_equal(word2.encode("Hello world"), word.encode("Hello world"))
    char2 = load_vocab(tmp_path / "char.json")
    assert isinstance(char2, CharVocab) and char2.chars == char.chars and char2.unk == "?"
    assert char2.decode(char2.encode("abz")) == "ab?"
    assert vocab_from_dict(word.to_dict()).tokens == word.tokens
    with pytest.raises(RnnkitError, match=r"char\.json: expected a word vocabulary"):
        WordVocab.load(tmp_path / "char.json")


def test_missing_corrupt_or_foreign_vocab_files_raise_naming_the_file(tmp_path):
    good = WordVocab.build(["a b"]).to_dict()
    cases = {
        "missing.json": None,
        "garbage.json": b"\x00\xff not json",
        "truncated.json": json.dumps(good).encode()[:30],
        "foreign.json": json.dumps({"model": "something else"}).encode(),
        "list.json": b"[1, 2, 3]",
        "future.json": json.dumps({**good, "version": 99}).encode(),
        "flags.json": json.dumps({**good, "bos": True}).encode(),        # specials mismatch
        "no_tokens.json": json.dumps({k: v for k, v in good.items() if k != "tokens"}).encode(),
        "bad_chars.json": json.dumps({**CharVocab("ab").to_dict(),
                                      "tokens": ["b", "a"]}).encode(),
    }
    for name, content in cases.items():
        path = tmp_path / name
        if content is not None:
            path.write_bytes(content)
        with pytest.raises(RnnkitError, match=re.escape(str(path)) + ": expected"):
            load_vocab(path)


def test_word_vocab_on_rotten_tomatoes_has_a_sane_size():
    with shared_data("sentiment/rotten_tomatoes.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    texts = [r["text"] for r in rows]
    assert len(texts) == 12_752 and {r["label"] for r in rows} == {"0", "1"}
    full = WordVocab.build(texts)
    frequent = WordVocab.build(texts, min_freq=2)
    capped = WordVocab.build(texts, max_size=5000)
    assert 15_000 < len(full) < 30_000            # ~12.7k snippets of English film criticism
    assert 8_000 < len(frequent) < len(full)
    assert len(capped) == 5000
    assert {"the", ".", ",", "film", "movie", "a"} <= set(full.tokens[:60])
    ids = frequent.encode(" ".join(texts[:500]))
    assert np.mean(ids == frequent.unk_id) < 0.05      # rare words only
    assert full.decode(full.encode(texts[0])) == " ".join(tokenize(texts[0]))


# ---------------------------------------------------------------- padding and bucketing

def test_pad_sequences_values_and_lengths():
    padded, lengths = pad_sequences([np.array([5, 6, 7]), np.array([8]), [9, 10]])
    np.testing.assert_array_equal(padded, [[5, 6, 7], [8, 0, 0], [9, 10, 0]])
    np.testing.assert_array_equal(lengths, [3, 1, 2])
    assert lengths.dtype == np.int64 and padded.dtype.kind == "i"

    a = np.ones((2, 3), np.float32)
    b = np.full((4, 3), 2.0, np.float32)
    padded, lengths = pad_sequences([a, b], pad_value=-1.0)
    assert padded.shape == (2, 4, 3) and padded.dtype == np.float32
    np.testing.assert_array_equal(padded[0, :2], a)
    np.testing.assert_array_equal(padded[0, 2:], -1.0)
    np.testing.assert_array_equal(padded[1], b)
    np.testing.assert_array_equal(lengths, [2, 4])
    assert pad_sequences([[1, 2]], dtype=np.float64)[0].dtype == np.float64
    check_lengths(lengths, 2, padded.shape[1])                 # what the layers accept


def test_pad_sequences_rejects_bad_input():
    raises(lambda: pad_sequences([]), "seqs")
    raises(lambda: pad_sequences([np.zeros((2, 3)), np.zeros((2, 4))]), "seqs[1]")
    raises(lambda: pad_sequences([[1], []]), "seqs[1]")
    raises(lambda: pad_sequences([np.zeros((2, 2, 2))]), "seqs[0]")


def test_bucket_batches_cover_every_index_once_and_group_similar_lengths():
    lengths = np.random.default_rng(0).integers(1, 200, size=1003)
    batches = bucket_batches(lengths, 16, np.random.default_rng(1), bucket_size_multiplier=8)
    assert len(batches) == -(-1003 // 16)
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(1003))
    assert sum(len(b) < 16 for b in batches) == 1
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    random_spread = np.mean([np.ptp(lengths[b]) for b in
                             np.array_split(np.random.default_rng(2).permutation(1003), 63)])
    assert spread < 0.2 * random_spread, (spread, random_spread)
    # one bucket holding everything: batches are consecutive runs of the sorted lengths
    whole = bucket_batches(lengths, 16, np.random.default_rng(1), bucket_size_multiplier=100)
    assert sum(np.ptp(lengths[b]) for b in whole) <= np.ptp(lengths)
    # deterministic in the generator, different for another one
    again = bucket_batches(lengths, 16, np.random.default_rng(1), bucket_size_multiplier=8)
    assert all(np.array_equal(x, y) for x, y in zip(batches, again))
    other = bucket_batches(lengths, 16, np.random.default_rng(3), bucket_size_multiplier=8)
    assert not all(np.array_equal(x, y) for x, y in zip(batches, other))
    raises(lambda: bucket_batches(lengths, 0, None), "batch_size")
    raises(lambda: bucket_batches(lengths, 4, 123), "rng")


def make_dataset(**kw):
    """Sequence i starts with id i (so batches can be traced back), length 1 + i % 13."""
    inputs = [np.r_[i, np.arange(i % 13) + 1000] for i in range(101)]
    labels = np.arange(101) % 2
    return SequenceDataset(inputs, labels, 8, **kw), inputs, labels


def test_sequence_dataset_batches_pad_and_keep_targets_aligned():
    ds, inputs, labels = make_dataset(seed=3)
    assert ds.stateful is False and ds.num_batches(0) == 13 and len(ds) == 101
    seen = []
    for batch in ds.batches(0):
        assert isinstance(batch, Batch)
        ids = batch.inputs[:, 0]
        seen.extend(ids)
        assert batch.inputs.shape[1] == batch.lengths.max()        # padded to its own max
        for row, i, n in zip(batch.inputs, ids, batch.lengths):
            assert n == len(inputs[i])
            np.testing.assert_array_equal(row[:n], inputs[i])
            assert np.all(row[n:] == 0)
        np.testing.assert_array_equal(batch.targets, labels[ids])
    assert sorted(seen) == list(range(101))


def test_sequence_dataset_order_is_a_function_of_seed_and_epoch_and_resumes_exactly():
    ds, _, _ = make_dataset(seed=7)
    twin, _, _ = make_dataset(seed=7)
    epoch2 = collect(ds, 2)
    assert_same_batches(epoch2, collect(twin, 2))                # another instance, same order
    collect(ds, 0), collect(ds, 5)                               # no hidden state
    assert_same_batches(epoch2, collect(ds, 2))
    for start in (0, 1, 6, 12, 13):
        assert_same_batches(collect(ds, 2, start), epoch2[start:])
    first = lambda bs: [tuple(b.inputs[:, 0]) for b in bs]
    assert first(collect(ds, 3)) != first(epoch2)                # epochs differ
    other_seed, _, _ = make_dataset(seed=8)
    assert first(collect(other_seed, 2)) != first(epoch2)
    raises(lambda: ds.batches(2, start=14), "start")
    raises(lambda: ds.batches(-1), "epoch")

    plain, _, _ = make_dataset(shuffle=False, bucket=False)
    np.testing.assert_array_equal(np.concatenate([b.inputs[:, 0] for b in plain.batches(4)]),
                                  np.arange(101))


def test_sequence_dataset_per_step_targets_and_features():
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal((n, 3)).astype(np.float32) for n in (4, 2, 5, 3)]
    tags = [np.arange(n) + 1 for n in (4, 2, 5, 3)]
    ds = SequenceDataset(xs, tags, 2, per_step_targets=True, target_pad_value=-100)
    for batch in ds.batches(1):
        assert batch.inputs.dtype == np.float32 and batch.inputs.ndim == 3
        assert batch.targets.shape == batch.inputs.shape[:2]
        for row, n in zip(batch.targets, batch.lengths):
            np.testing.assert_array_equal(row[:n], np.arange(n) + 1)
            assert np.all(row[n:] == -100)
        assert batch.size == batch.lengths.sum()
    bad = tags[:3] + [np.arange(7)]
    raises(lambda: SequenceDataset(xs, bad, 2, per_step_targets=True), "targets[3]")
    raises(lambda: SequenceDataset(xs, [0, 1, 0], 2), "targets")
    raises(lambda: SequenceDataset(xs, tags, 2), "targets")          # forgot the flag


# ---------------------------------------------------------------- language-model streams

def test_text_stream_rows_continue_across_batches():
    ids = np.arange(1001)
    stream = TextStream(ids, batch_size=4, seq_len=10)
    assert stream.stateful is True and stream.num_batches(0) == 25
    batches = collect(stream, 0)
    assert len(batches) == 25
    for b, (x, y) in zip(batches, lm_batches(ids, 4, 10)):       # same layout as lm_batches
        np.testing.assert_array_equal(b.inputs, x)
        np.testing.assert_array_equal(b.targets, y)
    for prev, nxt in zip(batches, batches[1:]):
        np.testing.assert_array_equal(nxt.inputs[:, 0], prev.inputs[:, -1] + 1)
        np.testing.assert_array_equal(nxt.inputs[:, 0], prev.targets[:, -1])
    np.testing.assert_array_equal(batches[0].targets, batches[0].inputs + 1)
    assert_same_batches(collect(stream, 3, start=20), batches[20:])
    raises(lambda: TextStream(np.arange(40), 4, 10), "ids")


def test_text_stream_random_offset_depends_only_on_seed_and_epoch():
    ids = np.arange(2000)
    stream = TextStream(ids, 4, 16, random_offset=True, seed=5)
    offsets = [stream.offset(e) for e in range(8)]
    assert all(0 <= o < 16 for o in offsets) and len(set(offsets)) > 1
    assert offsets == [TextStream(ids, 4, 16, random_offset=True, seed=5).offset(e)
                       for e in range(8)]
    for epoch in (0, 3):
        full = collect(stream, epoch)
        assert len(full) == stream.num_batches(epoch)
        assert full[0].inputs[0, 0] == stream.offset(epoch)
        assert_same_batches(collect(stream, epoch, start=7), full[7:])
    assert TextStream(ids, 4, 16).offset(3) == 0


# ---------------------------------------------------------------- time series

def test_scalers_fit_on_train_only_and_invert_exactly():
    series = np.r_[np.arange(10.0), 100.0 + np.arange(5.0)]      # test part far from train
    train, _, test = train_val_test_split(series, 0.0, 1 / 3)
    std = StandardScaler().fit(train)
    assert std.mean == pytest.approx(4.5) and std.std == pytest.approx(np.std(np.arange(10.0)))
    z = std.transform(train)
    assert z.mean() == pytest.approx(0.0, abs=1e-12) and z.std() == pytest.approx(1.0)
    assert std.transform(test).min() > 5                         # test not used in fitting
    mm = MinMaxScaler(feature_range=(-1, 1)).fit(train)
    np.testing.assert_allclose(mm.transform(train)[[0, -1]], [-1.0, 1.0])
    for scaler in (std, mm):
        np.testing.assert_allclose(scaler.inverse_transform(scaler.transform(series)), series,
                                   rtol=1e-12)
    # per feature on (T, F), applies to windows (M, L, F) too, keeps float32
    multi = np.random.default_rng(0).standard_normal((50, 3)) * [1, 10, 100] + [0, 5, -7]
    for scaler in (StandardScaler().fit(multi), MinMaxScaler().fit(multi)):
        windows = multi[:48].reshape(4, 12, 3).astype(np.float32)
        out = scaler.transform(windows)
        assert out.dtype == np.float32
        np.testing.assert_allclose(scaler.inverse_transform(out), windows, rtol=1e-5)
        col = scaler.feature(2)
        np.testing.assert_allclose(col.transform(multi[:, 2]), scaler.transform(multi)[:, 2])
        raises(lambda: scaler.transform(np.zeros((5, 2))), "x")
    const = np.full((6, 1), 3.0)
    assert np.isfinite(StandardScaler().fit(const).transform(const)).all()
    assert np.all(MinMaxScaler().fit(const).transform(const) == 0.0)


def test_scalers_refuse_use_before_fit_and_round_trip_through_json():
    for cls in (StandardScaler, MinMaxScaler):
        raises(lambda: cls().transform([1.0, 2.0]), "scaler")
        raises(lambda: cls().inverse_transform([1.0]), "scaler")
        raises(lambda: cls().to_dict(), "scaler")
    raises(lambda: StandardScaler().fit([1.0, np.nan]), "x")
    raises(lambda: MinMaxScaler(feature_range=(1, 0)), "feature_range")
    x = np.random.default_rng(1).standard_normal((20, 2))
    for scaler in (StandardScaler().fit(x), MinMaxScaler((-1, 1)).fit(x),
                   StandardScaler().fit(x[:, 0])):
        restored = scaler_from_dict(json.loads(json.dumps(scaler.to_dict())))
        assert type(restored) is type(scaler)
        np.testing.assert_allclose(restored.transform(x), scaler.transform(x), rtol=0)
    raises(lambda: scaler_from_dict({"type": "robust"}), "d")
    raises(lambda: StandardScaler.from_dict({"type": "standard", "mean": [0.0]}), "d")


def test_make_windows_on_a_hand_checked_series():
    X, y = make_windows(np.array([10, 20, 30, 40, 50, 60]), lookback=3, horizon=2)
    np.testing.assert_array_equal(X[..., 0], [[10, 20, 30], [20, 30, 40]])
    np.testing.assert_array_equal(y, [[40, 50], [50, 60]])
    assert X.shape == (2, 3, 1) and y.shape == (2, 2)
    X, y = make_windows(np.arange(5.0), lookback=2)                # horizon 1
    np.testing.assert_array_equal(X[..., 0], [[0, 1], [1, 2], [2, 3]])
    np.testing.assert_array_equal(y, [[2], [3], [4]])
    multi = np.stack([np.arange(6.0), -np.arange(6.0)], axis=1)    # (T=6, F=2)
    X, y = make_windows(multi, lookback=4)
    assert X.shape == (2, 4, 2) and y.shape == (2, 1, 2)
    np.testing.assert_array_equal(y[:, 0], [[4, -4], [5, -5]])
    _, y1 = make_windows(multi, lookback=4, target=1)
    np.testing.assert_array_equal(y1, [[-4], [-5]])
    raises(lambda: make_windows(np.arange(4.0), lookback=3, horizon=2), "series")
    raises(lambda: make_windows(np.arange(9.0), lookback=0), "lookback")
    raises(lambda: make_windows(multi, lookback=2, target=2), "target")


def test_train_val_test_split_keeps_time_order_with_context():
    s = np.arange(100)
    train, val, test = train_val_test_split(s, val=0.1, test=0.2)
    np.testing.assert_array_equal(np.concatenate([train, val, test]), s)
    assert (len(train), len(val), len(test)) == (70, 10, 20)
    train, val, test = train_val_test_split(s, 0.1, 0.2, context=5)
    np.testing.assert_array_equal(val, np.arange(65, 80))
    np.testing.assert_array_equal(test, np.arange(75, 100))
    _, y_val = make_windows(val, lookback=5)                       # targets exactly 70..79
    np.testing.assert_array_equal(y_val[:, 0], np.arange(70, 80))
    _, empty_val, _ = train_val_test_split(s, 0.0, 0.2, context=5)
    assert len(empty_val) == 0
    raises(lambda: train_val_test_split(s, 0.6, 0.5), "series")
    raises(lambda: train_val_test_split(s, 1.0, 0.0), "val")
    raises(lambda: train_val_test_split(s, 0.1, 0.2, context=71), "context")


def test_window_dataset_deterministic_per_seed_and_epoch():
    X, y = make_windows(np.arange(60.0), lookback=4)               # 56 windows
    ds = WindowDataset(X, y, 10, seed=2)
    assert ds.stateful is False and ds.num_batches(0) == 6
    epoch1 = collect(ds, 1)
    assert_same_batches(epoch1, collect(WindowDataset(X, y, 10, seed=2), 1))
    assert_same_batches(collect(ds, 1, start=4), epoch1[4:])
    starts = np.concatenate([b.inputs[:, 0, 0] for b in epoch1])
    np.testing.assert_array_equal(np.sort(starts), np.arange(56))
    for b in epoch1:                                               # targets follow inputs
        np.testing.assert_array_equal(b.targets[:, 0], b.inputs[:, -1, 0] + 1)
    assert not np.array_equal(starts, np.concatenate([b.inputs[:, 0, 0]
                                                      for b in collect(ds, 2)]))
    ordered = WindowDataset(X, y, 10, shuffle=False)
    np.testing.assert_array_equal(np.concatenate([b.inputs[:, 0, 0] for b in ordered.batches(3)]),
                                  np.arange(56))
    raises(lambda: WindowDataset(X, y[:-1], 10), "y")
    raises(lambda: WindowDataset(X[..., 0], y, 10), "X")


def test_load_airline_passengers_and_prepare_a_forecast():
    AIRLINE = shared_data("timeseries/airline_passengers.csv")
    with AIRLINE.open(newline="") as f:
        rows = list(csv.reader(f))
    series = load_csv_series(AIRLINE, "passengers")
    assert series.shape == (144,) and series.dtype == np.float64
    assert series[0] == float(rows[1][1]) and series[-1] == float(rows[-1][1])
    assert (rows[1][0], rows[-1][0]) == ("1949-01", "1960-12")
    assert load_csv_series(AIRLINE, ["passengers"]).shape == (144, 1)

    lookback = 12
    train, val, test = train_val_test_split(series, 0.1, 0.2, context=lookback)
    scaler = StandardScaler().fit(train)
    X, y = make_windows(scaler.transform(train), lookback)
    assert X.shape == (len(train) - lookback, lookback, 1) and y.shape == (len(X), 1)
    _, y_test = make_windows(scaler.transform(test), lookback)
    np.testing.assert_allclose(scaler.inverse_transform(y_test[:, 0]), series[-29:])


def test_load_csv_series_errors_name_the_file_or_column(tmp_path):
    missing = tmp_path / "nope.csv"
    assert "nope.csv" in raises(lambda: load_csv_series(missing, "x"), str(missing))
    path = tmp_path / "s.csv"
    path.write_text("month,value\n2000-01,1.5\n2000-02,oops\n")
    msg = raises(lambda: load_csv_series(path, "passengers"), "column")
    assert "'passengers'" in msg and "value" in msg
    assert "oops" in raises(lambda: load_csv_series(path, "value"), f"{path}:3")
