"""Online forecasting: read one value per line from stdin, print the next value's forecast.

    printf '112\\n118\\n132\\n129\\n' | python examples/stream_forecast.py
    python examples/stream_forecast.py --model my_model_dir < values.txt

Each input line updates the model's recurrent state with ``SequenceModel.step`` (constant
work per value, nothing recomputed) and prints the one-step-ahead prediction, the same
numbers a full-sequence ``forward`` over everything read so far gives. Blank lines are
skipped; a line that is not a number is reported on stderr and skipped.

The model: the folder given by ``--model`` (written by ``rnnkit.save``; an optional
``scaler.json`` beside it holds the input transform). If that folder holds no model yet, a
small GRU is trained on the monthly airline passenger counts (1949-1960, first 120 months;
about two seconds) and saved there, so the next run starts at once. The transform is
log, then standardisation with the training part's statistics.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

import rnnkit
from rnnkit.data.timeseries import StandardScaler, WindowDataset, load_csv_series, make_windows
from rnnkit.losses import mean_squared_error
from rnnkit.models import SequenceModel
from rnnkit.optim import make_optimizer
from rnnkit.serialize import load_json, save_json
from rnnkit.train import TrainConfig, Trainer

_CSV = "shared/data/timeseries/airline_passengers.csv"         # in the checkout or beside it
DATA = next((p / _CSV for p in Path(__file__).resolve().parents[1:3] if (p / _CSV).is_file()),
            Path(__file__).resolve().parents[2] / _CSV)
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "rnnkit/stream_forecast"
TRAIN_MONTHS, LOOKBACK = 120, 24


class Transform:
    """Values <-> model space: optional log, then a fitted scaler (both from scaler.json)."""

    def __init__(self, scaler: StandardScaler | None, log: bool):
        self.scaler, self.log = scaler, log

    def forward(self, v: float) -> float:
        if not np.isfinite(v) or (self.log and v <= 0):
            raise ValueError(f"{v} is not a {'positive ' if self.log else ''}finite number")
        v = np.log(v) if self.log else v
        return float(self.scaler.transform(np.array([v]))[0]) if self.scaler else v

    def inverse(self, z: float) -> float:
        z = float(self.scaler.inverse_transform(np.array([z]))[0]) if self.scaler else z
        return float(np.exp(z)) if self.log else z


def train(folder: Path, data: Path) -> None:
    series = np.log(load_csv_series(data, "passengers")[:TRAIN_MONTHS])
    scaler = StandardScaler().fit(series)
    z = scaler.transform(series).astype(np.float32)
    windows, _ = make_windows(z, LOOKBACK + 1)              # (M, L+1, 1): inputs and targets
    source = WindowDataset(windows[:, :-1], windows[:, 1:], batch_size=16, seed=0)
    model = SequenceModel(input_size=1, hidden_size=16, cell="gru", output_size=1,
                          readout="steps", seed=0)
    trainer = Trainer(model, mean_squared_error, make_optimizer("adam", model.params, lr=1e-2),
                      source, config=TrainConfig(epochs=60, clip_norm=1.0, progress=False),
                      log=lambda *args, **kwargs: None)
    trainer.fit()
    rnnkit.save(model, folder)
    save_json(folder / "scaler.json", {"log": True, "scaler": scaler.to_dict()})


def load(folder: Path) -> tuple[SequenceModel, Transform]:
    model = rnnkit.load(folder)
    cfg = getattr(model, "config", {})
    if not isinstance(model, SequenceModel) or cfg.get("input_size") != 1 or \
            cfg.get("output_size") != 1 or cfg.get("readout") != "steps" or cfg["bidirectional"]:
        raise rnnkit.RnnkitError(f"{folder}: expected a unidirectional SequenceModel with "
                                 "input_size=1, output_size=1, readout='steps', got "
                                 f"{type(model).__name__}({cfg})")
    transform = Transform(None, False)
    if (folder / "scaler.json").is_file():
        meta = load_json(folder / "scaler.json")
        from rnnkit.data.scalers import scaler_from_dict
        transform = Transform(scaler_from_dict(meta["scaler"]), bool(meta.get("log")))
    return model, transform


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=CACHE,
                        help=f"model folder (trained there if empty; default {CACHE})")
    parser.add_argument("--data", type=Path, default=DATA, help="CSV to train on if needed")
    args = parser.parse_args(argv)
    try:
        if not (args.model / "model.json").is_file():
            print(f"training a GRU on {args.data.name}, saving to {args.model}", file=sys.stderr)
            train(args.model, args.data)
        model, transform = load(args.model)
    except rnnkit.RnnkitError as e:
        print(f"stream_forecast: {e}", file=sys.stderr)
        return 2
    state = None
    for number, line in enumerate(sys.stdin, start=1):
        line = line.strip()
        if not line:
            continue
        try:
            value = transform.forward(float(line))
        except ValueError:
            kind = "a positive number" if transform.log else "a number"
            print(f"stream_forecast: line {number}: expected {kind}, got {line!r}",
                  file=sys.stderr)
            continue
        y, state = model.step(np.array([[value]], model.dtype), state)      # (1, 1)
        print(f"{transform.inverse(float(y[0, 0])):.6g}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
