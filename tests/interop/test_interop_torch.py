"""from_torch / to_torch: whole torch.nn.RNN/LSTM/GRU modules and Embedding -> RNN -> Linear
models. Forward outputs agree with PyTorch within 1e-6 in float32 (and 1e-12 in float64) for
any num_layers, bidirectional, batch_first either way, initial states and variable lengths;
round trips are exact (module settings and bit-identical state dicts)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import rnnkit
from rnnkit.errors import RnnkitError
from rnnkit.interop.torch_models import from_torch, to_torch
from rnnkit.models import SequenceModel

import torch  # noqa: E402  (the test extra installs it; must run in CI)
torch.set_num_threads(1)

N, T, D, H, V = 4, 6, 3, 5, 9
LENS = np.array([6, 2, 5, 1])                 # unsorted, includes T and 1
TOL = {torch.float32: dict(rtol=1e-6, atol=1e-6), torch.float64: dict(rtol=1e-12, atol=1e-12)}
KINDS = {"rnn_tanh": (torch.nn.RNN, {"nonlinearity": "tanh"}),
         "rnn_relu": (torch.nn.RNN, {"nonlinearity": "relu"}),
         "lstm": (torch.nn.LSTM, {}), "gru": (torch.nn.GRU, {})}


def _close(name, got, want):
    want = want.detach().numpy() if isinstance(want, torch.Tensor) else want
    assert got.shape == want.shape, f"{name}: {got.shape} != {want.shape}"
    np.testing.assert_allclose(got, want, err_msg=name,
                               **TOL[torch.float32 if want.dtype == np.float32 else torch.float64])


def torch_layer_forward(module, x, state=None, lengths=None):
    """Run a recurrent module on batch-first x (N, T, D) -> (out (N, T, dirs*H), final)."""
    xt = torch.from_numpy(x)
    if not module.batch_first:
        xt = xt.transpose(0, 1)
    if lengths is not None:
        xt = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths),
                                                     batch_first=module.batch_first,
                                                     enforce_sorted=False)
    st = None
    if state is not None:
        st = tuple(map(torch.from_numpy, state)) if isinstance(state, tuple) else \
            torch.from_numpy(state)
    with torch.no_grad():
        out, final = module(xt, st)
    if lengths is not None:
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=module.batch_first,
                                                        total_length=x.shape[1])
    if not module.batch_first:
        out = out.transpose(0, 1)
    return out, final


def settings(module) -> dict:
    keys = ("input_size", "hidden_size", "num_layers", "bidirectional", "batch_first",
            "dropout", "bias", "proj_size")
    out = {k: getattr(module, k) for k in keys}
    out["type"] = type(module)
    if isinstance(module, torch.nn.RNN):
        out["nonlinearity"] = module.nonlinearity
    return out


def state_dicts_equal(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


# --------------------------------------------------------------------------- layers

@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("num_layers", [1, 3])
@pytest.mark.parametrize("kind", list(KINDS))
def test_layer_forward_matches_torch(kind, num_layers, bidirectional, batch_first):
    torch.manual_seed(0)
    cls, kw = KINDS[kind]
    module = cls(D, H, num_layers, bidirectional=bidirectional, batch_first=batch_first,
                 **kw).eval()
    layer = from_torch(module)
    assert type(layer).__name__ == cls.__name__ and layer.dtype == np.float32
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, T, D)).astype(np.float32)
    S = (num_layers * layer.dirs, N, H)
    h0, c0 = rng.standard_normal(S).astype(np.float32), rng.standard_normal(S).astype(np.float32)
    state = (h0, c0) if kind == "lstm" else h0
    for st, lengths in ((None, None), (state, LENS)):
        out, final, _ = layer.forward(x, st, lengths)
        out_t, final_t = torch_layer_forward(module, x, st, lengths)
        _close(f"{kind} out", out, out_t)
        for i, (a, b) in enumerate(zip(final if kind == "lstm" else (final,),
                                       final_t if kind == "lstm" else (final_t,))):
            _close(f"{kind} final {i}", a, b)
    back = to_torch(layer, batch_first=batch_first)         # exact round trip
    assert settings(back) == settings(module)
    state_dicts_equal(back, module)


def test_float64_bias_free_and_dropout_modules():
    torch.manual_seed(1)
    module = torch.nn.GRU(D, H, 2, bias=False, dropout=0.25, batch_first=True).double()
    layer = from_torch(module)
    assert layer.dtype == np.float64 and layer.dropout == 0.25
    assert not any(v.any() for k, v in layer.params.items() if ".b_" in k)
    x = np.random.default_rng(2).standard_normal((N, T, D))
    module.eval()
    out, final, _ = layer.forward(x, None, LENS)
    out_t, final_t = torch_layer_forward(module, x, None, LENS)
    _close("gru float64 out", out, out_t)
    _close("gru float64 h_n", final, final_t)
    back = to_torch(layer, bias=False)
    assert settings(back) == settings(module)
    state_dicts_equal(back, module)


def test_rnnkit_layer_to_torch_and_back_is_bit_exact():
    for layer in (rnnkit.LSTM(D, H, 2, bidirectional=True, seed=0),
                  rnnkit.GRU(D, H, 3, dtype=np.float64, seed=1),
                  rnnkit.RNN(D, H, 2, nonlinearity="relu", bidirectional=True, seed=2)):
        again = from_torch(to_torch(layer, batch_first=False))
        assert type(again) is type(layer) and again.dtype == layer.dtype
        for k, v in layer.params.items():
            assert np.array_equal(again.params[k], v), k


# --------------------------------------------------------------------------- models

class Tagger(torch.nn.Module):
    """Embedding -> RNN -> Linear, the way people write it (children in this order)."""

    def __init__(self, kind, bidirectional, batch_first, readout, vocab=True):
        super().__init__()
        cls, kw = KINDS[kind]
        self.emb = torch.nn.Embedding(V, D) if vocab else None
        self.rnn = cls(D, H, 2, bidirectional=bidirectional, batch_first=batch_first, **kw)
        self.fc = torch.nn.Linear((2 if bidirectional else 1) * H, 3)
        self.readout, self.lstm = readout, kind == "lstm"

    def forward(self, inputs, lengths=None):
        x = self.emb(inputs) if self.emb is not None else inputs          # (N, T, D)
        bf = self.rnn.batch_first
        xs = x if bf else x.transpose(0, 1)
        if lengths is not None:
            xs = torch.nn.utils.rnn.pack_padded_sequence(xs, torch.tensor(lengths),
                                                         batch_first=bf, enforce_sorted=False)
        out, final = self.rnn(xs)
        if self.readout == "last":
            h_n = final[0] if self.lstm else final
            top = torch.cat([h_n[-2], h_n[-1]], 1) if self.rnn.bidirectional else h_n[-1]
            return torch.softmax(self.fc(top), -1)
        if lengths is not None:
            out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=bf,
                                                            total_length=x.shape[1])
        out = out if bf else out.transpose(0, 1)
        return torch.softmax(self.fc(out), -1)


@pytest.mark.parametrize("readout", ["steps", "last"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
def test_model_forward_matches_torch(kind, bidirectional, readout):
    torch.manual_seed(3)
    batch_first = readout == "steps"                   # both layouts across the cases
    tagger = Tagger(kind, bidirectional, batch_first, readout).eval()
    model = from_torch(tagger, readout=readout, output_activation="softmax")
    assert isinstance(model, SequenceModel) and model.config["vocab_size"] == V
    ids = np.random.default_rng(4).integers(0, V, (N, T))
    for lengths in (None, LENS):
        y, _, _ = model.forward(ids, lengths=lengths)
        with torch.no_grad():
            want = tagger(torch.from_numpy(ids), lengths)
        _close(f"{kind} {readout} lengths={lengths is not None}", y, want)
    emb, rnn, fc = to_torch(model, batch_first=batch_first)           # exact round trip
    for mine, theirs in ((emb, tagger.emb), (rnn, tagger.rnn), (fc, tagger.fc)):
        assert type(mine) is type(theirs)
        state_dicts_equal(mine, theirs)
    assert settings(rnn) == settings(tagger.rnn)


def test_containers_and_feature_models():
    torch.manual_seed(5)
    tagger = Tagger("gru", True, True, "steps", vocab=False).eval()
    x = np.random.default_rng(6).standard_normal((N, T, D)).astype(np.float32)
    with torch.no_grad():
        want = tagger(torch.from_numpy(x), LENS)
    for parts in ((tagger.rnn, tagger.fc), [tagger.rnn, tagger.fc],
                  torch.nn.Sequential(tagger.rnn, tagger.fc),
                  torch.nn.ModuleList([tagger.rnn, tagger.fc])):
        model = from_torch(parts, output_activation="softmax")
        assert model.embed is None and model.config["input_size"] == D
        _close(type(parts).__name__, model.forward(x, lengths=LENS)[0], want)
    rnn, fc = to_torch(model)
    state_dicts_equal(rnn, tagger.rnn)
    state_dicts_equal(fc, tagger.fc)
    # rnnkit model -> torch -> rnnkit: bit-exact parameters, same settings
    lm = SequenceModel(vocab_size=V, embed_dim=D, hidden_size=H, num_layers=2, cell="lstm",
                       output_size=V, dtype="float64", seed=0)
    again = from_torch(to_torch(lm))
    assert again.config == lm.config
    for k, v in lm.params.items():
        assert np.array_equal(again.params[k], v), k


def test_errors_name_what_cannot_be_converted():
    lstm = torch.nn.LSTM(D, H, proj_size=2)
    with pytest.raises(RnnkitError, match=r"^LSTM.proj_size: expected 0"):
        from_torch(lstm)
    rnn, fc = torch.nn.GRU(D, H), torch.nn.Linear(H, 2)
    with pytest.raises(RnnkitError, match=r"^modules: expected \[nn.Embedding,\].*got "
                                          r"\('Linear', 'GRU'\)"):
        from_torch((fc, rnn))
    with pytest.raises(RnnkitError, match=r"got \('GRU', 'Dropout', 'Linear'\)"):
        from_torch(torch.nn.Sequential(rnn, torch.nn.Dropout(), fc))
    with pytest.raises(RnnkitError, match=r"^Linear.in_features: expected 5"):
        from_torch((rnn, torch.nn.Linear(3, 2)))
    with pytest.raises(RnnkitError, match=r"^Embedding.embedding_dim: expected 3"):
        from_torch((torch.nn.Embedding(4, 7), rnn, fc))
    with pytest.raises(RnnkitError, match=r"^Embedding.max_norm: expected None"):
        from_torch((torch.nn.Embedding(4, D, max_norm=1.0), rnn, fc))
    with pytest.raises(RnnkitError, match=r"^modules: expected a torch.nn"):
        from_torch("lstm")
    with pytest.raises(RnnkitError, match=r"^GRU: expected float32 or float64"):
        from_torch(torch.nn.GRU(D, H).half())
    with pytest.raises(RnnkitError, match=r"peepholes"):
        to_torch(rnnkit.LSTM(D, H, peepholes=True, seed=0))
    with pytest.raises(RnnkitError, match=r"reset_after=True"):
        to_torch(rnnkit.GRU(D, H, reset_after=False, seed=0))
    with pytest.raises(RnnkitError, match=r"^bias: expected True \(the layer has nonzero"):
        to_torch(rnnkit.GRU(D, H, seed=0), bias=False)
    with pytest.raises(RnnkitError, match=r"^obj: expected an rnnkit"):
        to_torch(object())


def test_torch_is_imported_only_by_the_conversion_functions():
    code = ("import sys, rnnkit, rnnkit.interop.torch_models, rnnkit.interop.torch_weights; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
