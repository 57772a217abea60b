"""Subword units: BPE pieces learnt from real Bible verses join back into the same text, the
same sentences give the same model, rare words are spelt from pieces, bad models fail clearly."""
import pytest

from rnnkit.data.parallel import detokenize, read_pairs, tokens
from rnnkit.data.subwords import Subwords, Words
from rnnkit.errors import RnnkitError
from shared_data import shared_data


@pytest.fixture(scope="module")
def french():
    _, fr, _ = read_pairs(str(shared_data("translation/en_fr_bible.tsv")), "en")
    return fr[:3000]


@pytest.fixture(scope="module")
def pieces(french):
    return Subwords.train([tokens(t) for t in french[:2500]], 500)


def test_pieces_join_back_into_the_word_models_text(pieces, french):
    lengths = []
    for text in french[2500:]:          # verses the pieces were not learnt from
        units = pieces.split(text)
        assert pieces.join(units) == detokenize(tokens(text)) == Words().join(tokens(text))
        lengths.append(len(units) / len(tokens(text)))
    # 500 pieces spell the words in a few pieces each, more than one on average
    assert 1.0 < sum(lengths) / len(lengths) < 2.0
    assert len(pieces) == 500


def test_training_is_deterministic_and_a_rare_word_is_spelt_from_pieces(pieces, french):
    again = Subwords.train([tokens(t) for t in french[:2500]], 500)
    assert again.model == pieces.model
    rare = pieces.split("jochanan")
    assert len(rare) > 1 and rare[0].startswith("\u2581") and "".join(rare) == "\u2581jochanan"
    assert pieces.split("le") == ["\u2581le"]        # a frequent word is one piece


def test_saved_model_loads_and_bad_models_fail_clearly(pieces, tmp_path):
    path = tmp_path / "sub.model"
    pieces.save(path)
    assert Subwords.load(path).split("Et Dieu dit.") == pieces.split("Et Dieu dit.")
    with pytest.raises(RnnkitError, match="no such file"):
        Subwords.load(tmp_path / "none.model")
    path.write_bytes(pieces.model[: len(pieces.model) // 3])
    with pytest.raises(RnnkitError, match="SentencePiece model"):
        Subwords.load(path)
    with pytest.raises(RnnkitError, match="subword_vocab"):
        Subwords.train([["a", "b"]], 2)
    with pytest.raises(RnnkitError, match="non-empty sentence"):
        Subwords.train([[]], 100)
