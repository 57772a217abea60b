"""Shared by the apps' tests: a run stopped after some step, resumed, against one never stopped."""
import shutil

import numpy as np

from rnnkit.cli import main
from rnnkit.serialize import save_json
from rnnkit.train.checkpoint import latest_checkpoint, load_checkpoint


def assert_resume_is_bit_identical(app: str, train_args, tmp_path, stop: int, total: int):
    """train_args(run_dir) -> argv of `rnnkit APP train`. Trains `total` steps with a
    checkpoint every `stop`; a copy of the run rolled back to its checkpoint at `stop` (as
    if it had crashed there) is resumed, and must end with the same weights, bit for bit."""
    full = tmp_path / "full"
    assert main(train_args(full) + ["--max-steps", str(total), "--checkpoint-every",
                                    str(stop), "--keep-checkpoints", "100"]) == 0
    crashed = tmp_path / "crashed"
    shutil.copytree(full, crashed)
    for f in (crashed / "checkpoints").glob("step-*"):
        if int(f.name[5:13]) > stop:
            f.unlink()
    save_json(crashed / "checkpoints" / "latest.json", {"step": stop})
    assert main([app, "resume", str(crashed)]) == 0
    a = load_checkpoint(latest_checkpoint(full / "checkpoints"))
    b = load_checkpoint(latest_checkpoint(crashed / "checkpoints"))
    assert a["trainer"]["step"] == b["trainer"]["step"] == total
    for name, value in a["model_params"].items():
        np.testing.assert_array_equal(value, b["model_params"][name], err_msg=name)
    for name, value in a["optim_state"]["slots"].items():
        np.testing.assert_array_equal(value, b["optim_state"]["slots"][name], err_msg=name)
