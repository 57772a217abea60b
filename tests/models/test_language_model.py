"""The language model composition: gradients by finite differences, generation, batching."""
import numpy as np
import pytest
from gradcheck import check_sampled_params

from rnnkit.data import CharVocab, bundled_text, lm_batches
from rnnkit.losses import softmax_cross_entropy
from rnnkit.models import LanguageModel
from rnnkit import RnnkitError


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_language_model_gradients_match_finite_differences(cell):
    rng = np.random.default_rng(0)
    model = LanguageModel(7, 3, 4, num_layers=2, cell=cell, dtype=np.float64, seed=1)
    ids = rng.integers(0, 7, (2, 5))
    targets = rng.integers(0, 7, (2, 5))
    lengths = np.array([3, 5])

    def loss():
        logits, _, _ = model.forward(ids, lengths=lengths)
        return softmax_cross_entropy(logits, targets, lengths)[0]

    model.zero_grad()
    logits, _, cache = model.forward(ids, lengths=lengths)
    _, dlogits = softmax_cross_entropy(logits, targets, lengths)
    model.backward(dlogits, cache)
    check_sampled_params(model, loss, rng, samples=6)


def test_generate_is_deterministic_given_a_seed_and_uses_the_vocabulary():
    model = LanguageModel(5, 3, 4, seed=0)
    a = model.generate([1, 2], 20, rng=np.random.default_rng(3))
    b = model.generate([1, 2], 20, rng=np.random.default_rng(3))
    assert a == b and len(a) == 20 and all(0 <= t < 5 for t in a)
    with pytest.raises(RnnkitError, match="prime"):
        model.generate([], 3)


def test_lm_batches_continue_each_row_across_batches():
    ids = np.arange(101)
    batches = list(lm_batches(ids, batch_size=2, seq_len=10))
    assert len(batches) == 5
    (x0, y0), (x1, _) = batches[0], batches[1]
    np.testing.assert_array_equal(x0[1], np.arange(50, 60))
    np.testing.assert_array_equal(y0[0], np.arange(1, 11))
    np.testing.assert_array_equal(x1[0], np.arange(10, 20))   # row 0 continues where it stopped


def test_char_vocab_round_trip_and_unknowns():
    vocab = CharVocab("hello world")
    assert vocab.decode(vocab.encode("low hold")) == "low hold"
    with pytest.raises(RnnkitError, match="unknown"):
        vocab.encode("xyz")
    with_unk = CharVocab("abc", unk="?")
    assert with_unk.decode(with_unk.encode("abz")) == "ab?"


def test_bundled_text_is_the_shakespeare_sample():
    text = bundled_text()
    assert 900_000 < len(text) < 1_100_000
    assert text.startswith("ALL'S WELL THAT ENDS WELL")
