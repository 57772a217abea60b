"""Step tables (rnnkit.diagnostics.trace, `rnnkit trace`): the notes' worked examples as
golden numbers, the pre-activations pinned to the cells' gates, and the backward table's
sums pinned to the layers' own BPTT."""
import math

import numpy as np
import pytest

import rnnkit
from rnnkit import RnnkitError
from rnnkit.cli import main
from rnnkit.diagnostics import trace_cell, trace_model
from rnnkit.diagnostics.tool import EXAMPLES
from rnnkit.layers import scan
from rnnkit.models import LanguageModel, SequenceModel

NOTE_A = [0.6, 1.261, 1.855]                 # the note's arguments of tanh
NOTE_H = [0.537, 0.850, 0.952]
NOTE_Y = [0.415, 0.540, 0.581]


def note000():
    ex = EXAMPLES["note000"]
    return trace_cell(ex["cell"], ex["params"], ex["x"], head=ex["head"], loss=ex["loss"])


def by_hand():
    """Note 000's recursion in Python floats, and BPTT of L = sum_t y_t by the chain rule."""
    h, hs = 0.0, []
    for x in (1.0, 2.0, 3.0):
        h = math.tanh(0.5 * x + 0.3 * h + 0.1)
        hs.append(h)
    d_next, g_xh, g_hh, dhs = 0.0, 0.0, 0.0, []
    for t in (2, 1, 0):
        dh = 0.4 + d_next                   # dL/dh_t: from y_t (W_hy) and from step t + 1
        dhs.append(dh)
        da = dh * (1 - hs[t] ** 2)
        g_xh += da * (t + 1.0)
        g_hh += da * (hs[t - 1] if t else 0.0)
        d_next = da * 0.3
    return hs, dhs, g_xh, g_hh


def test_note_000_table_matches_the_note_and_the_exact_recursion():
    tr = note000()
    a, h, y = (tr.column(c)[:, 0] for c in ("a", "h", "y"))
    np.testing.assert_allclose(a, NOTE_A, atol=5e-4, rtol=0)        # the note's 3 decimals
    np.testing.assert_allclose(h, NOTE_H, atol=0.002, rtol=0)       # (it carries h_2 = 0.85)
    np.testing.assert_allclose(y, NOTE_Y, atol=0.001, rtol=0)
    assert [f"{v:.3f}" for v in h[[0, 2]]] == ["0.537", "0.952"]
    assert [f"{v:.3f}" for v in y[[0, 2]]] == ["0.415", "0.581"]
    hs, _, _, _ = by_hand()
    np.testing.assert_allclose(h, hs, rtol=0, atol=1e-15)
    np.testing.assert_allclose(y, [0.4 * v + 0.2 for v in hs], rtol=0, atol=1e-15)


def test_note_000_backward_table_is_bptt_by_hand():
    tr = note000()
    hs, dhs, g_xh, g_hh = by_hand()
    assert [r["t"] for r in tr.backward] == [3, 2, 1]
    np.testing.assert_allclose([r["dL/dh"][0] for r in tr.backward], dhs, rtol=0, atol=1e-15)
    last = tr.backward[-1]
    assert last["dL/dW_xh"][0, 0] == pytest.approx(g_xh, abs=1e-14)
    assert last["dL/dW_hh"][0, 0] == pytest.approx(g_hh, abs=1e-14)
    assert last["dL/dW_hy"][0, 0] == pytest.approx(sum(hs), abs=1e-14)
    assert last["dL/db_y"][0] == 3.0 and tr.loss == pytest.approx(sum(0.4 * h + 0.2 for h in hs))
    # the first row (t = T) holds step T's share alone: da_T x_T
    assert tr.backward[0]["dL/dW_xh"][0, 0] == pytest.approx(0.4 * (1 - hs[2] ** 2) * 3.0)


def test_note_004_saturates_tanh_and_no_gradient_reaches_the_recurrent_weights():
    ex = EXAMPLES["note004"]
    tr = trace_cell(ex["cell"], ex["params"], ex["x"], head=ex["head"], loss=ex["loss"],
                    targets=ex["targets"], readout=ex["readout"])
    a = tr.column("a")
    np.testing.assert_allclose(a[:, 0], [50.0, 51.4, 52.4, 53.4, 54.4], rtol=0, atol=1e-12)
    assert np.array_equal(tr.column("h"), np.ones((5, 2)))        # tanh(50) == 1 in float64
    assert "y" not in tr.steps[0] and tr.steps[-1]["y"][0] == 0.0  # W_y = 0: y = 0
    assert tr.loss == 110.0 ** 2
    last = tr.backward[-1]
    assert last["dL/db_y"][0] == -220.0
    np.testing.assert_array_equal(last["dL/dW_hy"], [[-220.0, -220.0]])
    for name in ("dL/dW_xh", "dL/dW_hh", "dL/db_xh"):
        assert not last[name].any(), name


@pytest.mark.parametrize("cell,options", [("rnn", {}), ("lstm", {}), ("lstm", {"peepholes": True}),
                                          ("gru", {}), ("gru", {"reset_after": False}),
                                          ("indrnn", {})])
def test_pre_activations_are_the_arguments_of_the_gates(cell, options):
    rng = np.random.default_rng(1)
    spec = rnnkit.cells.get(cell)
    p = {k: rng.standard_normal(s) for k, (s, _) in spec.params(2, 3, **options).items()}
    tr = trace_cell(cell, p, rng.standard_normal((4, 2)), options=options, backward=False)
    sig = lambda a: 1 / (1 + np.exp(-a))
    for row in tr.steps:
        if cell == "rnn":
            np.testing.assert_allclose(np.tanh(row["a"]), row["h"], atol=1e-14)
        elif cell == "indrnn":
            np.testing.assert_allclose(np.maximum(row["a"], 0), row["h"], atol=1e-14)
        elif cell == "lstm":
            for g in ("i", "f", "o"):
                np.testing.assert_allclose(sig(row[f"a_{g}"]), row[g], atol=1e-14)
            np.testing.assert_allclose(np.tanh(row["a_c~"]), row["c~"], atol=1e-14)
            np.testing.assert_allclose(row["o"] * np.tanh(row["c"]), row["h"], atol=1e-14)
        else:
            for g in ("r", "z"):
                np.testing.assert_allclose(sig(row[f"a_{g}"]), row[g], atol=1e-14)
            np.testing.assert_allclose(np.tanh(row["a_h~"]), row["h~"], atol=1e-14)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("readout", ["steps", "last"])
def test_trace_of_a_model_matches_the_model_forward_and_backward(cell, readout):
    """trace_model's h, y and its summed gradients are the SequenceModel's own (float64)."""
    model = SequenceModel(input_size=2, hidden_size=3, num_layers=2, cell=cell,
                                 output_size=2, readout=readout, dtype="float64", seed=4)
    x = np.random.default_rng(5).standard_normal((6, 2))
    targets = np.random.default_rng(6).standard_normal(2)       # the last step's
    tr = trace_model(model, x, layer=1, loss="mse", targets=targets)
    with scan.use("reference"):
        y, _, cache = model.forward(x[None])
        out = y[0, -1] if readout == "steps" else y[0]
        dy = np.zeros_like(y)
        (dy[0, -1] if readout == "steps" else dy[0])[...] = 2 * (out - targets)
        model.zero_grad()
        model.backward(dy, cache)
    np.testing.assert_allclose(tr.steps[-1]["y"], out, atol=1e-12)
    assert tr.loss == pytest.approx(float(((out - targets) ** 2).sum()), abs=1e-12)
    last = tr.backward[-1]
    for name in ("W_xh", "W_hh", "b_xh", "b_hh"):
        np.testing.assert_allclose(last[f"dL/d{name}"], model.grads[f"rnn.l1.{name}"],
                                   atol=1e-12, err_msg=name)
    np.testing.assert_allclose(last["dL/dW_hy"], model.grads["head.W_hy"], atol=1e-12)


def test_language_model_trace_reads_token_ids():
    model = LanguageModel(7, 4, 5, cell="gru", dtype=np.float64, seed=0)
    tr = trace_model(model, np.array([1, 2, 3]), loss="xent", targets=[2, 3, 4])
    y, _, _ = model.forward(np.array([[1, 2, 3]]), grad=False)
    np.testing.assert_allclose(tr.column("y"), y[0], atol=1e-12)


def test_bad_arguments_are_one_error_naming_them():
    ex = EXAMPLES["note000"]
    with pytest.raises(RnnkitError, match=r"params\['W_hh'\]: expected shape \(1, 1\)"):
        trace_cell("rnn", {**ex["params"], "W_hh": [[0.3, 0.1]]}, ex["x"])
    with pytest.raises(RnnkitError, match="targets: expected 3 values"):
        trace_cell("rnn", ex["params"], ex["x"], head=ex["head"], loss="mse", targets=[1, 2])
    with pytest.raises(RnnkitError, match="model: expected a recurrent layer reading forwards"):
        trace_model(rnnkit.GRU(1, 2, bidirectional=True), [[1.0]])


def test_cli_prints_note_000_table(capsys):
    assert main(["trace", "--example", "note000"]) == 0
    out = capsys.readouterr().out.splitlines()
    table = out[out.index(next(l for l in out if l.split() == ["t", "x", "a", "h", "y"])):][:4]
    assert table[1].split() == ["1", "1.000", "0.600", "0.537", "0.415"]
    assert table[2].split() == ["2", "2.000", "1.261", "0.851", "0.541"]
    assert table[3].split() == ["3", "3.000", "1.855", "0.952", "0.581"]
    assert any(l.split()[:3] == ["1", "1.000", "0.434"] for l in out)      # dL/dh_1


def test_cli_scalars_give_the_example_and_note_004(capsys):
    assert main(["trace", "--cell", "rnn", "--x", "1", "2", "3", "--W_xh", "0.5", "--W_hh",
                 "0.3", "--b_h", "0.1", "--W_hy", "0.4", "--b_y", "0.2"]) == 0
    by_flags = capsys.readouterr().out.splitlines()[1:]
    assert main(["trace", "--example", "note000"]) == 0
    example = capsys.readouterr().out.splitlines()
    assert by_flags[:4] == example[-len(by_flags):][:4]
    assert main(["trace", "--example", "note004", "--no-backward"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].split() == ["5", "108.000", "[54.400,", "54.400]", "[1.000,", "1.000]",
                               "0.000"]


def test_cli_errors_are_one_line(capsys):
    assert main(["trace", "--cell", "lstm", "--x", "1", "--W_xh", "1", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["rnnkit trace: --W_xh: expected 1 or 4 numbers (shape (4, 1)), got 2"]
    assert main(["trace", "--example", "note000", "--flow"]) == 2
    assert "one of --example, --model, --run, --flow" in capsys.readouterr().err


def test_cli_traces_a_saved_model(tmp_path, capsys):
    model = SequenceModel(input_size=1, hidden_size=2, cell="lstm", seed=0)
    rnnkit.save(model, tmp_path / "m")
    assert main(["trace", "--model", str(tmp_path / "m"), "--x", "1", "2", "--targets",
                 "0.5"]) == 0
    out = capsys.readouterr().out
    assert "a_i" in out and "dL/dc" in out


def test_cli_traces_a_run_of_the_text_app(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_text("hello world, a small text. " * 200, "utf-8")
    run = tmp_path / "run"
    assert main(["text", "train", "--text", str(text), "--run-dir", str(run), "--max-steps", "2",
                 "--no-progress", "--prime", "hello", "--hidden-size", "4", "--embed-dim", "3",
                 "--sample-length", "0", "--batch-size", "4", "--seq-len", "8"]) == 0
    capsys.readouterr()
    assert main(["trace", "--run", str(run), "--text", "hello"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"# {run}: lstm layer 0 reading 'hell'")
    assert [line.split()[0] for line in out[1:6]] == ["t", "1", "2", "3", "4"]
    assert "cross-entropy" in out[0] and any("xent" in line for line in out)
