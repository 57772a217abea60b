"""Bad settings on the command line are refused before any work: one line on stderr, exit
status 2, and no run folder written (issue 29's list: all were tracebacks or accepted)."""
import pytest

from rnnkit.cli import main

BAD = [("--val-fraction", "1.5", "val_fraction: expected a number in (0, 0.9], got 1.5"),
       ("--sample-length", "-1", "sample_length: expected a number in [0, 1000000], got -1"),
       ("--temperature", "0", "temperature: expected a number in (0, inf], got 0.0"),
       ("--prime", "ZZZ", "prime: expected at least one character, each seen in the "
                          "training text, got unknown ['Z']"),
       ("--bptt", "-2", "bptt: expected a value >= 0 (0 = off), got -2"),
       ("--epochs", "nan", "epochs: expected a finite number, got nan"),
       ("--val-every", "-3", "val_every: expected a value >= 0, got -3"),
       ("--checkpoint-every", "-1", "checkpoint_every: expected a value >= 0 (0 = off), got -1"),
       ("--patience", "-1", "patience: expected a value >= 0 (0 = off), got -1"),
       ("--clip-norm", "-1", "clip_norm: expected a value >= 0 (0 = off), got -1.0"),
       ("--hidden-size", "0", "hidden_size: expected a number in [1, inf], got 0"),
       ("--lr", "0", "lr: expected a number in (0, inf], got 0.0"),
       ("--dropout", "2", "dropout: expected a number in [0, 0.99], got 2.0"),
       ("--max-bad-steps", "0", "max_bad_steps: expected a value >= 1, got 0")]


@pytest.mark.parametrize("flag,value,message", BAD, ids=[b[0] for b in BAD])
def test_bad_text_settings_are_one_line_before_any_work(tmp_path, capsys, flag, value, message):
    text = tmp_path / "t.txt"
    text.write_text("hello world, a small text. " * 200, "utf-8")
    run = tmp_path / "run"
    code = main(["text", "train", "--text", str(text), "--run-dir", str(run), "--max-steps",
                 "1", "--no-progress", "--prime", "hello", flag, value])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0] == f"rnnkit text train: {message}"
    assert not run.exists()


def test_a_file_that_is_not_utf8_is_one_line(tmp_path, capsys):
    text = tmp_path / "t.txt"
    text.write_bytes(b"\xff\xfe bad")
    assert main(["text", "train", "--text", str(text), "--run-dir", str(tmp_path / "r"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "text: expected a UTF-8 text file" in err[0]


@pytest.mark.parametrize("argv,message", [
    (["sentiment", "train", "--embed-dropout", "1.5"],
     "embed_dropout: expected a number in [0, 0.99], got 1.5"),
    (["forecast", "train", "--interval", "1.0"], "interval: expected a number in (0, 0.99], got 1.0"),
    (["translate", "train", "--max-words", "0"], "max_words: expected a number in [1, 1000000], got 0"),
    (["words", "train", "--hidden-size", "-4"], "hidden_size: expected a number in [1, 1000000], got -4"),
    (["mnist", "train", "--lr", "-1"], "lr: expected a number in (0, inf], got -1.0"),
    (["ner", "train", "--unk-replace", "2"], "unk_replace: expected a number in [0, 0.99], got 2.0"),
    (["caption", "train", "--batch-size", "0"], "batch_size: expected a number in [1, 1000000], got 0"),
])
def test_every_app_refuses_settings_out_of_range_before_reading_data(tmp_path, capsys, argv,
                                                                     message):
    run = tmp_path / "run"
    assert main(argv + ["--run-dir", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].endswith(message) and not run.exists()
