"""rnnkit.fast.openblas: the OpenBLAS rnnkit loads for itself (scipy-openblas32) and NumPy's."""
import ctypes
import os
import subprocess
import sys

import numpy as np
import pytest

from rnnkit.fast import openblas

bundled = openblas.bundled()
needs_bundled = pytest.mark.skipif(bundled is None, reason="needs scipy-openblas32 (rnnkit[fast])")


def in_fresh_python(code: str, **env) -> str:
    """stdout of ``code`` run by a new interpreter (rnnkit.fast.openblas keeps what it loaded)."""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, **env), timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def sgemm(library: openblas.OpenBLAS):
    """cblas_sgemm through its address, with 32- or 64-bit sizes."""
    size = ctypes.c_int64 if library.ilp64 else ctypes.c_int
    i, f, p = ctypes.c_int, ctypes.c_float, ctypes.c_void_p
    return ctypes.CFUNCTYPE(None, i, i, i, size, size, size, f, p, size, p, size, f, p, size)(
        library.sgemm)


@pytest.mark.parametrize("which", ["bundled", "numpy"])
def test_each_library_computes_a_product(which):
    library = bundled if which == "bundled" else openblas.numpy_openblas()
    if library is None:
        pytest.skip(f"no {which} OpenBLAS here")
    rng = np.random.default_rng(0)
    a = rng.standard_normal((7, 5)).astype(np.float32)
    b = rng.standard_normal((5, 9)).astype(np.float32)
    c = np.ones((7, 9), np.float32)
    sgemm(library)(101, 111, 111, 7, 9, 5, 1.0, a.ctypes.data, 5, b.ctypes.data, 9, 1.0,
                   c.ctypes.data, 9)                                   # c += a @ b
    np.testing.assert_allclose(c, a.astype(np.float64) @ b + 1, rtol=1e-5, atol=1e-5)
    assert library.core                                # the kernels it runs, by name


@needs_bundled
def test_the_bundled_library_runs_on_one_thread_and_leaves_the_environment_alone():
    out = in_fresh_python(
        "import os; from rnnkit.fast import openblas as o; b = o.bundled(); "
        "print(b.get_threads(), b.single_thread_macs, os.environ.get('OPENBLAS_NUM_THREADS'),"
        " o.products() is b)", OPENBLAS_NUM_THREADS="2")
    assert out == "1 inf 2 True"
    assert bundled.get_threads() == 1 and not bundled.ilp64
    assert bundled.sgemm != openblas.numpy_openblas().sgemm


@needs_bundled
def test_a_bundled_library_another_part_of_the_process_loaded_is_left_to_it():
    """Imported, scipy_openblas32 loads its library (with its own threads and kernels) for
    the process: rnnkit then keeps to NumPy's."""
    out = in_fresh_python(
        "import scipy_openblas32; from rnnkit.fast import openblas as o; "
        "print(o.bundled(), o.products() == o.numpy_openblas())")
    assert out == "None True"


@needs_bundled
def test_the_bundled_library_takes_the_kernels_openblas_coretype_names():
    out = in_fresh_python("from rnnkit.fast import openblas as o; print(o.bundled().core)",
                          OPENBLAS_CORETYPE="Sandybridge")
    assert out == "Sandybridge"


def test_without_the_package_there_is_no_bundled_library(monkeypatch):
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)
    monkeypatch.setattr(metadata, "files", missing)
    assert openblas.load_bundled() is None
    monkeypatch.setattr(openblas, "bundled", openblas.load_bundled)
    assert openblas.products() == openblas.numpy_openblas()


def test_cpu_reads_the_first_processor(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 26\n\n"
                    "processor\t: 1\nvendor_id\t: other\n")
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **k: real_open(
        info if path == "/proc/cpuinfo" else path, *a, **k))
    assert openblas.cpu() == {"processor": "0", "vendor_id": "AuthenticAMD", "cpu family": "26"}
