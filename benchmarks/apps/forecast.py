"""Forecasting benchmarks: airline passengers (train on the first 96 months, forecast the last
48), with settings chosen on the 12 validation months (84-95); the stock series (the next
day's close from the past 5 days) against the naive last close; SARIMA(0,1,1)(0,1,1)12 on
logs (statsmodels, fitted on the first 96 months) on the airline test period.

    nice -n 5 python benchmarks/apps/forecast.py [--only airline|stocks|sunspots]

Writes benchmarks/results/apps/forecast.json.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

import _common
from rnnkit.apps import forecast, series

AIRLINE = _common.DATA / "timeseries" / "airline_passengers.csv"


def sarima_airline(y: np.ndarray, start: int = 96) -> dict:
    from statsmodels.tsa.statespace.sarimax import SARIMAX
    warnings.simplefilter("ignore")
    fit = SARIMAX(np.log(y[:start]), order=(0, 1, 1), seasonal_order=(0, 1, 1, 12)).fit(disp=False)
    one = np.exp(fit.apply(np.log(y)).get_prediction(start=start).predicted_mean)
    twelve = np.exp(fit.forecast(12))
    return {"one_step_rmse": series.rmse(one, y[start:]),
            "twelve_month_rmse": series.rmse(twelve, y[start:start + 12])}


def run(cfg, tcfg, work: Path, name: str, split: str):
    start = time.perf_counter()
    forecast.train(cfg, tcfg, work / name, log=lambda *a: None)
    seconds = time.perf_counter() - start
    return forecast.evaluate(work / name, log=lambda *a: None, split=split), seconds


def uncalibrated_coverage(run_dir: Path, metric: str = "one_step") -> float:
    """The test coverage of the Gaussian head's own intervals, without the validation
    period's calibration (calibration.json)."""
    scores = forecast.evaluate(run_dir, log=lambda *a: None, plot=False, calibrated=False)
    return scores[metric]["interval_coverage"]


GRID = [dict(transform=t, hidden_size=h, epochs=e) for t in ("log_seasonal_diff", "log_both_diff")
        for h in (8, 32) for e in (30, 100)]


def airline(work: Path) -> dict:
    """Each setting trains on months 0-71, keeping the weights with the best validation loss
    on 72-95, and is scored on 72-95 (one-step RMSE, or for 12 months the RMSE of the forecast
    of 72-83 made at 72); the best one is scored once on 96-143 ("test"). Also reported: the
    same setting trained again on months 0-95 for as many epochs, with no validation and so
    no early stopping or interval calibration ("test_refit_on_0_95")."""
    y = forecast.read_series(forecast.ForecastConfig(data=str(AIRLINE)))
    out = {"split": "settings chosen training on months 0-71 and scoring 72-95; the chosen run "
           "tested on 96-143 (the last 48)",
           "sarima_0_1_1_0_1_1_12_logs": sarima_airline(y)}
    for horizon, key, metric in ((1, "one_step", "one_step"), (12, "twelve_month", "multi_step")):
        tried = []
        for g in GRID:
            cfg = forecast.ForecastConfig(data=str(AIRLINE), test_size=48, val_size=24,
                                          gaussian=True, lookback=13, horizon=horizon,
                                          transform=g["transform"], hidden_size=g["hidden_size"])
            tcfg = replace(forecast.default_train_config(), epochs=float(g["epochs"]),
                           progress=False)
            name = f"{key}-{g['transform']}-{g['hidden_size']}-{g['epochs']}"
            val, seconds = run(cfg, tcfg, work, name, "val")
            tried.append(dict(g, val_rmse=val[metric]["rmse"], train_seconds=seconds))
            print(key, tried[-1])
        best = min(tried, key=lambda r: r["val_rmse"])
        chosen = f"{key}-{best['transform']}-{best['hidden_size']}-{best['epochs']}"
        test = forecast.evaluate(work / chosen, log=lambda *a: None)
        shutil.copy(work / chosen / "forecast.png", _common.RESULTS / f"forecast_airline_{key}.png")
        cfg = forecast.ForecastConfig(data=str(AIRLINE), test_size=48, val_size=0,
                                      gaussian=True, lookback=13, horizon=horizon,
                                      transform=best["transform"], hidden_size=best["hidden_size"])
        tcfg = replace(forecast.default_train_config(), epochs=float(best["epochs"]),
                       progress=False)
        refit, seconds = run(cfg, tcfg, work, f"{key}-refit", "test")
        out[key] = {"tried_on_validation": tried, "chosen": best, "test": test[metric],
                    "interval_spread": test["interval_spread"],
                    "test_coverage_uncalibrated": uncalibrated_coverage(work / chosen, metric),
                    "test_refit_on_0_95": refit[metric], "refit_train_seconds": seconds,
                    "settings": asdict(replace(cfg, val_size=24)), "train": asdict(tcfg)}
        print(key, "test", test[metric], "refit", refit[metric])
    return out


def stock(work: Path, name: str, column: str, test_size: int, val_size: int) -> dict:
    path = _common.DATA / "timeseries" / f"{name}_daily.csv"
    cfg = forecast.ForecastConfig(data=str(path), column=column, test_size=test_size,
                                  val_size=val_size, transform="log_diff", season=0,
                                  lookback=5, gaussian=True, hidden_size=16, batch_size=64)
    tcfg = replace(forecast.default_train_config(), epochs=10.0, progress=False)
    test, seconds = run(cfg, tcfg, work, name, "test")
    print(name, test["one_step"])
    return {"split": f"the last {test_size} trading days test, the {val_size} before "
            "validate, the rest trains", "test": test["one_step"], "train_seconds": seconds,
            "interval_spread": test["interval_spread"],
            "test_coverage_uncalibrated": uncalibrated_coverage(work / name),
            "settings": asdict(cfg), "train": asdict(tcfg)}


def sunspots(work: Path) -> dict:
    path = _common.DATA / "timeseries" / "sunspots_monthly.csv"
    cfg = forecast.ForecastConfig(data=str(path), test_size=564, val_size=282, transform="none",
                                  season=0, lookback=24, gaussian=True, hidden_size=32,
                                  batch_size=64)
    tcfg = replace(forecast.default_train_config(), epochs=20.0, progress=False)
    test, seconds = run(cfg, tcfg, work, "sunspots", "test")
    print("sunspots", test["one_step"])
    return {"split": "the last 564 months (20 %) test, the 282 before validate",
            "test": test["one_step"], "train_seconds": seconds,
            "interval_spread": test["interval_spread"],
            "test_coverage_uncalibrated": uncalibrated_coverage(work / "sunspots"), "settings": asdict(cfg),
            "train": asdict(tcfg)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=("airline", "stocks", "sunspots"))
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="forecast-bench-"))
    _common.RESULTS.mkdir(parents=True, exist_ok=True)
    result = {}
    if args.only in (None, "airline"):
        result["airline"] = airline(work)
    if args.only in (None, "stocks"):
        result["aapl"] = stock(work, "aapl", "adj_close", 652, 327)
        result["msft"] = stock(work, "msft", "Close", 1597, 798)
    if args.only in (None, "sunspots"):
        result["sunspots"] = sunspots(work)
    _common.write("forecast" + (f"_{args.only}" if args.only else ""), result)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
