"""Intel MKL's runtime library (libmkl_rt), found in the ``mkl`` package and loaded once.

rnnkit.fast.blas decides which products go to it; this module only finds the library, picks its
threading layer (GNU OpenMP when the system's libgomp loads, so that MKL's threads are the
compiled loops' own, else Intel's) and declares the signatures of the functions rnnkit calls,
so that ctypes passes their integers and floats as the C prototypes say.
"""
from __future__ import annotations

import ctypes
from pathlib import Path

_THREADING = {"intel": 0, "gnu": 3}
_lib = None          # the loaded libmkl_rt, or False when there is none


def _find() -> Path | None:
    from importlib import metadata
    try:
        files = metadata.files("mkl") or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if f.name.startswith("libmkl_rt.so") or f.name in ("mkl_rt.2.dll", "libmkl_rt.2.dylib"):
            path = Path(f.locate())
            if path.exists():
                return path
    return None


def load():
    """libmkl_rt with the signatures of the functions rnnkit calls set (ctypes), and
    ``threading_layer`` ('gnu' or 'intel') and ``jit`` (whether it generates code for a
    product's shape) added; False without the ``mkl`` package or where it does not load.
    Loaded once per process."""
    global _lib
    if _lib is not None:
        return _lib
    _lib = False
    path = _find()
    if path is None:
        return _lib
    try:
        lib = ctypes.CDLL(str(path))
        try:
            ctypes.CDLL("libgomp.so.1")
            layer = "gnu"
        except OSError:
            layer = "intel"
        lib.MKL_Set_Threading_Layer(ctypes.c_int(_THREADING[layer]))
        i, f, d, p = ctypes.c_int, ctypes.c_float, ctypes.c_double, ctypes.c_void_p
        z, c = ctypes.c_size_t, ctypes.c_char
        signatures = {"MKL_Set_Num_Threads_Local": ([i], i)}      # name: (arguments, result)
        for x, s in (("s", f), ("d", d)):
            signatures.update({f"cblas_{x}gemm": ([i] * 6 + [s, p, i, p, i, s, p, i], None),
                               f"cblas_{x}gemm_compute": ([i] * 6 + [p, i, p, i, s, p, i], None),
                               f"cblas_{x}gemm_pack": ([i] * 6 + [s, p, i, p], None),
                               f"cblas_{x}gemm_pack_get_size": ([i] * 4, z),
                               f"cblas_{x}gemm_batch_strided": ([i] * 6 + [s, p, i, i, p, i, i,
                                                                           s, p, i, i, i], None),
                               f"cblas_{x}asum": ([i, p, i], s),
                               f"MKL_{x.upper()}omatcopy": ([c, c, z, z, s, p, z, p, z], None)})
        for name, (arguments, result) in signatures.items():
            getattr(lib, name).argtypes, getattr(lib, name).restype = arguments, result
        lib.jit = hasattr(lib, "mkl_cblas_jit_create_sgemm")     # MKL 2019 and later
        if lib.jit:
            lib.mkl_cblas_jit_create_sgemm.argtypes = [ctypes.POINTER(p), i, i, i, i, i, i, f,
                                                       i, i, f, i]
            lib.mkl_cblas_jit_create_sgemm.restype = i
            lib.mkl_jit_get_sgemm_ptr.argtypes = [p]
            lib.mkl_jit_get_sgemm_ptr.restype = p
            lib.mkl_jit_destroy.argtypes = [p]
            lib.mkl_jit_destroy.restype = i
        lib.threading_layer = layer
        _lib = lib
    except (OSError, AttributeError):
        _lib = False
    return _lib
