"""rnnkit.models.Seq2Seq and its decoders: finite differences in float64 for the whole
backward (lengths on both sides), parity with the same model written in PyTorch on identical
weights (logits, loss, every gradient), decoding against teacher forcing, beam 1 == greedy,
beam search against exhaustive search, a small reversal task learnt, and bad input."""
import numpy as np
import pytest

from gradcheck import check_sampled_params

from rnnkit import RnnkitError
from rnnkit.interop.torch_weights import grads_to_torch_layout
from rnnkit.losses import softmax_cross_entropy
from rnnkit.models import Seq2Seq, build_model
from rnnkit.models.decoding import beam_search, greedy, sample
from rnnkit.optim import clip_grad_norm, make_optimizer

N, TS, TT, SV, TV = 4, 6, 5, 11, 9
SRC_LEN = np.array([6, 3, 1, 4])
TGT_LEN = np.array([2, 5, 3, 1])
# (cell, attention, input_feeding, bidirectional): the whole-target decoder (none, dot,
# general without feeding) and the stepped one (additive, input feeding), both cells
CASES = [("lstm", "none", False, False), ("gru", "dot", False, True),
         ("lstm", "general", False, True), ("gru", "general", True, False),
         ("lstm", "additive", False, True), ("gru", "additive", True, True),
         ("lstm", "dot", True, False)]
IDS = ["-".join(str(v) for v in c) for c in CASES]


def make(cell, attention, feeding, bi, dtype="float64", seed=0, **kw):
    opts = dict(src_vocab=SV, tgt_vocab=TV, embed_dim=5, hidden_size=4, num_layers=2,
                bidirectional=bi, dec_hidden_size=8 if bi else 4, dec_layers=1, cell=cell,
                attention=attention, input_feeding=feeding, attn_size=6, dtype=dtype, seed=seed)
    if not bi:
        opts["dec_layers"] = 2              # the encoder's state passed on without a bridge
    opts.update(kw)
    return Seq2Seq(**opts)


def batch(seed=1):
    rng = np.random.default_rng(seed)
    src = rng.integers(0, SV, (N, TS))
    tgt = rng.integers(0, TV, (N, TT + 1))
    return src, tgt[:, :-1], tgt[:, 1:]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradients_by_finite_differences(case):
    model = make(*case)
    src, tgt_in, targets = batch()
    lengths = (SRC_LEN, TGT_LEN)

    def loss():
        logits, _, _ = model.forward((src, tgt_in), None, lengths, grad=False)
        return softmax_cross_entropy(logits, targets, TGT_LEN)[0]

    logits, _, cache = model.forward((src, tgt_in), None, lengths)
    model.zero_grad()
    model.backward(softmax_cross_entropy(logits, targets, TGT_LEN)[1], cache)
    check_sampled_params(model, loss, np.random.default_rng(2), samples=4, rel=1e-5, abs=1e-9)


@pytest.mark.parametrize("case", [CASES[2], CASES[5]], ids=[IDS[2], IDS[5]])
def test_dropout_gradients_by_finite_differences(case):
    """Training with dropout: the same seed draws the same masks (embeddings, between layers,
    h~), so the loss is a fixed function of the weights to check the backward against."""
    model = make(*case, dropout=0.4)
    src, tgt_in, targets = batch()
    lengths = (SRC_LEN, TGT_LEN)

    def run(grad):
        return model.forward((src, tgt_in), None, lengths, training=True,
                             rng=np.random.default_rng(7), grad=grad)

    def loss():
        return softmax_cross_entropy(run(False)[0], targets, TGT_LEN)[0]

    logits, _, cache = run(True)
    assert all(m is not None for m in cache["masks"])
    plain = model.forward((src, tgt_in), None, lengths, grad=False)[0]
    assert not np.allclose(logits, plain)
    model.zero_grad()
    model.backward(softmax_cross_entropy(logits, targets, TGT_LEN)[1], cache)
    check_sampled_params(model, loss, np.random.default_rng(2), samples=4, rel=1e-5, abs=1e-9)


def test_dropout_is_off_outside_training():
    with_dropout, without = make(*CASES[2], dropout=0.5), make(*CASES[2])
    src, tgt_in, _ = batch()
    out = [m.forward((src, tgt_in), None, (SRC_LEN, TGT_LEN), grad=False)[0]
           for m in (with_dropout, without)]
    np.testing.assert_array_equal(out[0], out[1])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_feature_source_gradients(cell):
    """One-to-many: a feature vector through the bridge; its own gradient checked too."""
    model = Seq2Seq(feature_size=3, tgt_vocab=TV, embed_dim=5, hidden_size=6, num_layers=2,
                    cell=cell, dtype="float64", seed=0)
    _, tgt_in, targets = batch()
    f = np.random.default_rng(3).standard_normal((N, 3))

    def loss():
        logits, _, _ = model.forward((f, tgt_in), None, (None, TGT_LEN), grad=False)
        return softmax_cross_entropy(logits, targets, TGT_LEN)[0]

    logits, _, cache = model.forward((f, tgt_in), None, (None, TGT_LEN))
    model.zero_grad()
    df = model.backward(softmax_cross_entropy(logits, targets, TGT_LEN)[1], cache)
    check_sampled_params(model, loss, np.random.default_rng(2), samples=4)
    from gradcheck import numeric_grad
    np.testing.assert_allclose(df, numeric_grad(loss, f), rtol=1e-6, atol=1e-9)


def _ours(model, src, tgt_in, targets, src_len, tgt_len):
    logits, _, cache = model.forward((src, tgt_in), None, (src_len, tgt_len))
    loss, dlogits = softmax_cross_entropy(logits, targets, tgt_len)
    model.zero_grad()
    dfeat = model.backward(dlogits, cache)
    grads = {k: v for k, v in model.grads.items() if k.split(".")[0] not in ("enc", "dec")}
    for name in ("enc", "dec"):
        if name in model.parts:
            grads.update({f"{name}.{k}": v
                          for k, v in grads_to_torch_layout(model.parts[name]).items()})
    return logits, loss, grads, dfeat


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_parity_with_pytorch(case, dtype):
    from seq2seq_torch_reference import run
    model = make(*case, dtype=dtype)
    src, tgt_in, targets = batch()
    ours = _ours(model, src, tgt_in, targets, SRC_LEN, TGT_LEN)
    theirs = run(model, src, tgt_in, targets, SRC_LEN, TGT_LEN)
    _assert_same(ours, theirs, TGT_LEN, dtype)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_feature_source_parity_with_pytorch(cell):
    from seq2seq_torch_reference import run
    model = Seq2Seq(feature_size=3, tgt_vocab=TV, embed_dim=5, hidden_size=6, num_layers=2,
                    cell=cell, dtype="float64", seed=0)
    _, tgt_in, targets = batch()
    f = np.random.default_rng(3).standard_normal((N, 3))
    ours = _ours(model, f, tgt_in, targets, None, TGT_LEN)
    _assert_same(ours, run(model, f, tgt_in, targets, None, TGT_LEN), TGT_LEN, "float64")


def _assert_same(ours, theirs, tgt_len, dtype):
    (lo, loss, grads, df), (tlo, tloss, tgrads, tdf) = ours, theirs
    valid = np.arange(lo.shape[1])[None, :] < tgt_len[:, None]
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == "float64" else dict(rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(lo[valid], tlo[valid], **tol)
    assert np.all(lo[~valid] == 0)          # the head runs on valid target steps only
    assert loss == pytest.approx(tloss, rel=tol["rtol"])
    assert grads.keys() == tgrads.keys()
    for name in grads:
        scale = max(np.abs(tgrads[name]).max(), 1e-3)
        np.testing.assert_allclose(grads[name], tgrads[name], rtol=tol["rtol"],
                                   atol=tol["atol"] * scale * 10, err_msg=name)
    if tdf is not None:
        np.testing.assert_allclose(df, tdf, **tol)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_decode_steps_equal_the_teacher_forced_forward(case):
    model = make(*case)
    src, tgt_in, _ = batch()
    logits, _, cache = model.forward((src, tgt_in), None, (SRC_LEN, None))
    A = cache["attention"]
    mem = model.encode(src, SRC_LEN)
    dstate = model.start(mem)
    for t in range(TT):
        z, dstate, a = model.decode_step(tgt_in[:, t], dstate, mem)
        np.testing.assert_allclose(z, logits[:, t], rtol=1e-12, atol=1e-13)
        if a is not None:
            np.testing.assert_allclose(a, A[:, t], rtol=1e-12, atol=1e-14)
            pad = np.arange(TS)[None, :] >= SRC_LEN[:, None]
            assert np.all(a[pad] == 0.0)


def test_final_state_is_taken_at_each_rows_last_target_step():
    for case in (CASES[0], CASES[4]):                       # whole and stepped decoders
        model = make(*case)
        src, tgt_in, _ = batch()
        _, (h, c), _ = model.forward((src, tgt_in), None, (SRC_LEN, TGT_LEN), grad=False)
        for n in range(N):
            L = TGT_LEN[n]
            _, (h1, c1), _ = model.forward((src[n:n + 1], tgt_in[n:n + 1, :L]), None,
                                           (SRC_LEN[n:n + 1], None), grad=False)
            np.testing.assert_allclose(h[:, n], h1[:, 0], rtol=1e-12, atol=1e-13)
            np.testing.assert_allclose(c[:, n], c1[:, 0], rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_beam_width_one_is_greedy(case):
    model = make(*case, dtype="float32", seed=5)
    src, _, _ = batch(7)
    g = greedy(model, src, SRC_LEN, bos=0, eos=1, max_len=7)
    b = beam_search(model, src, SRC_LEN, bos=0, eos=1, max_len=7, beam=1, alpha=0.0)
    assert g.tokens == b.tokens
    np.testing.assert_allclose(g.scores, b.scores, rtol=1e-12)
    for ga, ba in zip(g.attention, b.attention):
        if ga is None:
            assert ba is None
        else:
            np.testing.assert_array_equal(ga, ba)
            assert ga.shape[1] == TS


def _exhaustive(model, src, src_len, eos, max_len, alpha):
    """The best hypothesis by enumerating every sequence (V = 3, max_len = 3)."""
    mem = model.encode(src, src_len)
    best = (-np.inf, None)
    V = model.head.out_features

    def walk(prefix, dstate, logp):
        nonlocal best
        z, dstate2, _ = model.decode_step(np.array([prefix[-1]]), dstate, mem)
        lp = z[0].astype(np.float64) - np.log(np.exp(z[0].astype(np.float64)).sum())
        for w in range(V):
            L = len(prefix)
            score = logp + lp[w]
            if w == eos or L == max_len:
                norm = score / ((5.0 + L) / 6.0) ** alpha
                if norm > best[0]:
                    best = (norm, prefix[1:] + ([] if w == eos else [w]))
            else:
                walk(prefix + [w], dstate2, score)
    walk([0], model.start(mem), 0.0)
    return best


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_wide_beam_equals_exhaustive_search(alpha):
    model = Seq2Seq(src_vocab=SV, tgt_vocab=3, embed_dim=4, hidden_size=5, cell="gru",
                    attention="general", dtype="float64", seed=3)
    src, _, _ = batch()
    for n in range(N):
        score, tokens = _exhaustive(model, src[n:n + 1], SRC_LEN[n:n + 1], 2, 3, alpha)
        b = beam_search(model, src[n:n + 1], SRC_LEN[n:n + 1], bos=0, eos=2, max_len=3,
                        beam=27, alpha=alpha)
        assert b.tokens[0] == tokens
        assert b.scores[0] == pytest.approx(score, rel=1e-12)


def test_sampling_draws_from_the_softmax_and_is_seeded():
    model = make(*CASES[2], dtype="float64")
    src = np.repeat(batch()[0][:1], 20000, axis=0)
    lens = np.full(20000, 6)
    s = sample(model, src, lens, bos=0, eos=1, max_len=1, rng=np.random.default_rng(0),
               temperature=2.0)
    first = np.array([t[0] if t else 1 for t in s.tokens])
    z, _, _ = model.decode_step(np.array([0]), model.start(model.encode(src[:1], lens[:1])),
                                model.encode(src[:1], lens[:1]))
    p = np.exp(z[0] / 2.0 - (z[0] / 2.0).max())
    p /= p.sum()
    freq = np.bincount(first, minlength=TV) / len(first)
    np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(p * (1 - p) / len(first)).max())
    again = sample(model, src[:50], lens[:50], bos=0, eos=1, max_len=6,
                   rng=np.random.default_rng(0), temperature=2.0)
    assert again.tokens == sample(model, src[:50], lens[:50], bos=0, eos=1, max_len=6,
                                  rng=np.random.default_rng(0), temperature=2.0).tokens
    top1 = sample(model, src[:8], lens[:8], bos=0, eos=1, max_len=6,
                  rng=np.random.default_rng(1), top_k=1)
    assert top1.tokens == greedy(model, src[:8], lens[:8], bos=0, eos=1, max_len=6).tokens


def test_learns_to_reverse_a_sequence():
    """Reverse 3-7 symbols: loss falls clearly and greedy decoding gets most rows exactly."""
    BOS, EOS, PAD, K = 0, 1, 2, 8                   # symbols 3 .. 10
    rng = np.random.default_rng(0)

    def data(n):
        lens = rng.integers(3, 8, n)
        src = np.full((n, 7), PAD)
        tgt = np.full((n, 9), PAD)
        for i, L in enumerate(lens):
            s = rng.integers(3, 3 + K, L)
            src[i, :L] = s
            tgt[i, 0], tgt[i, 1:L + 1], tgt[i, L + 1] = BOS, s[::-1], EOS
        return src, lens, tgt[:, :-1], tgt[:, 1:], lens + 1

    model = Seq2Seq(src_vocab=3 + K, tgt_vocab=3 + K, embed_dim=16, hidden_size=16,
                    bidirectional=True, dec_hidden_size=32, cell="gru", attention="general",
                    dtype="float64", seed=0)
    opt = make_optimizer("adam", model.params, lr=2e-2)
    losses = []
    for _ in range(200):
        src, slen, tin, tout, tlen = data(32)
        logits, _, cache = model.forward((src, tin), None, (slen, tlen), training=True)
        loss, d = softmax_cross_entropy(logits, tout, tlen)
        model.zero_grad()
        model.backward(d, cache)
        clip_grad_norm(model.grads, 5.0)
        opt.step(model.grads)
        losses.append(loss)
    src, slen, _, tout, tlen = data(200)
    out = greedy(model, src, slen, bos=BOS, eos=EOS, max_len=9)
    exact = np.mean([o == list(t[:L - 1]) for o, t, L in zip(out.tokens, tout, tlen)])
    assert np.mean(losses[:10]) > 1.5 and np.mean(losses[-10:]) < 0.2, losses[::20]
    assert exact >= 0.9, exact


def test_save_and_load_rebuild_the_model(tmp_path):
    from rnnkit.models.io import load, save
    model = make(*CASES[5], dtype="float32")
    save(model, tmp_path / "m")
    again = load(tmp_path / "m")
    assert isinstance(again, Seq2Seq) and again.config == model.config
    src, tgt_in, _ = batch()
    a, _, _ = model.forward((src, tgt_in), None, (SRC_LEN, None), grad=False)
    b, _, _ = again.forward((src, tgt_in), None, (SRC_LEN, None), grad=False)
    np.testing.assert_array_equal(a, b)
    assert isinstance(build_model("Seq2Seq", model.config), Seq2Seq)


def test_bad_input_raises():
    model = make(*CASES[2], dtype="float32")
    src, tgt_in, _ = batch()
    bad = [((src[:, :0], tgt_in), None, "src"),
           ((src, tgt_in[:, :0]), None, "tgt_in"),
           ((src, tgt_in), (np.array([7, 1, 1, 1]), None), "lengths"),
           ((src, tgt_in), (SRC_LEN, np.array([0, 1, 1, 1])), "lengths"),
           ((src, tgt_in), (SRC_LEN.astype(float), None), "lengths"),
           ((src.astype(np.float32), tgt_in), None, "ids"),
           ((src, tgt_in.astype(np.float32)), None, "ids"),
           ((src + SV, tgt_in), None, "ids"),
           ((src[:3], tgt_in), None, "src"),
           (src, None, "inputs"),
           ((src, tgt_in), SRC_LEN, "lengths")]
    for inputs, lengths, name in bad:
        with pytest.raises(RnnkitError, match=name):
            model.forward(inputs, None, lengths)
    with pytest.raises(RnnkitError, match="state"):
        model.forward((src, tgt_in), np.zeros((2, N, 8), np.float32))
    feat = Seq2Seq(feature_size=3, tgt_vocab=TV, hidden_size=4, seed=0)
    with pytest.raises(RnnkitError, match="src"):
        feat.forward((np.zeros((N, 3)), tgt_in))            # float64 features, float32 model
    for kw, name in ((dict(attention="luong"), "attention"), (dict(cell="tcn"), "cell"),
                     (dict(bridge=False), "bridge"), (dict(feature_size=3), "src_vocab"),
                     (dict(hidden_size=3, attention="dot"), "key_size")):
        with pytest.raises(RnnkitError, match=name):
            Seq2Seq(**{**dict(src_vocab=SV, tgt_vocab=TV, hidden_size=4, bidirectional=True,
                              dec_hidden_size=8), **kw})
    with pytest.raises(RnnkitError, match="beam"):
        beam_search(model, src, SRC_LEN, bos=0, eos=1, max_len=5, beam=0)
    with pytest.raises(RnnkitError, match="eos"):
        greedy(model, src, SRC_LEN, bos=0, eos=TV, max_len=5)
    with pytest.raises(RnnkitError, match="max_len"):
        greedy(model, src, SRC_LEN, bos=0, eos=1, max_len=0)
    with pytest.raises(RnnkitError, match="temperature"):
        sample(model, src, SRC_LEN, bos=0, eos=1, max_len=3, rng=np.random.default_rng(),
               temperature=0)


def test_trains_with_the_trainer():
    """The generic Trainer drives a Seq2Seq: inputs (src, tgt_in), lengths (src, tgt)."""
    from rnnkit.data.batch import Batch
    from rnnkit.train import Trainer, TrainConfig

    class Pairs:
        stateful = False

        def __init__(self, n):
            rng = np.random.default_rng(n)
            self.data = [(rng.integers(0, SV, (8, TS)), rng.integers(0, TV, (8, TT + 1)),
                          rng.integers(1, TS + 1, 8), rng.integers(1, TT + 1, 8))
                         for _ in range(n)]

        def num_batches(self, epoch):
            return len(self.data)

        def batches(self, epoch, start=0):
            for src, tgt, sl, tl in self.data[start:]:
                yield Batch((src, tgt[:, :-1]), tgt[:, 1:], (sl, tl))

    def loss_fn(out, y, lens):
        return softmax_cross_entropy(out, y, None if lens is None else lens[1])

    model = make(*CASES[5], dtype="float32")
    train, val = Pairs(4), Pairs(2)
    trainer = Trainer(model, loss_fn, make_optimizer("adam", model.params, lr=1e-2), train,
                      val, config=TrainConfig(epochs=15, progress=False))
    before = trainer.evaluate(train)
    trainer.fit()
    assert trainer.evaluate(train) < 0.8 * before          # random pairs, memorised slowly
