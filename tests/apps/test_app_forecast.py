"""The forecasting application: the Gaussian head's gradient, the transforms and baselines,
and the pipeline on a tiny synthetic seasonal series."""
import json

import numpy as np
import pytest

from app_helpers import assert_resume_is_bit_identical
from gradcheck import numeric_grad
from rnnkit.apps import forecast as forecast_app, series
from rnnkit.apps.gaussian import gaussian_nll, mse_loss
from rnnkit.cli import main
from rnnkit.train import read_metrics


@pytest.mark.parametrize("loss_fn, width", [(gaussian_nll, 6), (mse_loss, 3)])
def test_losses_match_finite_differences_in_float64(loss_fn, width):
    rng = np.random.default_rng(0)
    out = rng.standard_normal((4, width))
    y = rng.standard_normal((4, 3))
    loss, d = loss_fn(out, y)
    np.testing.assert_allclose(d, numeric_grad(lambda: loss_fn(out, y)[0], out), rtol=1e-6,
                               atol=1e-9)


def test_gaussian_nll_is_the_normal_log_density():
    mu, log_var, y = 0.3, np.log(2.0), 1.1
    loss, _ = gaussian_nll(np.array([[mu, log_var]]), np.array([[y]]))
    density = np.exp(-(y - mu) ** 2 / 4) / np.sqrt(2 * np.pi * 2)
    assert loss == pytest.approx(-np.log(density))


@pytest.mark.parametrize("transform", series.TRANSFORMS)
def test_transforms_invert_exactly_over_several_steps(transform):
    y = np.random.default_rng(1).uniform(1, 5, 40)
    z, lag = series.forward(y, transform, 12), series.lag_of(transform, 12)
    assert len(z) == 40 - lag
    t0 = 30                 # steps after t0 are rebuilt from the forecast's own levels
    back = series.invert(z[t0 - lag:t0 - lag + 8][None], y, t0, transform, 12)
    np.testing.assert_allclose(back[0], y[t0:t0 + 8], rtol=1e-12)


def test_baselines_on_a_small_series():
    y = np.arange(1.0, 31.0)            # 1 .. 30
    b = series.baselines(y, 26, 2, season=12)
    np.testing.assert_array_equal(b["naive"], [26, 26])
    np.testing.assert_array_equal(b["seasonal_naive"], [15, 16])    # y[14], y[15]
    np.testing.assert_allclose(b["seasonal_naive_growth"], np.array([15, 16]) * 26 / 14)


def write_series(path, n=120):
    t = np.arange(n)
    y = 100 * np.exp(0.01 * t) * (1 + 0.2 * np.sin(2 * np.pi * t / 12))
    y *= np.exp(np.random.default_rng(0).normal(0, 0.01, n))
    path.write_text("month,value\n" + "".join(f"m{i},{v:.4f}\n" for i, v in enumerate(y)))
    return path, y


def args(data, run, *extra):
    return ["forecast", "train", "--data", str(data), "--run-dir", str(run), "--test-size", "24",
            "--val-size", "12", "--hidden-size", "8", "--no-progress", *extra]


def test_train_evaluate_predict(tmp_path, capsys):
    data, y = write_series(tmp_path / "s.csv")
    run = tmp_path / "run"
    assert main(args(data, run, "--gaussian", "--horizon", "3", "--epochs", "30",
                     "--transform", "log_seasonal_diff")) == 0
    rows = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "validation"]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"]
    capsys.readouterr()
    assert main(["forecast", "evaluate", str(run)]) == 0
    capsys.readouterr()
    ev = json.loads((run / "eval.json").read_text())
    one, multi = ev["one_step"], ev["multi_step"]
    assert one["points"] == 24 and multi["points"] == 3 and multi["origin"] == 96
    assert 0 <= one["interval_coverage"] <= 1
    assert one["rmse"] < one["baselines_rmse"]["naive"]     # it learnt the season
    assert set(one["baselines_rmse"]) == {"naive", "seasonal_naive", "seasonal_naive_growth"}
    assert (run / "forecast.png").stat().st_size > 1000
    spread = json.loads((run / "calibration.json").read_text())["spread"]
    assert ev["interval_spread"] == spread > 0
    # the head's own variance: intervals 1 / spread times as wide about the same point, so
    # covering at least as much where the calibration narrowed them, at most where it widened
    raw = forecast_app.evaluate(run, log=lambda *a: None, plot=False, calibrated=False)
    assert raw["interval_spread"] == 1.0
    assert raw["one_step"]["rmse"] == one["rmse"]
    wider = raw["one_step"]["interval_coverage"] - one["interval_coverage"]
    assert wider >= 0 if spread < 1 else wider <= 0
    same = forecast_app.evaluate(run, log=lambda *a: None, plot=False)
    assert same["one_step"]["interval_coverage"] == one["interval_coverage"]

    history = "\n".join(f"{v:.4f}" for v in y[:60])
    (tmp_path / "h.txt").write_text(history + "\n")
    assert main(["forecast", "predict", str(run), "--file", str(tmp_path / "h.txt"),
                 "--json"]) == 0
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["step"] for o in out] == [1, 2, 3]
    for o in out:
        assert o["lower"] < o["forecast"] < o["upper"]
        assert abs(o["forecast"] - y[59 + o["step"]]) < 0.2 * y[60]


def test_resume_continues_bit_identically(tmp_path):
    data, _ = write_series(tmp_path / "s.csv")
    assert_resume_is_bit_identical("forecast", lambda run: args(data, run, "--gaussian"),
                                   tmp_path, 5, 12)


def test_bad_inputs_are_one_line(tmp_path, capsys):
    data, y = write_series(tmp_path / "s.csv", n=40)
    cases = [(args(tmp_path / "none.csv", tmp_path / "r"), "--data: expected a CSV file"),
             (args(data, tmp_path / "r"), "series: expected more than test_size + val_size"),
             (args(data, tmp_path / "r", "--column", "price"), "column: expected column name"),
             (args(data, tmp_path / "r", "--transform", "cube"), "invalid choice")]
    bad = tmp_path / "bad.csv"
    bad.write_text("month,value\nm0,1\nm1,oops\n")
    cases.append((args(bad, tmp_path / "r"), "bad.csv:3: expected numbers"))
    for argv, message in cases:
        code = None
        try:
            code = main(argv)
        except SystemExit as e:           # argparse refuses a value outside the choices
            code = e.code
        err = capsys.readouterr().err
        assert code == 2 and message in err, err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    run = tmp_path / "run"
    assert main(args(data, run, "--test-size", "6", "--val-size", "0", "--max-steps", "2")) == 0
    capsys.readouterr()
    for inputs, message in ((["1", "2", "3"], "at least lookback + lag = 24 values"),
                            (["1", "x"], "input line 2: expected a number")):
        assert main(["forecast", "predict", str(run), *inputs]) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
