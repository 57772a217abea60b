"""Fuzzing the command line (issue 29): bad values for every flag, positional and input of
every command (tests/fuzz/cli_cases.py) give one clear line on stderr naming what was wrong,
a non-zero exit, no traceback, and no run folder changed or left behind.

The suite runs one value of each flag of each command (424 cases, the values rotating
so that every kind of bad value is tried somewhere); benchmarks/fuzz_cli.py runs them all."""
import pytest

import cli_cases
from rnnkit.apps import APPS
from rnnkit.cli import TOOLS


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    return cli_cases.make_fixtures(tmp_path_factory.mktemp("cli-fuzz"))


@pytest.fixture(scope="module")
def all_cases(fixtures):
    return cli_cases.cases(fixtures)


def test_the_cases_cover_every_command_flag_and_kind_of_value(all_cases):
    commands = {c.command for c in all_cases}
    for app in APPS:
        for verb in ("train", "evaluate", "resume"):
            assert f"{app} {verb}" in commands
        assert any(c.command.startswith(app) and c.target == "INPUT" for c in all_cases)
    assert {"demo", "train-char", "sample", "resume"} <= commands
    for tool in TOOLS:              # a tool, or each of its own verbs (rnnkit data get)
        assert any(c == tool or c.startswith(tool + " ") for c in commands), tool
    values = {c.value for c in all_cases}
    for value in ("nan", "inf", "-1", "0", str(10 ** 12), "", "unknown", cli_cases.NOT_UTF8,
                  "path:missing", "path:folder", "path:png", "path:empty", "path:blank line",
                  "zzqx qqzv", "x"):
        assert value in values, value
    assert len(all_cases) > 2000


def one_value_per_flag(cases):
    """A value of each (command, flag), rotating through the flag's values."""
    groups = {}
    for case in cases:
        groups.setdefault((case.command, case.target), []).append(case)
    return [group[i % len(group)] for i, group in enumerate(groups.values())]


def test_bad_values_give_one_clear_line(all_cases):
    problems = []
    for case in one_value_per_flag(all_cases):
        kind, detail = cli_cases.outcome(case)
        cli_cases.cleanup(case)
        if kind != "clear":
            problems.append(f"{case.id}: {kind}: {detail}")
    assert problems == []


def test_the_harness_tells_a_traceback_and_an_acceptance_from_a_clear_error(fixtures):
    """A bad value that gets through (0 is a valid --seed) and a crash are both counted."""
    good = cli_cases.Case("text train", "--seed", "0", cli_cases._base(
        fixtures, "text train", "text", "train", fixtures.folder / "new" / "x") + ["--seed", "0"],
        "text", "train", cwd=fixtures.folder)
    assert cli_cases.outcome(good)[0] == "accepted"
    cli_cases.cleanup(good)
    crash = cli_cases.Case("mnist predict", "INPUT", "x", ["mnist", "predict",
                                                           str(fixtures.runs["mnist"]), "test:0"],
                           "mnist", "predict", cwd=fixtures.folder)
    from unittest import mock
    with mock.patch("rnnkit.apps.mnist.probabilities", side_effect=KeyError("boom")):
        assert cli_cases.outcome(crash)[0] == "traceback"
