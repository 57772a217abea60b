"""Runs that never lose work: skipped non-finite steps, finite checkpoints only, SIGINT and
SIGTERM saving a checkpoint, time-based checkpoints, a killed run's leftovers cleared, and
settings refused before training starts."""
import json
import math
import os
import signal

import numpy as np
import pytest

from rnnkit import RnnkitError
from rnnkit.train import Callback, TrainConfig, read_metrics
from rnnkit.train.checkpoint import latest_checkpoint, load_checkpoint
from rnnkit.train.safety import TrainingDiverged, TrainingInterrupted, clear_leftovers
from trainers import make_trainer


def nan_loss_at(steps):
    """A loss that is NaN at the given trainer steps, the real one otherwise."""
    def wrap(trainer):
        real = trainer.loss_fn

        def loss(outputs, targets, lengths):
            value, d = real(outputs, targets, lengths)
            return (math.nan, d) if trainer.step in steps else (value, d)
        trainer.loss_fn = loss
        return trainer
    return wrap


def params(trainer):
    return {k: v.copy() for k, v in trainer.model.params.items()}


def test_a_non_finite_step_is_skipped_and_the_learning_rate_halved():
    trainer = nan_loss_at({2})(make_trainer(max_steps=2))
    trainer.fit()
    before = params(trainer)
    logs = trainer.train_batch(next(iter(trainer.train_data.batches(0, 2))))
    assert logs["skipped"] == 1 and math.isnan(logs["loss"])
    for k, v in before.items():
        np.testing.assert_array_equal(trainer.model.params[k], v)      # no update
    assert trainer.lr_scale == 0.5 and trainer.bad_steps == 1 and trainer.carry is None
    trainer.step = 3                                                   # a good step resets
    logs = trainer.train_batch(next(iter(trainer.train_data.batches(0, 3))))
    assert logs["skipped"] == 0 and trainer.bad_steps == 0
    assert trainer.optimizer.lr == pytest.approx(0.5 * trainer.schedule.lr(2))


def test_too_many_bad_steps_in_a_row_stop_naming_the_step_and_the_last_checkpoint(tmp_path):
    trainer = nan_loss_at(set(range(4, 100)))(
        make_trainer(tmp_path, max_steps=20, checkpoint_every=3, max_bad_steps=3))
    with pytest.raises(TrainingDiverged, match=r"training diverged at step 6: 3 steps in a row "
                       r"had a non-finite loss .*the last good checkpoint is .*step-00000006"):
        trainer.fit()
    # the skipped steps 4-5 changed nothing, so step 6's checkpoint holds step 3's weights
    ck = load_checkpoint(latest_checkpoint(tmp_path / "checkpoints"))
    assert ck["trainer"]["lr_scale"] == 0.25 and ck["trainer"]["bad_steps"] == 2


def test_non_finite_weights_stop_at_once_and_are_never_saved(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=2)
    trainer.fit()
    good = latest_checkpoint(tmp_path / "checkpoints")
    name = next(iter(trainer.model.params))
    trainer.model.params[name][...] = np.nan
    with pytest.raises(TrainingDiverged, match=f"checkpoint at step 2 not saved: "
                       f"\\['{name}'\\] not finite; the last good checkpoint is {good}"):
        trainer.save_checkpoint()
    assert latest_checkpoint(tmp_path / "checkpoints") == good
    trainer.config.max_steps = 4
    with pytest.raises(TrainingDiverged, match=f"the weights \\['{name}'"):
        trainer.fit()


class SendSignal(Callback):
    def __init__(self, at: int, sig):
        self.at, self.sig = at, sig

    def on_step_end(self, trainer, logs):
        if trainer.step == self.at:
            os.kill(os.getpid(), self.sig)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_saves_a_checkpoint_and_resuming_is_bit_identical(tmp_path, sig):
    whole = make_trainer(tmp_path / "whole", max_steps=9, val_every=4)
    whole.fit()
    cut = make_trainer(tmp_path / "cut", max_steps=9, val_every=4)
    cut.callbacks.append(SendSignal(5, sig))
    # (a shell starts background jobs with SIGINT ignored: compare with what was there)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(sig)
    with pytest.raises(TrainingInterrupted, match=f"interrupted by {sig.name} after step 5: "
                       f"saved .*step-00000005.json; `resume .*cut` continues it"):
        cut.fit()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(sig)) == before  # restored
    again = make_trainer(tmp_path / "cut", max_steps=9, val_every=4)
    again.restore()
    again.fit()
    for k, v in whole.model.params.items():
        np.testing.assert_array_equal(again.model.params[k], v)
    assert again.best_val == whole.best_val


def test_checkpoints_are_also_saved_by_the_clock(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=3, checkpoint_minutes=1e-9, keep_checkpoints=0)
    trainer.fit()
    saved = sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*.json"))
    assert saved == ["step-00000001.json", "step-00000002.json", "step-00000003.json"]


def test_a_killed_runs_leftovers_are_cleared_and_a_torn_metrics_line_dropped(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=4, log_every=1, checkpoint_every=2)
    trainer.fit()
    (tmp_path / "checkpoints" / ".step-00000006.safetensors.abc123.tmp").write_bytes(b"x")
    (tmp_path / ".best.safetensors.k9.tmp").write_bytes(b"x")
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"kind": "train", "st')                         # killed mid-line
    rows = read_metrics(tmp_path / "metrics.jsonl")                # the torn line is ignored
    assert rows[-1]["kind"] == "validation"
    removed = clear_leftovers(tmp_path)
    assert len(removed) == 3 and not list(tmp_path.rglob("*.tmp"))
    assert (tmp_path / "metrics.jsonl").read_bytes().endswith(b"}\n")
    resumed = make_trainer(tmp_path, max_steps=6, log_every=1)
    resumed.restore()
    resumed.fit()
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")
            if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]


def test_a_torn_line_inside_the_metrics_is_an_error(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"kind": "tr\n{"kind": "train", "step": 1}\n')
    with pytest.raises(RnnkitError, match="expected one JSON object a line, .* on line 1"):
        read_metrics(path)


def test_resuming_a_finished_run_does_not_validate_it_again(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=4, val_every=2, patience=1)
    trainer.fit()
    rows = len(read_metrics(tmp_path / "metrics.jsonl"))
    again = make_trainer(tmp_path, max_steps=4, val_every=2, patience=1)
    again.restore()
    again.fit()
    assert again.bad_validations == trainer.bad_validations
    assert len(read_metrics(tmp_path / "metrics.jsonl")) == rows


@pytest.mark.parametrize("field,value,message", [
    ("epochs", math.nan, "epochs: expected a finite number, got nan"),
    ("epochs", 0, "epochs: expected a number > 0, got 0"),
    ("bptt", -2, r"bptt: expected a value >= 0 \(0 = off\), got -2"),
    ("seed", -1, "seed: expected a value >= 0, got -1"),
    ("max_steps", 2.5, "max_steps: expected a finite integer, got 2.5"),
    ("val_every", "10", "val_every: expected a finite integer, got '10'"),
    ("clip_norm", -1.0, r"clip_norm: expected a value >= 0 \(0 = off\), got -1.0"),
    ("max_bad_steps", 0, "max_bad_steps: expected a value >= 1, got 0"),
    ("progress", "yes", "progress: expected true or false, got 'yes'"),
])
def test_bad_settings_are_refused_before_training(field, value, message):
    with pytest.raises(RnnkitError, match=message):
        TrainConfig(**{field: value}).check()
    if field != "seed":                       # (the model's own seed check comes first)
        with pytest.raises(RnnkitError, match=message):
            make_trainer(**{field: value})


def test_settings_json_of_an_older_run_without_the_new_fields_still_loads(tmp_path):
    trainer = make_trainer(tmp_path, max_steps=2)
    trainer.fit()
    path = latest_checkpoint(tmp_path / "checkpoints")
    meta = json.loads(path.read_text())
    for key in ("validated_at", "lr_scale", "bad_steps"):
        del meta["trainer"][key]
    path.write_text(json.dumps(meta))
    again = make_trainer(tmp_path, max_steps=2)
    again.restore()
    assert again.lr_scale == 1.0 and again.validated_at == -1
    assert TrainConfig().check().checkpoint_minutes == 10.0
