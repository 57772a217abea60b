"""The captioning application on tiny synthetic digits: learning, the features' gradient,
decoding, resume and bad input."""
import json

import numpy as np
import pytest

from app_helpers import assert_resume_is_bit_identical
from gradcheck import check_sampled_params, numeric_grad
from rnnkit.apps import caption, caption_data, common
from rnnkit.cli import main
from rnnkit.errors import RnnkitError
from rnnkit.losses import softmax_cross_entropy
from rnnkit.models.decoding import beam_search, greedy
from rnnkit.train import read_metrics


def fake_digits(n, rng):
    """Class k (0..3) is a bright vertical bar on columns 6k+2..6k+5, plus noise: every row
    shows the class (the MNIST app's horizontal bars are seen only in 4 of 28 rows, and a
    caption's loss reaches the encoder too weakly for the tiny model to find them)."""
    y = rng.integers(0, 4, n).astype(np.uint8)
    x = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(y):
        x[i, 4:24, 6 * k + 2:6 * k + 6] = 230
    return x, y


def write_npz(path, n_train=240, n_test=40):
    rng = np.random.default_rng(0)
    (x_train, y_train), (x_test, y_test) = fake_digits(n_train, rng), fake_digits(n_test, rng)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def args(data, run, *extra):
    return ["caption", "train", "--data", str(data), "--run-dir", str(run), "--val-size", "40",
            "--train-pairs", "100", "--test-pairs", "30", "--hidden-size", "16",
            "--dec-hidden-size", "24", "--embed-dim", "8", "--batch-size", "20", "--lr", "0.02",
            "--schedule", "constant", "--no-progress", *extra]


def one_batch(dtype="float64"):
    """Two singles and two pairs of random images, with their captions."""
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (6, 28, 28)).astype(np.uint8)
    ex = np.array([[0, -1], [1, 2], [3, 4], [5, -1]])
    tiles, present = caption_data.tiles_of(images, ex)
    tgt_in, tgt_out, lengths, texts = caption_data.targets_of(np.array([1, 7, 3, 0, 9, 5]), ex)
    return (tiles.astype(dtype), present, tgt_in), tgt_out, lengths, texts


def test_examples_tiles_and_captions():
    inputs, tgt_out, lengths, texts = one_batch()
    assert texts == ["one", "seven three", "zero nine", "five"]
    tiles, present, tgt_in = inputs
    assert present.tolist() == [[True, False], [True, True], [True, True], [True, False]]
    assert not tiles[0, 1].any() and tiles[1, 1].any() and tiles.max() <= 1
    np.testing.assert_array_equal(lengths, [4, 12, 10, 5])              # letters + <eos>
    assert caption.VOCAB.decode(tgt_out[1, :11]) == "seven three"
    assert tgt_out[1, 11] == caption.EOS and tgt_in[1, 0] == caption.BOS
    np.testing.assert_array_equal(tgt_in[:, 1:], tgt_out[:, :-1])        # shifted right
    a = caption_data.make_pairs(100, 7, seed=0, part=2)
    np.testing.assert_array_equal(a, caption_data.make_pairs(100, 7, seed=0, part=2))
    assert not np.array_equal(a, caption_data.make_pairs(100, 7, seed=0, part=1))


@pytest.mark.parametrize("cell,bidirectional", [("gru", False), ("lstm", True)])
def test_gradients_through_the_features_match_finite_differences(cell, bidirectional):
    """Every parameter, the encoder's included (whose only gradient is dL/df), in float64."""
    model = caption.Captioner(cell=cell, hidden_size=5, bidirectional=bidirectional,
                              embed_dim=4, dec_hidden_size=6, dtype="float64", seed=1)
    inputs, tgt_out, lengths, _ = one_batch()

    def loss():
        logits, _, _ = model.forward(inputs, None, lengths, grad=False)
        return softmax_cross_entropy(logits, tgt_out, lengths)[0]

    model.zero_grad()
    logits, _, cache = model.forward(inputs, None, lengths)
    model.backward(softmax_cross_entropy(logits, tgt_out, lengths)[1], cache)
    assert np.abs(model.grads["enc.l0.W_xh"]).max() > 0
    check_sampled_params(model, loss, np.random.default_rng(0), samples=4, rel=1e-4, abs=1e-8)
    # dL/df, the decoder's answer to the encoder, also by finite differences in f itself
    f, _ = model.features(*inputs[:2], grad=False)
    f = np.ascontiguousarray(f)

    def loss_of_f():
        logits, _, _ = model.decoder.forward((f, inputs[2]), None, (None, lengths), grad=False)
        return softmax_cross_entropy(logits, tgt_out, lengths)[0]

    logits, _, dcache = model.decoder.forward((f, inputs[2]), None, (None, lengths))
    df = model.decoder.backward(softmax_cross_entropy(logits, tgt_out, lengths)[1], dcache)
    np.testing.assert_allclose(df, numeric_grad(loss_of_f, f), rtol=1e-5, atol=1e-9)
    assert not f.reshape(4, 2, -1)[[0, 3], 1].any()          # a single's second slot is 0


def test_float32_pinned_to_float64():
    """The fast float32 path gives the float64 reference's gradients on the same weights."""
    grads = {}
    for dtype in ("float64", "float32"):
        model = caption.Captioner(hidden_size=8, embed_dim=4, dec_hidden_size=8, dtype=dtype,
                                  seed=2)
        inputs, tgt_out, lengths, _ = one_batch(dtype)
        logits, _, cache = model.forward(inputs, None, lengths)
        model.zero_grad()
        model.backward(softmax_cross_entropy(logits, tgt_out, lengths)[1], cache)
        grads[dtype] = {k: v.copy() for k, v in model.grads.items()}
    for k, g in grads["float64"].items():
        np.testing.assert_allclose(grads["float32"][k], g, rtol=2e-3, atol=2e-6, err_msg=k)


def test_train_learns_captions_and_beam_1_is_greedy(tmp_path, capsys):
    data, run = write_npz(tmp_path / "d.npz"), tmp_path / "run"
    assert main(args(data, run, "--epochs", "20")) == 0
    rows = list(read_metrics(run / "metrics.jsonl"))
    train = [r["loss"] for r in rows if r["kind"] == "train"]
    val = [r for r in rows if r["kind"] == "validation"]
    assert train[-1] < 0.5 * train[0]
    assert val[-1]["val_loss"] < val[0]["val_loss"] and max(r["val_exact"] for r in val) > 0.5
    capsys.readouterr()
    assert main(["caption", "evaluate", str(run), "--beam", "3"]) == 0
    ev = json.loads((run / "eval.json").read_text())
    assert ev["single"]["captions"] == 40 and ev["pair"]["captions"] == 30
    assert ev["single"]["greedy"]["exact"] > 0.8 and ev["pair"]["greedy"]["exact"] > 0.2
    for kind in ("single", "pair"):           # the tiny model's beam may find likelier errors
        for how in ("greedy", "beam"):
            assert 0 <= ev[kind][how]["cer"] < 0.6, (kind, how)
    capsys.readouterr()
    # well-formed captions: one or two names of digits for one or two images
    np.save(tmp_path / "pair.npy", np.concatenate([np.load(data)["x_test"][i] for i in (0, 1)],
                                                  axis=1))
    assert main(["caption", "predict", str(run), "0", "0,1", str(tmp_path / "pair.npy"),
                 "--json"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    words = [o["caption"].split(" ") for o in out]
    assert [len(w) for w in words] == [1, 2, 2] and out[1]["caption"] == out[2]["caption"]
    assert all(w in caption.NAMES for ws in words for w in ws)
    # beam search of width 1 is greedy decoding, on the trained model and an untrained one
    _, _, model = caption._load(run)
    x_test = np.load(data)["x_test"]
    tiles, present = caption_data.tiles_of(x_test, np.array([[0, -1], [2, 3]] * 5))
    for m in (model, caption.Captioner(hidden_size=16, dec_hidden_size=24, embed_dim=8,
                                       seed=5)):
        assert m.caption(tiles, present, beam=1) == m.caption(tiles, present)
    # and a wider beam finds captions at least as likely as greedy's (with 29 tokens, stopping
    # at the first 5 finished hypotheses returned hopeless endings such as "two" for "three")
    f, _ = model.features(*caption_data.tiles_of(x_test, np.array([[i, -1] for i in range(40)])),
                          grad=False)
    kw = dict(bos=caption.BOS, eos=caption.EOS, max_len=caption.MAX_LEN)
    g = greedy(model.decoder, f, **kw)
    b = beam_search(model.decoder, f, beam=5, alpha=0.0, **kw)
    assert (b.scores >= g.scores - 1e-6).all()


def test_resume_continues_bit_identically(tmp_path):
    data = write_npz(tmp_path / "d.npz", n_train=100)
    assert_resume_is_bit_identical("caption", lambda run: args(data, run), tmp_path, 3, 7)


def test_resume_with_shifted_tiles_continues_bit_identically(tmp_path):
    """The shifts are drawn per epoch, so a run stopped inside an epoch redraws the same."""
    data = write_npz(tmp_path / "d.npz", n_train=100)
    assert_resume_is_bit_identical("caption", lambda run: args(data, run, "--shift", "2"),
                                   tmp_path, 5, 12)


def test_shifted_moves_each_tile_by_its_offset():
    tiles = np.random.default_rng(0).random((4, 28, 28))
    offsets = np.array([[0, 0], [1, -2], [-2, 2], [2, 1]])
    out = caption_data.shifted(tiles, offsets)
    for k, (dy, dx) in enumerate(offsets):
        want = np.zeros((28, 28))
        want[max(dy, 0):28 + min(dy, 0), max(dx, 0):28 + min(dx, 0)] = \
            tiles[k, max(-dy, 0):28 - max(dy, 0), max(-dx, 0):28 - max(dx, 0)]
        np.testing.assert_array_equal(out[k], want, err_msg=str((dy, dx)))
    np.testing.assert_array_equal(out[0], tiles[0])
    assert out[1, 0].sum() == 0 and out[1, :, 26:].sum() == 0       # zeros came in
    assert out[1, 5, 3] == tiles[1, 4, 5]                            # out[i, j] = in[i-dy, j-dx]


def batches_of(data, epoch=0, start=0):
    return [(b.inputs[0], b.inputs[1], b.inputs[2], b.targets) for b in
            data.batches(epoch, start)]


def offset_of(moved, tile, s=2):
    """The (dy, dx) in [-s, s]^2 that moves `tile` onto `moved`, or None."""
    for dy in range(-s, s + 1):
        for dx in range(-s, s + 1):
            if np.array_equal(caption_data.shifted(tile[None], np.array([[dy, dx]]))[0], moved):
                return dy, dx
    return None


def test_shift_moves_training_tiles_only_and_is_a_function_of_seed_and_epoch(tmp_path):
    x, y = fake_digits(30, np.random.default_rng(1))
    ex = caption_data.examples(30, caption_data.make_pairs(30, 10, 0, 0), "mixed")
    plain = batches_of(caption_data.CaptionData(x, y, ex, 8, seed=3))
    moved = caption_data.CaptionData(x, y, ex, 8, seed=3, shift=2)
    shifted = batches_of(moved)
    seen = set()
    for (t0, p0, i0, o0), (t1, p1, i1, o1) in zip(plain, shifted, strict=True):
        np.testing.assert_array_equal(p0, p1)             # same examples, same captions
        np.testing.assert_array_equal(i0, i1)
        np.testing.assert_array_equal(o0, o1)
        for a, b in zip(t0[p0], t1[p1]):
            seen.add(offset_of(b, a))
        assert not t1[~p1].any()                          # a missing tile stays blank
    assert None not in seen and len(seen) > 10            # every tile moved by <= 2 pixels
    # the same seed and epoch draw the same shifts, from any batch on; another epoch others
    again = batches_of(caption_data.CaptionData(x, y, ex, 8, seed=3, shift=2))
    for a, b in zip(shifted, again, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
    for a, b in zip(shifted[2:], batches_of(moved, 0, start=2), strict=True):
        np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(sorted(t.sum() for t in batches_of(moved, 1)[0][0]),
                              sorted(t.sum() for t in shifted[0][0]))
    # a run's training data shifts, its validation data (and evaluate's tiles) do not
    data, run = write_npz(tmp_path / "d.npz", n_train=80), tmp_path / "run"
    assert main(args(data, run, "--shift", "2", "--max-steps", "1")) == 0
    _, cfg, tcfg, _ = common.load_run_config(run, caption.CaptionConfig, "caption")
    trainer = caption._build(cfg, tcfg, run, log=lambda *a: None)
    assert cfg.shift == 2 and trainer.train_data.shift == 2
    val = trainer.val_data
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches_of(val)]),
                                  caption_data.tiles_of(val.images, val.ex)[0])


@pytest.mark.parametrize("value", ["-1", "28"])
def test_a_bad_shift_is_refused(tmp_path, capsys, value):
    data = write_npz(tmp_path / "d.npz", n_train=80)
    assert main(args(data, tmp_path / "run", "--shift", value)) == 2
    err = capsys.readouterr().err
    assert "shift: expected a number in [0, 27]" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
    with pytest.raises(RnnkitError, match="shift"):
        caption.train(caption.CaptionConfig(data=str(data), shift=int(value)),
                      caption.default_train_config(), tmp_path / "run2")


def test_bad_inputs_are_one_line(tmp_path, capsys):
    assert main(args(tmp_path / "none.npz", tmp_path / "r")) == 2
    assert "--data: expected an .npz file" in capsys.readouterr().err
    data, run = write_npz(tmp_path / "d.npz", n_train=80), tmp_path / "run"
    assert main(args(data, run, "--max-steps", "1")) == 0
    np.save(tmp_path / "small.npy", np.zeros((10, 10)))
    np.save(tmp_path / "wide.npy", np.zeros((28, 84)))
    capsys.readouterr()
    for item, message in (("40", "a test image index in [0, 39]"),
                          ("-1", "a test image index in [0, 39]"),
                          (str(tmp_path / "small.npy"), "28 x 28 or 28 x 56"),
                          (str(tmp_path / "wide.npy"), "28 x 28 or 28 x 56"),
                          ("1,2,3", "at most 2 images"),
                          ("nothing.npy", "no such file"),
                          ("seven", "a test image index, an .npy image file")):
        assert main(["caption", "predict", str(run), item]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    assert main(["caption", "evaluate", str(run), "--beam", "0"]) == 2
    assert "beam: expected an integer >= 1" in capsys.readouterr().err
    with pytest.raises(RnnkitError, match="beam"):
        caption.predict(run, ["1"], beam=-1)
