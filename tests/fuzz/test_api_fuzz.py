"""Fuzzing the public Python API (issue 29, part 3): every bad value of every argument of
every public call raises one RnnkitError naming that argument (tests/fuzz/api_cases.py).

About 6 generated values a case, ~1,300 in all, derandomized so a run is reproducible;
benchmarks/fuzz_report.py runs the same cases with a larger budget and counts outcomes."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api_cases import CASES, outcome, warm_up

EXAMPLES = 6


@pytest.fixture(scope="module", autouse=True)
def compiled_kernels():
    warm_up()


def test_the_cases_cover_the_public_api():
    calls = {c.call.split(".")[0].split(" ")[0] for c in CASES}
    for name in ("RNN", "LSTM", "GRU", "IndRNN", "Dense", "Embedding", "Attention",
                 "crf_forward", "SequenceModel", "LanguageModel", "Tagger",
                 "softmax_cross_entropy", "make_optimizer", "clip_grad_norm", "make_schedule",
                 "save", "load", "from_torch_state_dict", "onnx", "TextStream",
                 "ArrayDataset", "WindowDataset", "CharVocab", "WordVocab", "pad_sequences",
                 "bucket_batches"):
        assert name in calls, name
    assert len(CASES) * EXAMPLES >= 1000


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_bad_value_raises_one_clear_error(case, data):
    value = data.draw(case.bad, label=case.arg)
    kind, detail = outcome(case, value)
    assert kind == "clear", f"{case.id} with {value!r}: {kind}: {detail}"
