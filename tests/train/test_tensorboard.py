"""TensorBoard events (TrainConfig.tensorboard, --tensorboard): written by tensorboardX and
read back record by record; without the package, the command line says which extra to
install in one line before any work."""
import struct
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.train import read_metrics
from trainers import make_trainer


def read_events(folder: Path) -> list:
    """Every Event in the folder's event files (TFRecord framing: length, CRC, data, CRC)."""
    from tensorboardX.proto.event_pb2 import Event
    events = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        data, at = path.read_bytes(), 0
        while at < len(data):
            (length,) = struct.unpack("<Q", data[at:at + 8])
            events.append(Event.FromString(data[at + 12:at + 12 + length]))
            at += 12 + length + 4
    return events


def test_scalars_histograms_and_the_gradient_flow_are_written_and_readable(tmp_path):
    pytest.importorskip("tensorboardX")
    tb = tmp_path / "tb"
    trainer = make_trainer(tmp_path / "run", max_steps=20, log_every=2, val_every=10,
                           tensorboard=str(tb))
    trainer.fit()
    events = read_events(tb)
    values = [(e.step, v) for e in events for v in e.summary.value]
    tags = {v.tag for _, v in values}
    assert {"train/loss", "train/lr", "train/grad_norm", "train/grad_norm_max", "val/loss",
            "best/val_loss", "grad_flow/first_to_last", "grad_flow/dL_dh"} <= tags
    names = trainer.model.params
    assert {f"weights/{n}" for n in names} | {f"grads/{n}" for n in names} <= tags
    assert any(v.HasField("image") for _, v in values if v.tag == "grad_flow/dL_dh")
    hist = next(v.histo for _, v in values if v.tag == "weights/rnn.l0.W_hh")
    assert hist.num == names["rnn.l0.W_hh"].size
    # the scalars are the trainer's own figures, at the same steps
    rows = {r["step"]: r for r in read_metrics(tmp_path / "run" / "metrics.jsonl")
            if r["kind"] == "train"}
    norms = {s: v.simple_value for s, v in values if v.tag == "train/grad_norm"}
    assert sorted(norms) == sorted(rows) == list(range(2, 21, 2))
    for step, value in norms.items():
        assert value == pytest.approx(rows[step]["grad_norm"], rel=1e-6)
    val = [v.simple_value for s, v in values if v.tag == "val/loss"]
    assert len(val) == 2 and np.isfinite(val).all()


def test_without_tensorboardx_the_command_line_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)      # as if not installed
    text = tmp_path / "t.txt"
    text.write_text("hello world, a small text. " * 200, "utf-8")
    run = tmp_path / "run"
    code = main(["text", "train", "--text", str(text), "--run-dir", str(run), "--max-steps",
                 "1", "--no-progress", "--prime", "hello", "--tensorboard", str(tmp_path / "tb")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["rnnkit text train: needs the optional package "
                                 "'tensorboardX': pip install 'rnnkit[tensorboard]'"]
    assert not run.exists() and not (tmp_path / "tb").exists()
