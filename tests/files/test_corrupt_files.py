"""Every loader facing a corrupted file: truncated, bit-flipped, fields deleted, of the wrong
type, absurd sizes, unknown fields (tests/corrupt.py). Each gives one RnnkitError or loads a
model that computes exactly what the good file's does; bytes changed inside weight data (which
no format can tell from other weights) are the one exception. A sample of each kind runs here;
benchmarks/fuzz_files.py runs many more and writes the counts."""
import random

import pytest

import corrupt

PER_KIND = 24


@pytest.mark.parametrize("kind", corrupt.KINDS)
def test_corrupt_files_give_one_clear_error_or_the_same_model(kind, tmp_path_factory):
    folder = tmp_path_factory.mktemp(kind)
    defects, seen = [], 0
    for case in corrupt.run_cases(folder, kind, random.Random(kind), PER_KIND):
        result = corrupt.outcome(case, folder / "work")
        seen += 1
        weights = case[7] == "weights-bytes"
        if result not in ("clear", "same") and not (result == "changed" and weights):
            defects.append((case[1], result))
    assert seen >= PER_KIND and defects == []
