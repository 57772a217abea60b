"""The character-LM application and its command line."""
import numpy as np

from rnnkit.apps import char_lm
from rnnkit.cli import main
from rnnkit.data import bundled_text
from rnnkit.train import read_metrics


def test_train_char_from_the_command_line_lowers_validation_loss(tmp_path, capsys):
    text = tmp_path / "text.txt"
    text.write_text(bundled_text()[:60_000], "utf-8")
    run = tmp_path / "run"
    assert main(["train-char", "--text", str(text), "--run-dir", str(run), "--hidden-size", "48",
                 "--embed-dim", "16", "--batch-size", "16", "--seq-len", "32", "--lr", "0.01",
                 "--epochs", "2", "--val-every", "20", "--sample-length", "40",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "validation loss before training" in out and "--- sample" in out
    vals = [r["val_loss"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "validation"]
    assert len(vals) >= 4
    assert vals[-1] < vals[0] - 0.3 < np.log(60)              # well below the first validation
    for name in ("config.json", "vocab.json", "best.safetensors", "loss_curve.png"):
        assert (run / name).is_file()

    assert main(["sample", str(run), "--length", "25", "--prime", "KING.\n"]) == 0
    sample = capsys.readouterr().out
    assert sample.startswith("KING.\n") and len(sample.rstrip("\n")) >= 25


def test_cli_reports_a_missing_text_file_without_a_traceback(tmp_path, capsys):
    assert main(["train-char", "--text", str(tmp_path / "nope.txt"), "--run-dir",
                 str(tmp_path / "r"), "--no-progress"]) == 2
    assert "text: expected a UTF-8 text file" in capsys.readouterr().err


def test_demo_defaults_are_a_real_model():
    cfg, tcfg = char_lm.CharLMConfig(), char_lm.default_train_config()
    assert (cfg.cell, cfg.hidden_size, cfg.seq_len) == ("lstm", 256, 64)
    assert tcfg.val_every > 0 and tcfg.clip_norm > 0
