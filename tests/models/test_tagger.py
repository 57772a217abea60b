"""The BiLSTM(-CRF) tagger with character-level word vectors: every parameter's gradient
against finite differences in float64 on a tiny batch of sentences of different lengths."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))     # tests/: gradcheck
from gradcheck import check_sampled_params  # noqa: E402

from rnnkit.data.conll import (Encoder, Sentence, TagSet, build_char_vocab,  # noqa: E402
                               build_word_vocab)
from rnnkit.errors import RnnkitError  # noqa: E402
from rnnkit.models.tagger import Tagger  # noqa: E402

SENTENCES = [Sentence("EU rejects German call".split(), ["B-ORG", "O", "B-MISC", "O"]),
             Sentence("Peter Blackburn".split(), ["B-PER", "I-PER"]),
             Sentence("BRUSSELS 1996-08-22 .".split(), ["B-LOC", "O", "O"])]


def _batch(dtype="float64", **options):
    words, _ = build_word_vocab(SENTENCES[:2])            # BRUSSELS and the date: <unk>
    chars = build_char_vocab(SENTENCES)
    tagset = TagSet.from_sentences(SENTENCES)
    encoder = Encoder(words, chars)
    inputs, lengths = encoder.batch([s.words for s in SENTENCES])
    targets = np.zeros(inputs.words.shape, np.int64)
    for n, s in enumerate(SENTENCES):
        targets[n, :len(s.tags)] = tagset.encode(s.tags)
    config = dict(num_words=len(words), num_chars=len(chars), num_tags=len(tagset), word_dim=4,
                  char_dim=3, char_hidden=2, hidden_size=3, dtype=dtype, seed=0)
    config.update(options)
    return Tagger(**config), inputs, targets, lengths


@pytest.mark.parametrize("options", [dict(output="crf", case_dim=2, dropout=0.3),
                                     dict(output="softmax", case_dim=0, dropout=0.0,
                                          num_layers=2)])
def test_tagger_gradients_match_finite_differences(options):
    model, inputs, targets, lengths = _batch(**options)
    rng = np.random.default_rng(1)
    for p in model.params.values():        # away from zero-initialised CRF scores
        p += 0.3 * rng.standard_normal(p.shape)

    def loss():
        emissions, _, _ = model.forward(inputs, None, lengths, training=True,
                                        rng=np.random.default_rng(5), grad=False)
        saved = {k: g.copy() for k, g in model.grads.items()}
        value = model.loss(emissions, targets, lengths)[0]
        for k, g in saved.items():          # the loss adds CRF gradients: undo
            model.grads[k][...] = g
        return value
    model.zero_grad()
    emissions, _, cache = model.forward(inputs, None, lengths, training=True,
                                        rng=np.random.default_rng(5))
    _, demissions = model.loss(emissions, targets, lengths)
    model.backward(demissions, cache)
    check_sampled_params(model, loss, np.random.default_rng(2), samples=8, rel=1e-5,
                         abs=1e-9)
    # the padding id's embedding and padded characters get no gradient
    assert not model.grads["word_embed.E"][0].any()


def test_tagger_outputs_and_decoding():
    model, inputs, targets, lengths = _batch(dtype="float32")
    emissions, state, cache = model.forward(inputs, None, lengths, grad=False)
    assert emissions.shape == (3, 4, 6) and emissions.dtype == np.float32
    assert state is None and cache is None
    tags = model.predict(inputs, lengths)
    assert tags.shape == (3, 4) and (tags[1, 2:] == 0).all() and (tags[2, 3:] == 0).all()
    # a sentence alone and in a padded batch gets the same scores
    one, _ = Encoder(*_encoders()).batch([SENTENCES[1].words])
    alone, _, _ = model.forward(one, None, np.array([2]), grad=False)
    np.testing.assert_allclose(alone[0], emissions[1, :2], rtol=1e-5, atol=1e-6)


def _encoders():
    return build_word_vocab(SENTENCES[:2])[0], build_char_vocab(SENTENCES)


def test_tagger_rejects_bad_settings():
    with pytest.raises(RnnkitError, match="output: expected one of"):
        _batch(output="hmm")
    with pytest.raises(RnnkitError, match="inputs: expected a rnnkit.data.conll.TaggerInputs"):
        _batch()[0].forward(np.zeros((2, 3), np.int64))
