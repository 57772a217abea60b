"""Data-parallel training on 2 ranks of this machine against one process on the full batch.

The ranks are processes (tests/train/dist_worker.py) meeting through a file-based store in
tmp_path (no ports); the MPI tests need `mpirun` (Open MPI) and mpi4py and are skipped where
either is missing. Tolerances: the ranks must agree bit for bit (they apply the same summed
gradient); against one process the sums are taken in another order (each rank's rows, then
the two ranks'), so float32 agrees to rounding (2e-6 relative to the largest weight after 8
steps, ~16 float32 ulps) and float64, whose rounding is 1e-16, to 1e-12: the normalisation
is exact, not merely close.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnkit.train import distributed
from rnnkit.train.data_parallel import GradientBuffer, rows

WORKER = Path(__file__).with_name("dist_worker.py")
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 240


def _env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", **extra)
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "OMPI_COMM_WORLD_SIZE",
                 "PMI_SIZE", "RNNKIT_DISTRIBUTED", "TORCHELASTIC_RESTART_COUNT"):
        env.pop(name, None)
    env.update(extra)
    return env


def _start_ranks(tmp: Path, run: Path, tag: str, *args, world: int = 2, env=None,
                 per_rank: dict | None = None, out: str | None = None):
    """`world` worker processes meeting in the file store tmp/store-<tag>; rank r writes
    tmp/<out or tag>-r.npz; per_rank: more arguments for some ranks."""
    store = tmp / f"store-{tag}"
    return [subprocess.Popen([sys.executable, str(WORKER), str(tmp / f"{out or tag}-{r}.npz"),
                              str(run), "--init", f"file://{store}", "--rank", str(r),
                              "--world-size", str(world), *args,
                              *(per_rank or {}).get(r, ())],
                             env=env or _env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
            for r in range(world)]


def _wait(procs) -> None:
    for p in procs:
        out, _ = p.communicate(timeout=TIMEOUT)
        assert p.returncode == 0, out[-3000:]


def _weights(path: Path) -> dict:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def _single(tmp: Path, dtype: str = "float32", data: str = "seqs", steps: int = 8) -> dict:
    """The same training in this process, one rank, the full batches (weights, and the
    state carried after the last batch as "carry/<i>")."""
    sys.path.insert(0, str(WORKER.parent))
    try:
        import dist_worker
    finally:
        sys.path.pop(0)
    trainer = dist_worker.make_trainer(tmp / f"single-{dtype}", steps=steps, dtype=dtype,
                                       data=data, comm=distributed.LocalCommunicator())
    trainer.fit()
    carry = {f"carry/{i}": a for i, a in enumerate(trainer.carry or ())}
    return dict(trainer.model.params, step=np.array(trainer.step), **carry)


def _assert_ranks_match_single(ranks: list[dict], single: dict, rtol: float) -> None:
    names = [k for k in single if k != "step" and not k.startswith("carry/")]
    for w in ranks:
        assert int(w["step"]) == int(single["step"]) == 8
        for k in names:                                 # the ranks: bit for bit
            assert w[k].dtype == single[k].dtype
            np.testing.assert_array_equal(w[k], ranks[0][k], err_msg=k)
    scale = max(np.abs(single[k]).max() for k in names)
    for k in names:
        np.testing.assert_allclose(ranks[0][k], single[k], rtol=0, atol=rtol * scale,
                                   err_msg=k)
    moved = max(np.abs(ranks[0][k] - _start()[k]).max() for k in names)
    assert moved > 1e-2                                 # training did change the weights


def _start() -> dict:
    from rnnkit.models import LanguageModel
    return LanguageModel(11, 6, 9, num_layers=2, cell="lstm", seed=1).params


@pytest.mark.parametrize("dtype, data, rtol", [("float32", "seqs", 2e-6),
                                               ("float64", "seqs", 1e-12),
                                               ("float32", "stream", 2e-6)])
def test_two_torch_ranks_equal_one_process_on_the_full_batch(tmp_path, dtype, data, rtol):
    procs = _start_ranks(tmp_path, tmp_path / "run", "torch", "--dtype", dtype,
                         "--data", data)
    single = _single(tmp_path, dtype, data)
    _wait(procs)
    ranks = [_weights(tmp_path / f"torch-{r}.npz") for r in range(2)]
    _assert_ranks_match_single(ranks, single, rtol)
    # rank 0 alone wrote the checkpoints, which hold the ranks' weights and the whole
    # batch's carried state (each rank carries its rows: 3 and 2 of 5)
    from rnnkit.train.checkpoint import latest_checkpoint, load_checkpoint
    ck = load_checkpoint(latest_checkpoint(tmp_path / "run" / "checkpoints"))
    assert ck["trainer"]["step"] == 8
    for k, v in ck["model_params"].items():
        np.testing.assert_array_equal(v, ranks[0][k])
    carried = [single[k] for k in sorted(single) if k.startswith("carry/")]
    assert len(carried) == (2 if data == "stream" else 0)
    for got, want in zip(ck["carry"] or (), carried):
        assert got.shape == want.shape == (2, 5, 9)
        np.testing.assert_allclose(got, want, rtol=0, atol=rtol * 10)


def test_a_killed_rank_resumes_from_the_checkpoint_and_ends_as_an_uninterrupted_run(tmp_path):
    _wait(_start_ranks(tmp_path, tmp_path / "whole", "whole"))
    # rank 1 is killed after step 5; rank 0, left in a collective, fails or is stopped (as
    # torchrun's agent stops the survivors); the last checkpoint is step 4's
    run = tmp_path / "broken"
    procs = _start_ranks(tmp_path, run, "broken", per_rank={1: ("--kill-at", "5")})
    procs[1].communicate(timeout=TIMEOUT)
    assert procs[1].returncode == -signal.SIGKILL
    try:
        procs[0].communicate(timeout=10)
    except subprocess.TimeoutExpired:
        procs[0].kill()
        procs[0].communicate()
    assert procs[0].returncode != 0
    from rnnkit.train.checkpoint import latest_checkpoint
    assert latest_checkpoint(run / "checkpoints").name == "step-00000004.json"
    # the restart: the next attempt on the same store, keyed by TORCHELASTIC_RESTART_COUNT
    _wait(_start_ranks(tmp_path, run, "broken", "--resume",
                       env=_env(TORCHELASTIC_RESTART_COUNT="1"), out="resumed"))
    for r in range(2):
        got = _weights(tmp_path / f"resumed-{r}.npz")
        want = _weights(tmp_path / f"whole-{r}.npz")
        assert int(got["step"]) == 8
        for k in want:
            np.testing.assert_array_equal(got[k], want[k], err_msg=k)


MPI = shutil.which("mpirun") is not None
try:
    import mpi4py  # noqa: F401
except ImportError:
    MPI = False


@pytest.mark.skipif(not MPI, reason="needs mpirun (Open MPI) and mpi4py")
def test_two_mpi_ranks_equal_one_process_on_the_full_batch(tmp_path):
    env = _env(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    # each rank names its own output: the worker's rank from MPI
    script = (f"import sys, runpy; from mpi4py import MPI; r = MPI.COMM_WORLD.Get_rank(); "
              f"sys.argv = [{str(WORKER)!r}, {str(tmp_path)!r} + f'/mpi-{{r}}.npz', "
              f"{str(tmp_path / 'run')!r}, '--backend', 'mpi']; "
              f"runpy.run_path({str(WORKER)!r}, run_name='__main__')")
    proc = subprocess.run(["mpirun", "-n", "2", sys.executable, "-c", script], env=env,
                          capture_output=True, text=True, timeout=TIMEOUT)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    ranks = [_weights(tmp_path / f"mpi-{r}.npz") for r in range(2)]
    assert [int(w["rank"]) for w in ranks] == [0, 1]
    _assert_ranks_match_single(ranks, _single(tmp_path), 2e-6)


# --- the parts, in this process -----------------------------------------------------------
def test_rows_split_every_row_once_the_first_ranks_taking_the_remainder():
    assert [rows(7, r, 2) for r in range(2)] == [slice(0, 4), slice(4, 7)]
    assert [rows(1, r, 2) for r in range(2)] == [slice(0, 1), slice(1, 1)]
    for n in range(12):
        for w in (1, 2, 3, 5):
            parts = [rows(n, r, w) for r in range(w)]
            assert np.array_equal(np.concatenate([np.arange(n)[p] for p in parts]),
                                  np.arange(n))


@pytest.mark.parametrize("tie", [False, True])
def test_gradients_become_views_of_one_buffer_that_backward_writes(tie):
    from rnnkit.models import LanguageModel
    model = LanguageModel(11, 8, 8, num_layers=2, tie_weights=tie, seed=0)
    x = np.array([[1, 2, 3], [4, 5, 6]])
    out, _, cache = model.forward(x, training=True)
    model.backward(np.ones_like(out), cache)
    want = {k: g.copy() for k, g in model.grads.items()}
    buffer = GradientBuffer(model)
    assert buffer.shared and len(buffer.buffers) == 1
    for k, g in model.grads.items():
        assert np.shares_memory(g, buffer.buffers[0])
        np.testing.assert_array_equal(g, want[k])
    model.zero_grad()
    assert not buffer.buffers[0].any()
    out, _, cache = model.forward(x, training=True)
    model.backward(np.ones_like(out), cache)        # the layers write into the buffer
    for k, g in model.grads.items():
        np.testing.assert_array_equal(g, want[k])
    assert np.abs(buffer.buffers[0]).sum() == pytest.approx(
        sum(np.abs(g).sum(dtype=np.float64) for g in want.values()), rel=1e-6)


def test_a_gradient_held_where_it_cannot_be_replaced_is_copied_instead():
    from rnnkit.models import LanguageModel
    model = LanguageModel(11, 4, 5, seed=0)
    model.hidden = (model.grads["head.b_y"],)       # a tuple: out of reach
    buffer = GradientBuffer(model)
    assert not buffer.shared
    model.grads["head.b_y"][...] = 3
    buffer.gather()
    assert (buffer.views["head.b_y"] == 3).all()
    buffer.views["head.b_y"][...] = 4
    buffer.scatter()
    assert (model.hidden[0] == 4).all()


@pytest.mark.parametrize("environ, want", [
    ({}, "local"),
    ({"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"}, "torch"),
    ({"RANK": "0", "WORLD_SIZE": "1", "TORCHELASTIC_RUN_ID": "x"}, "local"),
    ({"OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_RANK": "0"}, "mpi"),
    ({"PMI_SIZE": "4", "PMI_RANK": "3"}, "mpi"),
    ({"OMPI_COMM_WORLD_SIZE": "2", "RNNKIT_DISTRIBUTED": "local"}, "local"),
    ({"RNNKIT_DISTRIBUTED": "torch"}, "torch"),
])
def test_the_backend_comes_from_the_launchers_variables(environ, want):
    assert distributed.detect_backend(environ) == want


def test_an_unknown_backend_is_refused_by_name():
    from rnnkit.errors import RnnkitError
    with pytest.raises(RnnkitError, match="RNNKIT_DISTRIBUTED.*'gloo'"):
        distributed.detect_backend({"RNNKIT_DISTRIBUTED": "gloo"})
    with pytest.raises(RnnkitError, match="distributed"):
        distributed.connect("nccl")
