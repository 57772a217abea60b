"""The trainer's gradient watch (rnnkit.train.watch): one warning when the gradient norm
explodes or dL/dh_t vanishes, none on a normal run; the measurement leaves training exactly
as it would be without it; the figures reach metrics.jsonl."""
import numpy as np
import pytest

from rnnkit import RnnkitError
from rnnkit.data import Batch
from rnnkit.losses import final_step, mean_squared_error
from rnnkit.models import SequenceModel
from rnnkit.optim import make_optimizer
from rnnkit.train import Trainer, TrainConfig, read_metrics
from trainers import ListBatches, make_trainer


def regression(T, steps, spike_at=None, cell="rnn", seed=0, **cfg):
    """Many-to-one regression on N(0, 1) sequences; the batch at ``spike_at`` has targets
    1000 times larger (a sudden, huge gradient)."""
    rng = np.random.default_rng(seed)
    batches = []
    for i in range(steps):
        x, y = rng.standard_normal((8, T, 1)), rng.standard_normal((8, 1))
        batches.append(Batch(x, y * (1000.0 if i == spike_at else 1.0)))
    model = SequenceModel(input_size=1, hidden_size=8, cell=cell, readout="last",
                          dtype="float64", seed=seed)
    lines = []
    trainer = Trainer(model, mean_squared_error, make_optimizer("sgd", model.params, lr=0.01),
                      ListBatches(batches), ListBatches(batches[:1]),
                      config=TrainConfig(**{"max_steps": steps, "progress": False,
                                            "clip_norm": 1.0, **cfg}),
                      log=lines.append)
    trainer.fit()
    return lines


def warnings(lines, what):
    return [line for line in lines if what in line]


def test_an_exploding_gradient_is_reported_once():
    lines = regression(5, 40, spike_at=25)
    found = warnings(lines, "exploding gradients")
    assert len(found) == 1 and found[0].startswith("step 26: exploding gradients: norm ")
    assert "--explode-factor 10" in found[0]


def test_a_normal_run_and_a_run_with_the_watch_off_say_nothing():
    assert not warnings(regression(5, 40), "gradients")
    assert not warnings(regression(5, 40, spike_at=25, explode_factor=0), "exploding")
    assert not warnings(regression(5, 12, spike_at=5), "exploding")   # within the warm-up


def test_vanishing_gradients_are_reported_for_a_long_rnn_and_not_a_short_one():
    long_ = regression(80, 4, val_every=2)
    found = warnings(long_, "vanishing gradients")
    assert len(found) == 1 and "over 80 steps" in found[0]       # once, though validated twice
    assert not warnings(regression(5, 4, val_every=2), "vanishing")
    assert not warnings(regression(80, 4, val_every=2, vanish_ratio=0), "vanishing")


def test_the_measurement_changes_nothing_in_training_and_reaches_the_metrics(tmp_path):
    on = make_trainer(tmp_path / "on", max_steps=12, val_every=4, log_every=2)
    off = make_trainer(None, max_steps=12, val_every=4, vanish_ratio=0, explode_factor=0)
    on.fit()
    off.fit()
    for name in on.model.params:            # dropout masks, data order, weights: the same
        np.testing.assert_array_equal(on.model.params[name], off.model.params[name])
    rows = read_metrics(tmp_path / "on" / "metrics.jsonl")
    val = [r for r in rows if r["kind"] == "validation"]
    train = [r for r in rows if r["kind"] == "train"]
    assert len(val) == 3 and all(len(r["grad_flow"]) == 16 for r in val)   # seq_len 16
    assert all(0 < r["grad_flow_ratio"] for r in val)
    assert all(r["grad_norm_max"] >= r["grad_norm"] > 0 for r in train)


def test_watch_settings_are_checked():
    with pytest.raises(RnnkitError, match="explode_factor: expected a factor > 1"):
        TrainConfig(explode_factor=0.5).check()
    with pytest.raises(RnnkitError, match="vanish_ratio: expected a value >= 0"):
        TrainConfig(vanish_ratio=-1.0).check()
    with pytest.raises(RnnkitError, match="tensorboard: expected a folder name"):
        TrainConfig(tensorboard=3).check()
