"""rnnkit.save / rnnkit.load: safetensors weights + JSON settings, readable without rnnkit."""
from __future__ import annotations

import json

import numpy as np
import pytest

import rnnkit
from rnnkit.errors import RnnkitError
from rnnkit.models import LanguageModel, SequenceModel

import safetensors.numpy as safetensors_numpy  # noqa: E402

MODELS = {
    "classifier": lambda: SequenceModel(vocab_size=11, embed_dim=4, hidden_size=5,
                                        num_layers=2, cell="gru", bidirectional=True,
                                        output_size=3, readout="last",
                                        output_activation="softmax",
                                        cell_options={"reset_after": False}, seed=1),
    "regressor64": lambda: SequenceModel(input_size=2, hidden_size=6, cell="lstm",
                                         cell_options={"peepholes": True}, dtype="float64",
                                         seed=2),
    "language_model64": lambda: LanguageModel(13, embed_dim=4, hidden_size=6, cell="rnn",
                                              dtype=np.float64, seed=3),
    "rnn_layer": lambda: rnnkit.RNN(3, 4, 2, nonlinearity="relu", reverse=True, seed=4),
    "lstm_layer": lambda: rnnkit.LSTM(3, 4, 1, bidirectional=True, peepholes=True,
                                      dtype=np.float64, seed=5),
    "gru_layer": lambda: rnnkit.GRU(3, 4, 3, dropout=0.1, seed=6),
}


def _inputs(model):
    rng = np.random.default_rng(0)
    if getattr(model, "embed", None) is not None:
        return rng.integers(0, model.embed.num_embeddings, (2, 5))
    d = model.rnn.input_size if hasattr(model, "rnn") else model.input_size
    return rng.standard_normal((2, 5, d)).astype(model.dtype)


@pytest.mark.parametrize("name", list(MODELS))
def test_round_trip_is_exact(name, tmp_path):
    model = MODELS[name]()
    rng = np.random.default_rng(7)
    for p in model.params.values():            # peepholes too (zero at init)
        p[...] = rng.normal(size=p.shape)
    settings = rnnkit.save(model, tmp_path / name)
    assert settings == tmp_path / name / "model.json"
    again = rnnkit.load(tmp_path / name)
    assert type(again) is type(model)
    if hasattr(model, "config"):
        assert again.config == model.config
    assert list(again.params) == list(model.params)
    for k, v in model.params.items():
        assert again.params[k].dtype == v.dtype and np.array_equal(again.params[k], v), k
    x, lengths = _inputs(model), np.array([5, 3])
    a, b = model.forward(x, lengths=lengths), again.forward(x, lengths=lengths)
    assert np.array_equal(a[0], b[0])


def test_files_are_readable_with_numpy_safetensors_and_json_alone(tmp_path):
    model = MODELS["classifier"]()
    rnnkit.save(model, tmp_path / "m.safetensors")          # file form: m.safetensors + m.json
    arrays = safetensors_numpy.load_file(str(tmp_path / "m.safetensors"))
    assert set(arrays) == set(model.params)
    for k, v in model.params.items():
        assert np.array_equal(arrays[k], v)
    meta = json.loads((tmp_path / "m.json").read_text())
    assert meta["format"] == "rnnkit-model" and meta["class"] == "SequenceModel"
    assert meta["config"] == model.config and meta["dtype"] == "float32"
    assert meta["params"]["rnn.l0.W_xh"] == [15, 4]
    from safetensors import safe_open
    with safe_open(str(tmp_path / "m.safetensors"), "np") as f:
        assert json.loads(f.metadata()["rnnkit"]) == meta
    for path in (tmp_path / "m.safetensors", tmp_path / "m.json"):
        again = rnnkit.load(path)
        assert np.array_equal(again.params["head.W_hy"], model.params["head.W_hy"])


def test_errors_name_the_file_and_what_is_wrong(tmp_path):
    with pytest.raises(RnnkitError, match=r"^model: expected an rnnkit model"):
        rnnkit.save(object(), tmp_path / "x")
    with pytest.raises(RnnkitError, match=r"model.json: expected an existing JSON file"):
        rnnkit.load(tmp_path / "missing")
    model = MODELS["gru_layer"]()
    rnnkit.save(model, tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    (tmp_path / "m" / "model.json").write_text(json.dumps(dict(meta, format="other")))
    with pytest.raises(RnnkitError, match=r"expected an rnnkit model file"):
        rnnkit.load(tmp_path / "m")
    meta["config"]["hidden_size"] = 5
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(RnnkitError, match=r"expected l0.W_xh of shape \(15, 3\) and dtype "
                                          r"float32, got shape \(12, 3\)"):
        rnnkit.load(tmp_path / "m")
    meta["config"]["hidden_size"] = 4
    meta["config"]["colour"] = "red"
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(RnnkitError, match=r"expected the settings of an rnnkit GRU"):
        rnnkit.load(tmp_path / "m")
    del meta["config"]["colour"]
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    (tmp_path / "m" / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(RnnkitError, match=r"model.safetensors: expected a safetensors file"):
        rnnkit.load(tmp_path / "m")
