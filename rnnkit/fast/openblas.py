"""OpenBLAS for the products rnnkit sends there where MKL is not tuned for the processor.

Two libraries qualify:
- ``bundled()``: the OpenBLAS of the ``scipy-openblas32`` wheel (``pip install rnnkit[fast]``,
  x86-64), loaded for rnnkit alone. Its thread count stays 1: rnnkit splits its products over
  the compiled loops' OpenMP threads itself (rnnkit.fast.kernels.products), so no pool of its own
  competes with them for the cores, its products run inside those loops at every size, and
  no one else's products change. It picks its kernels as OpenBLAS does (OPENBLAS_CORETYPE,
  else by the processor).
- ``numpy_openblas()``: the one NumPy loaded, shared with every NumPy product of the process;
  above SINGLE_THREAD_MACS it runs a product on a thread pool of its own.
``products()`` is the first there is.

OpenBLAS's kernels matter as much as the library: its AVX-512 (SkylakeX) ones, which it
detects on an AMD EPYC Zen 5, ran far faster there than its AVX2 (Haswell) ones
(docs/performance.md, section 1). An OPENBLAS_CORETYPE=Haswell in the environment holds both
libraries to the latter.
"""
from __future__ import annotations

import ctypes
import functools
import os
from contextlib import contextmanager
from typing import NamedTuple

SINGLE_THREAD_MACS = 1 << 18     # OpenBLAS runs products up to this size on the calling thread


class OpenBLAS(NamedTuple):
    """An OpenBLAS library: its cblas_sgemm's address (``ilp64``: taking 64-bit sizes, as in
    NumPy's wheels), its process-wide thread count (``get_threads``, ``set_threads``), the
    kernels it runs (``core``, e.g. 'SkylakeX') and the largest product (multiply-adds) it
    runs on the calling thread alone (``single_thread_macs``)."""
    sgemm: int
    ilp64: bool
    get_threads: object
    set_threads: object
    core: str
    single_thread_macs: float


_numpy = None       # numpy_openblas(), or False


def cpu() -> dict:
    """The first processor's /proc/cpuinfo fields (Linux; {} elsewhere)."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def _bind(lib, prefix: str, suffix: str, single_thread_macs: float) -> OpenBLAS | None:
    names = [f"{prefix}{name}{suffix}" for name in
             ("cblas_sgemm", "openblas_get_num_threads", "openblas_set_num_threads",
              "openblas_get_corename")]
    if not all(hasattr(lib, name) for name in names):
        return None
    sgemm, get, set_, corename = (getattr(lib, name) for name in names)
    get.restype, set_.argtypes, corename.restype = ctypes.c_int, [ctypes.c_int], ctypes.c_char_p
    return OpenBLAS(ctypes.cast(sgemm, ctypes.c_void_p).value, suffix == "64_", get, set_,
                    corename().decode(), single_thread_macs)


def numpy_openblas() -> OpenBLAS | None:
    """The OpenBLAS NumPy loaded, or None where NumPy has another BLAS or the process's
    libraries can't be listed (/proc/self/maps, Linux)."""
    global _numpy
    if _numpy is None:
        _numpy = False
        try:
            with open("/proc/self/maps") as f:
                paths = {line.split()[-1] for line in f if "openblas" in line.lower()}
        except OSError:
            paths = set()
        for path in sorted(paths):
            try:
                lib = ctypes.CDLL(path)             # already loaded: the same library
            except OSError:
                continue
            for prefix, suffix in (("scipy_", "64_"), ("", "64_"), ("", "")):
                _numpy = _bind(lib, prefix, suffix, SINGLE_THREAD_MACS)
                if _numpy:
                    break
            if _numpy:
                break
    return _numpy or None


@contextmanager
def _environment(name: str, value: str):
    """os.environ[name] = value within the block, then as before."""
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _loaded(path: str) -> bool:
    try:
        with open("/proc/self/maps") as f:
            return any(line.rstrip().endswith(path) for line in f)
    except OSError:
        return False


def _bundled_path() -> str | None:
    """The library file of the scipy-openblas32 wheel. Found through the package's files:
    importing it loads the library, with its own choice of kernels and threads."""
    from importlib import metadata
    try:
        files = metadata.files("scipy-openblas32") or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name.startswith("libscipy_openblas") and ".so" in f.name:
            path = str(f.locate())
            return path if os.path.exists(path) else None
    return None


@functools.cache
def bundled() -> OpenBLAS | None:
    """scipy-openblas32's OpenBLAS, on one thread (``load_bundled``), loaded once."""
    return load_bundled()


def load_bundled() -> OpenBLAS | None:
    """Load scipy-openblas32's OpenBLAS and set it to one thread; None where that package is
    not installed, its library does not load, or another part of the process loaded it first
    (its products, thread count and kernels are then theirs)."""
    path = _bundled_path()
    if path is None or _loaded(path):
        return None
    with _environment("OPENBLAS_NUM_THREADS", "1"):     # read as it loads: no pool started
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            return None
    library = _bind(lib, "scipy_", "", float("inf"))
    if library:
        library.set_threads(1)
    return library or None


def products() -> OpenBLAS | None:
    """The OpenBLAS for rnnkit's products: ``bundled()``, else ``numpy_openblas()``."""
    return bundled() or numpy_openblas()


__all__ = ["OpenBLAS", "SINGLE_THREAD_MACS", "bundled", "cpu", "load_bundled", "numpy_openblas",
           "products"]
