"""Every loader facing a corrupted file: truncated, bit-flipped, fields deleted, of the wrong
type, absurd sizes, unknown fields (tests/corrupt.py); every application's run folder
(tests/corrupt_apps.py: each file predict, evaluate and resume read); the data files and the
ONNX importer (tests/corrupt_data.py: also foreign files). Each gives one RnnkitError (naming
the file, for run folders and data files) or loads what computes exactly what the good file's
does. The exceptions, counted apart: bytes changed inside weight data (which no format can
tell from other weights), a class's display name changed (another valid name), and a data
file that still parses (a data file is simply other data). A sample of each kind runs here;
benchmarks/fuzz_files.py runs many more and writes the counts."""
import random

import pytest

import corrupt

PER_KIND = 24
PER_RUN = 16            # an app's run: a random 16 of its cases (each runs predict, evaluate
                        # and resume); the benchmark runs all of them
ALLOWED_CHANGES = {"weights-bytes", "json-display"}


@pytest.mark.parametrize("kind", corrupt.KINDS)
def test_corrupt_files_give_one_clear_error_or_the_same_model(kind, tmp_path_factory):
    folder = tmp_path_factory.mktemp(kind.replace(":", "-"))
    rng = random.Random(kind)
    cases = list(corrupt.run_cases(folder, kind, rng, PER_KIND))
    if kind.startswith("run:"):
        cases = rng.sample(cases, PER_RUN)
    defects, seen = [], 0
    for case in cases:
        result = corrupt.outcome(case, folder / "work")
        seen += 1
        allowed = ("clear", "same", "loaded") + \
            (("changed",) if case[7] in ALLOWED_CHANGES else ())
        if result not in allowed:
            defects.append((case[1], result))
    assert seen >= min(PER_KIND, PER_RUN) and defects == []
