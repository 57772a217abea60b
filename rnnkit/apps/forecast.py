"""Time-series forecasting (notes 000, 004): the next value(s) of a series from its recent past.

Data: a CSV with a header and one numeric column to forecast (e.g. airline_passengers.csv,
`month,passengers`). The series is cut in time order: the last `test_size` points are the
test period, the `val_size` before them validate, the rest trains; the transform's scaler
(rnnkit.data.StandardScaler) is fitted on training points only. The model reads `lookback`
transformed values (rnnkit.apps.series) and predicts the next `horizon` of them directly;
with `--gaussian` it predicts a mean and a variance for each (rnnkit.apps.gaussian), which
gives prediction intervals whose coverage `evaluate` measures.

`evaluate` reports, on the test period: one-step-ahead forecasts (each from the data up to
the step before), and with horizon > 1 the forecast of the first `horizon` test points from
the start of the test period; beside each, the naive, seasonal-naive and seasonal-naive x
growth baselines on the same points; and it draws forecast.png.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np

from rnnkit.apps import common, series
from rnnkit.apps.common import setting
from rnnkit.apps.gaussian import gaussian_nll, mse_loss, split_outputs
from rnnkit.data import StandardScaler, WindowDataset, load_csv_series, make_windows
from rnnkit.data.scalers import scaler_from_dict
from rnnkit.errors import RnnkitError, fail
from rnnkit.models import SequenceModel
from rnnkit.optim import make_optimizer
from rnnkit.serialize import load_json, save_json
from rnnkit.train import Trainer, TrainConfig

SUMMARY = "time-series forecasting: the next values of a series, with prediction intervals"
FORMAT = "a CSV file with a header row and a numeric column to forecast"
DATA_SET = "airline_passengers"     # read from the cache when --data is '' (rnnkit data get)
SAMPLES = 2000          # Monte Carlo paths for intervals through the inverse transform


@dataclass
class ForecastConfig:
    data: str = setting("", f"the series: {FORMAT}; or a data set's name "
                        f"(sunspots_monthly, ...); empty = the cached {DATA_SET!r}")
    column: str = setting("", "the column to forecast; empty = the second column")
    test_size: int = setting(48, "points at the end of the series held out as the test period")
    val_size: int = setting(12, "points before the test period used for validation; 0 = none")
    transform: str = setting("log_seasonal_diff", "what the model learns: the values, their "
                             "logs, and/or their differences from the previous point or "
                             "season", series.TRANSFORMS)
    season: int = setting(12, "points per season (12 for monthly data); 0 = no seasonality")
    lookback: int = setting(12, "past (transformed) points the model reads")
    horizon: int = setting(1, "points ahead predicted at once (direct multi-step)")
    gaussian: bool = setting(False, "predict a mean and a variance (prediction intervals)")
    interval: float = setting(0.8, "probability covered by the prediction intervals")
    cell: str = setting("lstm", "recurrent cell", common.CELL_CHOICES)
    hidden_size: int = setting(32, "units per recurrent layer")
    num_layers: int = setting(1, "stacked recurrent layers")
    batch_size: int = setting(16, "windows per batch")
    optimizer: str = setting("adam", "optimiser", ("sgd", "adagrad", "rmsprop", "adam", "adamw"))
    lr: float = setting(3e-3, "learning rate")
    schedule: str = setting("constant", "learning-rate schedule", common.SCHEDULE_CHOICES)


Config = ForecastConfig


@dataclass
class EvaluateOptions:
    split: str = setting("test", "which period to score (val: to choose settings)",
                         ("test", "val"))
    plot: bool = setting(True, "draw forecast.png in the run folder")
    calibrated: bool = setting(True, "scale the intervals by the validation period's "
                               "calibration (calibration.json); false = the Gaussian "
                               "head's own variance")


@dataclass
class PredictOptions:
    best: bool = setting(True, "use best.safetensors (else the latest checkpoint)")


def default_train_config() -> TrainConfig:
    return TrainConfig(epochs=150.0, val_every=0, patience=0, log_every=10, clip_norm=5.0)


def column_name(cfg: ForecastConfig) -> str:
    """The column to forecast: --column, else the CSV's second column."""
    path = common.require_file(cfg.data, FORMAT, DATA_SET)
    if cfg.column:
        return cfg.column
    try:
        with path.open(newline="", encoding="utf-8") as f:
            header = next(csv.reader(f), [])
    except (UnicodeDecodeError, csv.Error) as e:
        fail(str(path), f"{FORMAT} (UTF-8 text)", f"a file that is not ({e})")
    if len(header) < 2:
        fail(str(path), f"{FORMAT} (at least two columns, or pass --column)", f"header {header}")
    return header[1]


def read_series(cfg: ForecastConfig) -> np.ndarray:
    return load_csv_series(common.require_file(cfg.data, FORMAT, DATA_SET), column_name(cfg))


class Plan:
    """Where each part of the series lies, and the windows over its transformed values.

    Window i reads z[i:i+L] and predicts z[i+L:i+L+h], which are the values at times
    t0 = i + L + lag ... t0 + h - 1 (the last h - 1 windows have no full targets: they only
    serve one-step forecasts)."""

    def __init__(self, cfg: ForecastConfig, y: np.ndarray, scaler: StandardScaler | None = None):
        self.cfg, self.y, self.T = cfg, y, len(y)
        self.lag = series.lag_of(cfg.transform, cfg.season)
        self.test_start = self.T - cfg.test_size
        self.train_end = self.test_start - cfg.val_size
        L, h = cfg.lookback, cfg.horizon
        need = self.lag + L + h
        if cfg.test_size < 1 or cfg.val_size < 0 or self.train_end < need + 1:
            fail("series", f"more than test_size + val_size + lag + lookback + horizon = "
                 f"{cfg.test_size} + {cfg.val_size} + {self.lag} + {L} + {h} points (a window "
                 f"and its targets must fit in the training part; the lag comes from "
                 f"--transform {cfg.transform} and --season {cfg.season})", f"{self.T} points")
        self.z = series.forward(y, cfg.transform, cfg.season)
        if scaler is None:
            scaler = StandardScaler().fit(self.z[:self.train_end - self.lag])
        self.scaler = scaler
        zs = scaler.transform(self.z).astype(np.float32)
        self.X = make_windows(zs, L, 1)[0]                 # (M, L, 1): every window
        self.Y = make_windows(zs, L, h)[1]                 # (M - h + 1, h): full targets
        self.t0 = np.arange(len(self.X)) + L + self.lag

    def part(self, lo: int, hi: int) -> np.ndarray:
        """Windows whose every target lies in [lo, hi)."""
        return np.flatnonzero((self.t0 >= lo) & (self.t0 + self.cfg.horizon <= hi))

    def window_at(self, t0: int) -> int:
        """The window whose first target is at time t0 (reading the data before t0)."""
        i = t0 - self.cfg.lookback - self.lag
        if not 0 <= i:
            fail("t0", f"a time >= lookback + lag = {self.cfg.lookback + self.lag}", t0)
        return i


def _model(cfg: ForecastConfig, seed=None) -> SequenceModel:
    return SequenceModel(input_size=1, hidden_size=cfg.hidden_size, num_layers=cfg.num_layers,
                         cell=cfg.cell, output_size=cfg.horizon * (2 if cfg.gaussian else 1),
                         readout="last", seed=seed)


def _build(cfg, tcfg, run_dir, plan: Plan, log):
    train_idx = plan.part(0, plan.train_end)
    val_idx = plan.part(plan.train_end, plan.test_start)
    train = WindowDataset(plan.X[train_idx], plan.Y[train_idx], cfg.batch_size, seed=tcfg.seed)
    val = (WindowDataset(plan.X[val_idx], plan.Y[val_idx], 256, shuffle=False)
           if len(val_idx) else None)
    model = _model(cfg, seed=tcfg.seed)
    optimizer = make_optimizer(cfg.optimizer, model.params, lr=cfg.lr)
    trainer = Trainer(model, gaussian_nll if cfg.gaussian else mse_loss, optimizer, train, val,
                      config=tcfg, run_dir=run_dir, log=log)
    trainer.schedule = common.make_lr_schedule(cfg.schedule, cfg.lr, trainer.total_steps)
    return trainer


def _finish(trainer, log) -> dict:
    summary = common.fit(trainer, log)
    spread = calibrate(trainer.run_dir)
    log(f"best validation loss {trainer.best_val:.4f}" + (
        f"; interval width x{spread:.2f} to cover the validation period" if spread else "")
        + f"; `rnnkit forecast evaluate {trainer.run_dir}` scores the test period")
    return dict(summary, interval_spread=spread)


def calibrate(run_dir) -> float | None:
    """Scale the Gaussian head's standard deviations so that its intervals cover the wanted
    share of the validation period's one-step errors (a likelihood trained on few windows
    learns too small a variance); saved in calibration.json and used by forecasts after.
    None without a Gaussian head or a validation period."""
    from statistics import NormalDist
    run_dir, cfg, model, scaler, _ = _load(run_dir)
    if not cfg.gaussian or not cfg.val_size:
        return None
    plan = Plan(cfg, read_series(cfg), scaler)
    idx = [plan.window_at(t) for t in range(plan.train_end, plan.test_start)]
    mu, v = split_outputs(model.forward(plan.X[idx], grad=False)[0].astype(np.float64))
    zs = scaler.transform(plan.z)[np.array(idx) + cfg.lookback]            # the true z (scaled)
    r = np.abs(zs - mu[:, 0]) / np.exp(0.5 * np.clip(v[:, 0], -15, 15))
    spread = float(np.quantile(r, cfg.interval) / NormalDist().inv_cdf(0.5 + cfg.interval / 2))
    save_json(run_dir / "calibration.json", {"spread": spread, "points": len(idx)})
    return spread


def train(cfg: ForecastConfig, tcfg: TrainConfig, run_dir, log=print) -> dict:
    common.check_choices(cfg)
    y = read_series(cfg)
    plan = Plan(cfg, y)
    run_dir = common.new_run(run_dir)
    save_json(run_dir / "scaler.json", plan.scaler.to_dict())
    common.save_run_config(run_dir, cfg, tcfg, kind="forecast")
    trainer = _build(cfg, tcfg, run_dir, plan, log)
    log(f"forecast: {plan.T} points, training targets before {plan.train_end}, validation "
        f"{cfg.val_size}, test {cfg.test_size}; {len(trainer.train_data)} training windows "
        f"of {cfg.lookback}; run folder {run_dir}")
    return _finish(trainer, log)


def _load_scaler(run_dir):
    path = run_dir / "scaler.json"
    try:
        return scaler_from_dict(load_json(path))
    except RnnkitError as e:
        if str(path) in str(e):
            raise
        raise RnnkitError(f"{path}: {e}") from None


def resume(run_dir, log=print, **train_overrides) -> dict:
    def build(cfg, tcfg, run):
        return _build(cfg, tcfg, run, Plan(cfg, read_series(cfg), _load_scaler(run)), log)

    return _finish(common.restore_run(run_dir, ForecastConfig, "forecast", train_overrides,
                                      build, log), log)


def _load(run_dir, best: bool = True):
    run_dir, cfg, tcfg, _ = common.load_run_config(run_dir, ForecastConfig, "forecast")
    model = _model(cfg)
    common.load_weights(model, run_dir, best)
    spread = (load_json(run_dir / "calibration.json")["spread"]
              if (run_dir / "calibration.json").is_file() else 1.0)
    return run_dir, cfg, model, _load_scaler(run_dir), spread


def forecast(model, cfg: ForecastConfig, scaler, X: np.ndarray, y: np.ndarray, t0s,
             seed: int = 0, spread: float = 1.0) -> dict:
    """Forecasts of y at t0 ... t0 + h - 1 for each window X[k] (reading y before t0s[k]):
    point (K, h), and with a Gaussian head lower / upper interval bounds (K, h)."""
    out, _, _ = model.forward(X.astype(np.float32), grad=False)
    out = out.astype(np.float64)
    mu, v = split_outputs(out) if cfg.gaussian else (out, None)
    shift, scale = float(np.ravel(scaler.shift)[0]), float(np.ravel(scaler.scale)[0])
    rng = np.random.default_rng(seed)
    alpha = (1 - cfg.interval) / 2
    point, lo, hi = [], [], []
    for k, t0 in enumerate(t0s):
        point.append(series.invert(mu[k][None] * scale + shift, y, t0, cfg.transform,
                                   cfg.season)[0])
        if v is not None:
            sd = spread * np.exp(0.5 * np.clip(v[k], -15, 15))
            paths = mu[k] + sd * rng.standard_normal((SAMPLES, len(sd)))
            sims = series.invert(paths * scale + shift, y, t0, cfg.transform, cfg.season)
            lo.append(np.quantile(sims, alpha, axis=0))
            hi.append(np.quantile(sims, 1 - alpha, axis=0))
    result = {"point": np.array(point)}
    if v is not None:
        result.update(lower=np.array(lo), upper=np.array(hi))
    return result


def _scores(pred: dict, actual: np.ndarray, base: dict) -> dict:
    out = {"points": int(actual.size), "rmse": series.rmse(pred["point"], actual),
           "mae": series.mae(pred["point"], actual),
           "baselines_rmse": {k: series.rmse(b, actual) for k, b in base.items()}}
    if "lower" in pred:
        inside = (actual >= pred["lower"]) & (actual <= pred["upper"])
        out["interval_coverage"] = float(inside.mean())
    return out


def evaluate(run_dir, log=print, split: str = "test", plot: bool = True,
             calibrated: bool = True) -> dict:
    """One-step and (horizon > 1) multi-step scores on the test (or validation) period,
    against the baselines on the same points."""
    run_dir, cfg, model, scaler, spread = _load(run_dir)
    spread = spread if calibrated else 1.0
    y = read_series(cfg)
    plan = Plan(cfg, y, scaler)
    if split == "val":
        if not cfg.val_size:
            fail("split", "'test' (this run has no validation period)", "'val'")
        start, end = plan.train_end, plan.test_start
    else:
        start, end = plan.test_start, plan.T
    times = np.arange(start, end)
    idx = np.array([plan.window_at(t) for t in times])
    one = forecast(model, cfg, scaler, plan.X[idx], y, times, spread=spread)
    one = {k: v[:, 0] for k, v in one.items()}
    base = {}
    for t in times:
        for name, value in series.baselines(y, t, 1, cfg.season).items():
            base.setdefault(name, []).append(value[0])
    result = {"app": "forecast", "data": cfg.data or DATA_SET, "points": plan.T, "split": split,
              "period": f"points {start} to {end - 1}",
              "interval": cfg.interval if cfg.gaussian else None,
              "interval_spread": spread if cfg.gaussian else None,
              "one_step": _scores(one, y[times], base)}
    multi = None
    if cfg.horizon > 1:
        h = min(cfg.horizon, end - start)
        multi = forecast(model, cfg, scaler, plan.X[[plan.window_at(start)]], y, [start],
                         spread=spread)
        multi = {k: v[0, :h] for k, v in multi.items()}
        result["multi_step"] = dict(_scores(multi, y[start:start + h], series.baselines(
            y, start, h, cfg.season)), origin=int(start))
    if plot:
        _plot(run_dir / f"forecast{'_val' if split == 'val' else ''}.png", cfg, y, times, one,
              start, multi)
    return common.write_eval(run_dir, result) if split == "test" else result


def _plot(path, cfg, y, times, one, origin, multi) -> None:
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rnnkit.serialize import atomic_write_bytes
    start = max(0, origin - 3 * max(cfg.season, cfg.lookback))
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(np.arange(start, len(y)), y[start:], "k-", lw=1.2, label="data")
    ax.plot(times, one["point"], "C0.-", lw=1, label="one step ahead")
    if "lower" in one:
        ax.fill_between(times, one["lower"], one["upper"], color="C0", alpha=0.2,
                        label=f"{cfg.interval:.0%} interval (one step)")
    if multi is not None:
        t = np.arange(origin, origin + len(multi["point"]))
        ax.plot(t, multi["point"], "C3-", lw=1.5, label=f"{len(t)} steps from {origin}")
        if "lower" in multi:
            ax.fill_between(t, multi["lower"], multi["upper"], color="C3", alpha=0.15)
    ax.axvline(origin, color="grey", ls=":", lw=1)
    ax.set_xlabel("time index")
    ax.set_ylabel(column_name(cfg))
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def predict(run_dir, inputs: list, *, best: bool = True) -> list:
    """Inputs: the recent history, one number a line, oldest first -> the next `horizon`
    values, one a line (with interval bounds from a Gaussian head)."""
    _, cfg, model, scaler, spread = _load(run_dir, best)
    values = []
    for i, line in enumerate(inputs, 1):
        try:
            values.append(float(line))
        except ValueError:
            fail(f"input line {i}", "a number (the series, one value a line)", repr(line))
    y = np.array(values)
    if not np.isfinite(y).all():
        fail("input", "finite numbers", "NaN or infinity")
    lag = series.lag_of(cfg.transform, cfg.season)
    if len(y) < cfg.lookback + lag:
        fail("input", f"at least lookback + lag = {cfg.lookback + lag} values (the window "
             f"the model reads, after transform {cfg.transform!r})", f"{len(y)} values")
    zs = scaler.transform(series.forward(y, cfg.transform, cfg.season))
    X = zs[-cfg.lookback:].reshape(1, cfg.lookback, 1)
    pred = forecast(model, cfg, scaler, X, y, [len(y)], spread=spread)
    results = []
    for k in range(cfg.horizon):
        row = {"step": k + 1, "forecast": float(pred["point"][0, k])}
        text = f"+{k + 1}\t{row['forecast']:.4g}"
        if "lower" in pred:
            row.update(lower=float(pred["lower"][0, k]), upper=float(pred["upper"][0, k]),
                       interval=cfg.interval)
            text += f"\t[{row['lower']:.4g}, {row['upper']:.4g}]"
        results.append(dict(row, text=text))
    return results
