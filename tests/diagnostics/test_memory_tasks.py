"""The long-memory tasks' data, baselines and scores, exactly."""
import math

import numpy as np
import pytest

from rnnkit.diagnostics import memory_runner as runner
from rnnkit.diagnostics import memory_tasks as tasks
from rnnkit.errors import RnnkitError


def test_adding_problem_target_is_the_sum_of_the_two_marked_values():
    x, y, pos = tasks.adding_problem(500, 30, np.random.default_rng(3))
    assert x.shape == (500, 30, 2) and y.shape == (500, 1) and x.dtype == np.float32
    values, markers = x[..., 0], x[..., 1]
    assert np.all(markers.sum(axis=1) == 2) and set(np.unique(markers)) == {0.0, 1.0}
    for i in range(500):
        marked = np.flatnonzero(markers[i])
        assert list(marked) == list(pos[i])
        assert y[i, 0] == values[i, marked[0]] + values[i, marked[1]]
    assert np.all(pos[:, 0] < 15) and np.all(pos[:, 1] >= 15)      # one marker per half
    assert values.min() >= -1 and values.max() <= 1 and values.min() < -0.99
    # the seed fixes the data
    again = tasks.adding_problem(500, 30, np.random.default_rng(3))
    assert np.array_equal(again[0], x) and np.array_equal(again[1], y)


def test_adding_baseline_formulas_match_sampling():
    base = tasks.adding_baseline(0.04)
    assert base["mse"] == pytest.approx(2 / 3)
    assert base["solved"] == pytest.approx(0.04 - 0.04 ** 2 / 4)
    _, y, _ = tasks.adding_problem(200_000, 4, np.random.default_rng(0))
    zero = tasks.adding_scores(np.zeros_like(y), y)
    assert zero["mse"] == pytest.approx(2 / 3, rel=0.01)
    assert zero["solved"] == pytest.approx(base["solved"], abs=0.002)
    assert zero["task_solved"] is False


def test_adding_scores_count_errors_below_the_tolerance():
    y = np.zeros((4, 1))
    pred = np.array([[0.01], [-0.039], [0.05], [0.2]])
    s = tasks.adding_scores(pred, y, 0.04)
    assert s["solved"] == 0.5 and s["solved_hs97"] == 0.75
    assert s["mse"] == pytest.approx(np.mean(pred ** 2))
    assert tasks.adding_scores(y + 0.01, y)["task_solved"] is True


def test_copy_memory_layout():
    T, L = 7, 4
    x, y = tasks.copy_memory(50, T, np.random.default_rng(1), symbols=5, length=L)
    assert x.shape == y.shape == (50, T + 2 * L)
    data = x[:, :L]
    assert data.min() >= 1 and data.max() <= 5
    assert np.all(x[:, L:L + T - 1] == 0)                   # T - 1 blanks
    assert np.all(x[:, L + T - 1] == 6)                     # the delimiter
    assert np.all(x[:, L + T:] == 0)                        # blanks while the copy is read
    assert np.all(y[:, :T + L] == 0)
    assert np.array_equal(y[:, T + L:], data)               # the copy, in order
    assert tasks.copy_vocab(5) == 7


def test_copy_baseline_is_the_memoryless_models_loss():
    assert tasks.copy_baseline(100) == pytest.approx(10 * math.log(8) / 120)
    task = runner.copy_task(12, symbols=8, length=10)
    x, y, extra = task.make(30, np.random.default_rng(0))
    scores = runner.null_scores(task, (x, y, extra))
    assert scores["cross_entropy"] == pytest.approx(tasks.copy_baseline(12), rel=1e-6)
    assert scores["symbol_accuracy"] == pytest.approx(np.mean(y[:, -10:] == 1))


def test_key_recall_puts_the_key_gap_steps_before_the_query():
    keys, distractors, steps = 5, 7, 12
    gaps = np.array([0, 3, 10, 5])
    x, y, g = tasks.key_recall(4, steps, gaps, np.random.default_rng(2), keys, distractors)
    assert x.shape == (4, steps) and y.shape == (4,) and np.array_equal(g, gaps)
    assert np.all(x[:, -1] == keys + distractors)           # the query
    for i in range(4):
        key_at = np.flatnonzero(x[i] < keys)
        assert list(key_at) == [steps - 2 - gaps[i]]        # exactly one key, G before query
        assert x[i, key_at[0]] == y[i]
        assert np.all((x[i, :-1] >= keys) | (np.arange(steps - 1) == key_at[0]))
    assert tasks.recall_vocab(keys, distractors) == 13


def test_recall_scores_by_gap():
    logits = np.eye(3)[[0, 1, 2, 0]]
    s = tasks.recall_scores(logits, np.array([0, 1, 0, 0]), np.array([1, 1, 4, 4]))
    assert s["accuracy"] == 0.75 and s["by_gap"] == {1: 1.0, 4: 0.5}


def test_recall_test_set_has_each_gap_equally():
    task = runner.recall_task(20, [0, 10, 20], keys=4, distractors=5)
    x, y, g = task.make_test(30, np.random.default_rng(0))
    assert x.shape == (30, 22) and sorted(np.bincount(g)[[0, 10, 20]]) == [10, 10, 10]
    _, _, g = task.make(1000, np.random.default_rng(0))
    assert g.min() == 0 and g.max() == 20


@pytest.mark.parametrize("call, name", [
    (lambda: tasks.adding_problem(4, 1), "T"),
    (lambda: tasks.adding_problem(0, 10), "n"),
    (lambda: tasks.copy_memory(4, 10, symbols=1), "symbols"),
    (lambda: tasks.key_recall(4, 10, 9), "gaps"),
    (lambda: tasks.key_recall(4, 10, -1), "gaps"),
    (lambda: tasks.adding_baseline(0.0), "tolerance"),
    (lambda: runner.parse_cells("lstm,elman"), "cells"),
    (lambda: runner.parse_cells("lstm,lstm"), "cells"),
    (lambda: runner.recall_task(10, [0, 11]), "gaps"),
])
def test_bad_settings_name_the_argument(call, name):
    with pytest.raises(RnnkitError, match=f"^{name}: expected"):
        call()


def test_cells_by_name_include_every_registered_cell_and_irnn():
    from rnnkit import cells
    assert set(cells.CELLS) | {"irnn"} == set(runner.cell_names())
    assert runner.cell_setup("irnn") == ("rnn", {"nonlinearity": "relu", "init": "irnn"})
    assert runner.cell_setup("gru") == ("gru", {})


def test_training_curve_windows():
    assert runner.windows([1, 2, 3, 4, 5], 2) == [[3, 2.0], [5, 4.5]]
    assert runner.windows([1, float("nan"), float("nan"), float("nan")], 2) == [[2, 1.0]]
    assert runner.windows([0.5, 0.25], 200) == [[1, 0.5], [2, 0.25]]
