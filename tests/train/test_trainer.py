"""The trainer: determinism, truncated BPTT, exact resume in a fresh process, safe checkpoints."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnkit import RnnkitError
from rnnkit.apps import char_lm
from rnnkit.data import Batch
from rnnkit.losses import softmax_cross_entropy
from rnnkit.models import LanguageModel
from rnnkit.optim import make_optimizer
from rnnkit.serialize import load_arrays
from rnnkit.train import Callback, Trainer, TrainConfig, read_metrics
from rnnkit.train.checkpoint import latest_checkpoint, load_checkpoint
from trainers import TEXT, ListBatches, make_trainer

def test_same_seed_gives_identical_weights_and_another_seed_does_not():
    a, b, c = (make_trainer(seed=s, max_steps=12) for s in (1, 1, 2))
    for t in (a, b, c):
        t.fit()
    for name in a.model.params:
        np.testing.assert_array_equal(a.model.params[name], b.model.params[name])
    assert any(not np.array_equal(a.model.params[n], c.model.params[n]) for n in a.model.params)


def _lm_batch(T=12, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, 6, (3, T + 1))
    return Batch(ids[:, :-1], ids[:, 1:])


def _chunk_trainer(bptt, batch):
    model = LanguageModel(6, 4, 5, cell="gru", dtype=np.float64, seed=3)
    opt = make_optimizer("sgd", model.params, lr=0.5)
    return Trainer(model, softmax_cross_entropy, opt, ListBatches([batch]), config=TrainConfig(
        max_steps=1, bptt=bptt, clip_norm=0, progress=False), log=lambda *a: None)


def test_truncated_bptt_with_the_whole_sequence_as_chunk_is_full_bptt():
    batch = _lm_batch()
    full, whole = _chunk_trainer(0, batch), _chunk_trainer(12, batch)
    full.fit()
    whole.fit()
    for n in full.model.params:
        np.testing.assert_array_equal(full.model.params[n], whole.model.params[n])


def test_truncated_bptt_carries_the_state_across_chunks_and_stops_the_gradient():
    batch = _lm_batch()
    trainer = _chunk_trainer(5, batch)
    trainer.fit()
    # by hand: chunks [0:5], [5:10], [10:12], one SGD step each, state carried, not differentiated
    model = LanguageModel(6, 4, 5, cell="gru", dtype=np.float64, seed=3)
    state = None
    for s in (0, 5, 10):
        model.zero_grad()
        logits, state, cache = model.forward(batch.inputs[:, s:s + 5], state)
        _, d = softmax_cross_entropy(logits, batch.targets[:, s:s + 5])
        model.backward(d, cache)
        for n, p in model.params.items():
            p -= 0.5 * model.grads[n]
    for n in model.params:
        np.testing.assert_allclose(trainer.model.params[n], model.params[n], rtol=1e-12, atol=1e-14)
    # and not carrying the state would have given other weights
    fresh = LanguageModel(6, 4, 5, cell="gru", dtype=np.float64, seed=3)
    for s in (0, 5, 10):
        fresh.zero_grad()
        logits, _, cache = fresh.forward(batch.inputs[:, s:s + 5], None)
        fresh.backward(softmax_cross_entropy(logits, batch.targets[:, s:s + 5])[1], cache)
        for n, p in fresh.params.items():
            p -= 0.5 * fresh.grads[n]
    assert not np.allclose(fresh.params["rnn.l0.W_hh"], model.params["rnn.l0.W_hh"])


def test_stateful_source_carries_state_between_batches_within_an_epoch():
    seen = []

    class Spy(Callback):
        def on_step_end(self, trainer, logs):
            seen.append(None if trainer.carry is None else trainer.carry[0].copy())

    trainer = make_trainer(max_steps=3)
    trainer.callbacks.append(Spy())
    carried = []
    original = trainer.model.forward

    def forward(inputs, state, lengths, **kw):
        carried.append(state)
        return original(inputs, state, lengths, **kw)

    trainer.model.forward = forward
    trainer.fit()
    assert carried[0] is None
    np.testing.assert_array_equal(carried[1][0], seen[0])     # batch 2 starts where 1 ended
    np.testing.assert_array_equal(carried[2][0], seen[1])


def test_resume_in_a_fresh_process_is_bit_identical(tmp_path):
    cfg = char_lm.CharLMConfig(hidden_size=16, embed_dim=8, num_layers=2, dropout=0.2,
                               batch_size=4, seq_len=16, schedule="cosine", sample_length=5)
    text_file = tmp_path / "text.txt"
    text_file.write_text(TEXT, "utf-8")
    cfg.text = str(text_file)
    tcfg = TrainConfig(max_steps=20, checkpoint_every=12, val_every=5, progress=False)
    run_a = tmp_path / "a"
    char_lm.train(cfg, tcfg, run_a, log=lambda *a: None)

    run_b = tmp_path / "b"                                     # the run as it was at step 12
    shutil.copytree(run_a, run_b)
    (run_b / "checkpoints" / "latest.json").write_text(json.dumps({"step": 12}))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    subprocess.run([sys.executable, "-m", "rnnkit", "resume", str(run_b)], check=True, env=env,
                   capture_output=True, text=True)

    a = load_checkpoint(latest_checkpoint(run_a / "checkpoints"))
    b = load_checkpoint(latest_checkpoint(run_b / "checkpoints"))
    assert a["trainer"]["step"] == b["trainer"]["step"] == 20
    for name in a["model_params"]:
        np.testing.assert_array_equal(a["model_params"][name], b["model_params"][name])
    for name in a["optim_state"]["slots"]:
        np.testing.assert_array_equal(a["optim_state"]["slots"][name],
                                      b["optim_state"]["slots"][name])
    assert a["rng"] == b["rng"]


def test_checkpoint_write_that_crashes_leaves_the_previous_one_loadable(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path, max_steps=2)
    trainer.fit()
    good = latest_checkpoint(tmp_path / "checkpoints")
    before = load_arrays(good.with_suffix(".safetensors"))

    trainer.step = 3
    real_replace = os.replace

    def crash(src, dst):
        if str(dst).endswith(".json"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        trainer.save_checkpoint()
    monkeypatch.setattr(os, "replace", real_replace)
    assert latest_checkpoint(tmp_path / "checkpoints") == good
    after = load_checkpoint(good)["model_params"]
    for name, value in after.items():
        np.testing.assert_array_equal(value, before["model/" + name])
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_truncated_or_foreign_checkpoints_give_errors_naming_the_file(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=1)
    trainer.fit()
    path = latest_checkpoint(tmp_path / "checkpoints")
    weights = path.with_suffix(".safetensors")
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(RnnkitError, match=f"{weights.name}: expected a safetensors file"):
        load_checkpoint(path)
    path.write_text('{"format": "something-else"}')
    with pytest.raises(RnnkitError, match=f"{path.name}: expected an rnnkit checkpoint"):
        load_checkpoint(path)
    with pytest.raises(RnnkitError, match="no such file"):
        load_checkpoint(tmp_path / "missing.json")


def test_restoring_into_a_different_model_is_refused(tmp_path):
    make_trainer(tmp_path, max_steps=1).fit()
    other = make_trainer(tmp_path, cell="gru", max_steps=1)
    with pytest.raises(RnnkitError, match="expected a checkpoint of LanguageModel"):
        other.restore()


def test_early_stopping_after_patience_validations_without_improvement():
    trainer = make_trainer(max_steps=100, val_every=2, patience=2)
    trainer.optimizer.lr = 0.0                                 # nothing can improve
    trainer.schedule = None
    summary = trainer.fit()
    assert summary["stopped_early"] and trainer.step == 6      # best at 2, worse at 4 and 6


def test_metrics_lines_loss_curve_and_best_weights_are_written(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=20, val_every=10, log_every=5)
    trainer.fit()
    rows = read_metrics(tmp_path / "metrics.jsonl")
    train_rows = [r for r in rows if r["kind"] == "train"]
    val_rows = [r for r in rows if r["kind"] == "validation"]
    assert [r["step"] for r in train_rows] == [5, 10, 15, 20]
    assert [r["step"] for r in val_rows] == [10, 20]
    assert all(r["items_per_s"] > 0 and r["grad_norm"] > 0 for r in train_rows)
    assert (tmp_path / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(load_arrays(tmp_path / "best.safetensors")) == set(trainer.model.params)


def test_the_final_weights_are_validated_even_off_the_validation_interval(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=7, val_every=5)
    trainer.fit()
    rows = [r for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "validation"]
    assert [r["step"] for r in rows] == [5, 7]
    assert rows[-1]["val_loss"] == pytest.approx(trainer.evaluate(trainer.val_data), rel=1e-12)
    assert trainer.best_val == min(r["val_loss"] for r in rows)
