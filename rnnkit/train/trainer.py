"""The trainer: model + loss + optimiser + data, and nothing about recurrent internals.

It needs a model with ``params``, ``grads``, ``config``, ``zero_grad()``,
``forward(inputs, state, lengths, training=, rng=, grad=) -> (outputs, state, cache)`` and
``backward(doutputs, cache)``; a loss ``loss_fn(outputs, targets, lengths) -> (loss, doutputs)``;
an optimiser from ``rnnkit.optim``; and data sources (``rnnkit.data.batch.DataSource``).

Truncated BPTT two ways, both "carry the state, stop the gradient": a ``stateful`` source
(a text stream) continues each row in the next batch, so the final state of one batch is
the initial state of the next; and ``bptt=k`` cuts each batch into chunks of k steps, one
optimiser update per chunk, the state carried from chunk to chunk. The model's backward
never propagates into a carried state.

Everything random comes from the trainer's seeded generator (dropout) and from the data
source's (seed, epoch) (order), so the same seed gives the same weights, and a checkpoint
restores the generator and the data position: resuming continues bit-identically.

No run loses work (rnnkit.train.safety): a step whose loss or gradients are not finite is
skipped and the learning rate halved (after ``max_bad_steps`` in a row training stops,
naming the last good checkpoint); only finite weights are saved; SIGINT and SIGTERM end the
current step, save a checkpoint and stop (TrainingInterrupted, which says how to resume); a
checkpoint is also saved every ``checkpoint_minutes``; a killed process's leftovers are
cleared at the next start.

Under a distributed launcher (torchrun, mpirun) each process trains on its rows of every
batch and the gradients are summed into the whole batch's (rnnkit.train.data_parallel);
with one process nothing changes.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from rnnkit.errors import RnnkitError, fail
from rnnkit.optim import clip_grad_norm, clip_grad_value, global_norm
from rnnkit.serialize import save_arrays, save_json
from rnnkit.train.callbacks import LossCurve, MetricsLog, ProgressBar
from rnnkit.train.checkpoint import (checkpoint_path, latest_checkpoint, load_checkpoint,
                                     load_params, save_checkpoint)
from rnnkit.train import distributed
from rnnkit.train.config import TrainConfig
from rnnkit.train.data_parallel import DataParallel
from rnnkit.train.safety import (Interrupts, TrainingDiverged, TrainingInterrupted,
                                 clear_leftovers, non_finite)
from rnnkit.train.tensorboard import TensorBoard
from rnnkit.train.watch import GradientWatch

BAD_STEP_LR_FACTOR = 0.5        # each skipped step multiplies the learning rate by this


def _time_chunks(batch, k: int):
    """Cut a batch into chunks of k steps along axis 1 (inputs and per-step targets)."""
    if not k:           # (before reading a shape: inputs may be a tuple or a structure)
        return [(batch.inputs, batch.targets)]
    T = np.asarray(batch.inputs).shape[1]
    if T <= k:
        return [(batch.inputs, batch.targets)]
    if batch.lengths is not None:
        fail("bptt", "batches without lengths (cut long padded batches yourself)",
             "a batch with lengths")
    return [(batch.inputs[:, s:s + k], batch.targets[:, s:s + k]) for s in range(0, T, k)]


class Trainer:
    def __init__(self, model, loss_fn, optimizer, train_data, val_data=None, *,
                 config: TrainConfig = TrainConfig(), schedule=None,
                 run_dir: str | Path | None = None, callbacks=(), log=print, comm=None):
        self.model, self.loss_fn, self.optimizer = model, loss_fn, optimizer
        self.train_data, self.val_data = train_data, val_data
        self.config, self.schedule, self.log = config.check(), schedule, log
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.rng = np.random.default_rng(config.seed)
        self.step = self.epoch = self.batch_in_epoch = 0
        self.carry = None                       # recurrent state carried between batches
        self.best_val, self.bad_validations, self.should_stop = math.inf, 0, False
        self.validated_at = -1                  # the step of the latest validation
        self.lr_scale, self.bad_steps = 1.0, 0  # after skipped (non-finite) steps
        self.base_lr = getattr(optimizer, "lr", None)
        # the watch first: it adds the gradient-flow figures to the validation logs the
        # others write
        self.callbacks = [GradientWatch(config.explode_factor, config.vanish_ratio, log),
                          *callbacks]
        # data parallel over the launcher's processes (rnnkit.train.data_parallel); the
        # ranks stay identical and the first one alone shows progress and writes files
        self.parallel = DataParallel(comm if comm is not None else distributed.world(),
                                     model, config.seed)
        if config.progress and self.parallel.writes:
            self.callbacks.append(ProgressBar())
        if self.run_dir is not None and self.parallel.writes:
            self.callbacks.append(MetricsLog(self.run_dir / "metrics.jsonl", config.log_every))
            self.callbacks.append(LossCurve(self.run_dir / "metrics.jsonl",
                                            self.run_dir / "loss_curve.png"))
        if config.tensorboard:
            self.callbacks.append(TensorBoard(config.tensorboard, config.log_every))

    @property
    def total_steps(self) -> int:
        if self.config.max_steps > 0:
            return self.config.max_steps
        return max(1, int(self.config.epochs * self.train_data.num_batches(0)))

    # --- one batch -------------------------------------------------------------------------
    def train_batch(self, batch) -> dict:
        cfg, model, opt = self.config, self.model, self.optimizer
        shard = self.parallel.shard(batch)      # this rank's rows (all of them on one rank)
        rng = self.parallel.step_rng(self.rng, self.step)
        state = self.carry if self.train_data.stateful else None
        losses, weights, norm, skipped = [], [], 0.0, 0
        for inputs, targets in _time_chunks(shard, cfg.bptt):
            model.zero_grad()
            try:
                outputs, state, cache = model.forward(inputs, state, shard.lengths,
                                                      training=True, rng=rng)
            except RnnkitError:         # a layer refusing non-finite values from the weights
                if non_finite(model.params):
                    self._skip(math.nan, math.nan)
                raise
            loss, doutputs = self.loss_fn(outputs, targets, shard.lengths)
            if math.isfinite(loss):
                model.backward(doutputs, cache)
            loss = self.parallel.mean_loss(loss, targets, shard.lengths)  # the whole batch's
            if math.isfinite(loss):
                self.parallel.mean_gradients()
                if cfg.clip_norm > 0:
                    norm = clip_grad_norm(model.grads, cfg.clip_norm)
                elif cfg.clip_value > 0:
                    norm = clip_grad_value(model.grads, cfg.clip_value)
                else:
                    norm = global_norm(model.grads)
            if not (math.isfinite(loss) and math.isfinite(norm)):
                self._skip(loss, norm)
                skipped, state = skipped + 1, None      # a non-finite state is not carried
                continue
            self.bad_steps = 0
            if self.schedule is not None:
                opt.lr = self.schedule.lr(opt.step_count) * self.lr_scale
            elif self.lr_scale != 1.0:
                opt.lr = self.base_lr * self.lr_scale
            opt.step(model.grads)
            losses.append(loss)
            weights.append(np.asarray(targets).size)
        if self.train_data.stateful:
            self.carry = state
        mean = float(np.average(losses, weights=weights)) if losses else math.nan
        return {"loss": mean, "grad_norm": norm, "lr": opt.lr, "items": batch.size,
                "skipped": skipped}

    def _skip(self, loss: float, norm: float) -> None:
        """A step with a non-finite loss or gradient norm: no update; the learning rate is
        lowered, and after max_bad_steps in a row (or with non-finite weights, which no
        skipping mends) training stops."""
        self.bad_steps += 1
        self.lr_scale *= BAD_STEP_LR_FACTOR
        what = f"loss {loss}" if not math.isfinite(loss) else f"gradient norm {norm}"
        broken = non_finite(self.model.params)
        if broken or self.bad_steps >= self.config.max_bad_steps:
            why = (f"the weights {broken[:3]} are not finite" if broken else
                   f"{self.bad_steps} steps in a row had a non-finite loss or gradient")
            raise TrainingDiverged(
                f"training diverged at step {self.step}: {why} (last: {what}); "
                f"{self._last_good()}; lower the learning rate or clip gradients")
        self.log(f"step {self.step}: {what}; step skipped, learning rate x"
                 f"{BAD_STEP_LR_FACTOR} (now x{self.lr_scale:g} of the schedule's)")

    def _last_good(self) -> str:
        if self.run_dir is None:
            return "no run folder, so no checkpoint"
        try:
            return f"the last good checkpoint is {latest_checkpoint(self.run_dir / 'checkpoints')}"
        except RnnkitError:
            return "no checkpoint was saved yet"

    def evaluate(self, data) -> float:
        """Mean loss per item over a data source (state carried through stateful sources)."""
        total, count, state = 0.0, 0, None
        for batch in data.batches(0):
            outputs, state, _ = self.model.forward(batch.inputs, state if data.stateful else None,
                                                   batch.lengths, grad=False)
            loss, _ = self.loss_fn(outputs, batch.targets, batch.lengths)
            total, count = total + loss * batch.size, count + batch.size
        return total / max(count, 1)

    def validation(self) -> tuple[float, dict]:
        """(the value to minimise, the validation row's figures) on the validation data;
        a trainer that selects by another score overrides this and ``best_logs``."""
        val = self.evaluate(self.val_data)
        return val, {"val_loss": val}

    def best_logs(self) -> dict:
        return {"best_val_loss": self.best_val}

    def validate(self) -> None:
        if self.val_data is None:
            return
        val, figures = self.validation()
        self.validated_at = self.step
        improved = val < self.best_val
        if improved:
            self.best_val, self.bad_validations = val, 0
            if self.run_dir is not None and self.parallel.writes:
                save_arrays(self.run_dir / "best.safetensors", self.model.params)
            self.parallel.barrier()
        else:
            self.bad_validations += 1
            if self.config.patience and self.bad_validations >= self.config.patience:
                self.should_stop = True
        logs = {"step": self.step, "epoch": self.epoch, **figures, **self.best_logs(),
                "improved": improved}
        for cb in self.callbacks:
            cb.on_validation_end(self, logs)

    # --- the loop --------------------------------------------------------------------------
    def fit(self) -> dict:
        self.parallel.barrier()         # every rank's files of the app are written
        if self.run_dir is not None and self.parallel.writes:
            for path in clear_leftovers(self.run_dir):
                self.log(f"cleared what an interrupted run left: {path}")
            save_json(self.run_dir / "train_config.json", vars(self.config))
        self.parallel.barrier()
        self.parallel.broadcast_weights(self.optimizer)
        for cb in self.callbacks:
            cb.on_train_begin(self)
        with Interrupts() as interrupts:
            self._loop(interrupts)
        if self.validated_at != self.step:         # the final weights are validated too
            self.validate()
        if self.run_dir is not None:
            self.save_checkpoint()
        for cb in self.callbacks:
            cb.on_train_end(self)
        return {"step": self.step, "epoch": self.epoch, "best_val_loss": self.best_val,
                "stopped_early": self.should_stop}

    def _loop(self, interrupts: Interrupts) -> None:
        cfg, total = self.config, self.total_steps
        saved_at = time.monotonic()
        while self.step < total and not self.should_stop:
            for batch in self.train_data.batches(self.epoch, self.batch_in_epoch):
                logs = self.train_batch(batch)
                self.step += 1
                self.batch_in_epoch += 1
                for cb in self.callbacks:
                    cb.on_step_end(self, logs)
                if cfg.val_every and self.step % cfg.val_every == 0:
                    self.validate()
                due = cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0
                late = cfg.checkpoint_minutes and \
                    time.monotonic() - saved_at >= 60 * cfg.checkpoint_minutes
                stop, late = self.parallel.agree(interrupts.received, late)
                if self.run_dir is not None and (due or late):
                    self.save_checkpoint()
                    saved_at = time.monotonic()
                if stop:
                    self._stop(stop)
                if self.step >= total or self.should_stop:
                    break
            else:                                   # the epoch ran out
                self.epoch, self.batch_in_epoch, self.carry = self.epoch + 1, 0, None
                if not cfg.val_every:
                    self.validate()

    def _stop(self, signal_name: str) -> None:
        """SIGINT or SIGTERM arrived during the step just finished: save and stop."""
        where = "no run folder, nothing saved"
        if self.run_dir is not None:
            where = f"saved {self.save_checkpoint()}; `resume {self.run_dir}` continues it"
        for cb in self.callbacks:
            cb.on_train_end(self)
        raise TrainingInterrupted(f"training interrupted by {signal_name} after step "
                                  f"{self.step}: {where}")

    # --- checkpoints -----------------------------------------------------------------------
    def state(self) -> dict:
        return {"step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
                "best_val": self.best_val, "bad_validations": self.bad_validations,
                "should_stop": self.should_stop, "validated_at": self.validated_at,
                "lr_scale": self.lr_scale, "bad_steps": self.bad_steps}

    def save_checkpoint(self) -> Path:
        """Save a checkpoint of finite weights and optimiser state (else TrainingDiverged,
        and the last good checkpoint stays the latest)."""
        if self.run_dir is None:
            fail("run_dir", "a folder to write checkpoints to", None)
        slots = self.optimizer.state_dict()["slots"] if self.optimizer is not None else {}
        broken = non_finite(self.model.params) + non_finite(slots)
        if broken:
            raise TrainingDiverged(f"checkpoint at step {self.step} not saved: {broken[:3]} "
                                   f"not finite; {self._last_good()}")
        carry = self.parallel.whole_state(self.carry)   # (a collective: before rank 0 writes)
        folder = self.run_dir / "checkpoints"
        if self.parallel.writes:
            save_checkpoint(folder, model=self.model, optimizer=self.optimizer,
                            trainer_state=self.state(), rng=self.rng, carry=carry,
                            keep=self.config.keep_checkpoints)
        self.parallel.barrier()
        return checkpoint_path(folder, self.step)

    def restore(self, checkpoint: str | Path | None = None) -> None:
        """Continue from a checkpoint file (default: the run's latest) exactly where it was."""
        if checkpoint is None:
            if self.run_dir is None:
                fail("checkpoint", "a checkpoint path or a run_dir", None)
            checkpoint = latest_checkpoint(self.run_dir / "checkpoints")
        ck = load_checkpoint(checkpoint)
        if ck["model"]["class"] != type(self.model).__name__ or \
                ck["model"]["config"] != self.model.config:
            raise RnnkitError(f"{ck['path']}: expected a checkpoint of "
                              f"{type(self.model).__name__}({self.model.config}), got "
                              f"{ck['model']['class']}({ck['model']['config']})")
        load_params(self.model, ck["model_params"], str(ck["path"]))
        try:
            self.optimizer.load_state_dict(ck["optim_state"])
        except RnnkitError as e:
            raise RnnkitError(f"{ck['path']}: {e}") from None
        t = ck["trainer"]
        self.step, self.epoch, self.batch_in_epoch = t["step"], t["epoch"], t["batch_in_epoch"]
        self.best_val, self.bad_validations = t["best_val"], t["bad_validations"]
        self.should_stop = t["should_stop"]
        self.validated_at = t.get("validated_at", -1)      # (older checkpoints lack these)
        self.lr_scale, self.bad_steps = t.get("lr_scale", 1.0), t.get("bad_steps", 0)
        try:
            self.rng.bit_generator.state = ck["rng"]
        except (TypeError, ValueError, KeyError, OverflowError) as e:
            raise RnnkitError(f"{ck['path']}: expected the state of a "
                              f"{type(self.rng.bit_generator).__name__} generator in 'rng', "
                              f"got {e}") from None
        self.carry = self.parallel.own_state(ck["carry"])
