"""numba compiles rnnkit's kernels for 512-bit vectors where that pays
(rnnkit.fast.kernels.fastmath.vector_features), and leaves the user's choice alone."""
import pytest

INTEL_FEATURES = "+64bit,+avx,+avx2,+avx512f,+avx512bw,+fma"


@pytest.mark.parametrize("vendor, name, features, wide", [
    ("GenuineIntel", "sapphirerapids", INTEL_FEATURES, True),
    ("GenuineIntel", "rocketlake", INTEL_FEATURES, True),
    ("GenuineIntel", "cascadelake", INTEL_FEATURES, False),     # clocks down on AVX-512
    ("GenuineIntel", "haswell", "+64bit,+avx,+avx2,-avx512f,+fma", False),
    ("AuthenticAMD", "znver4", INTEL_FEATURES, False),          # not measured there
])
def test_wide_vectors_only_on_intel_processors_with_avx512_that_keep_their_clock(
        vendor, name, features, wide):
    from rnnkit.fast.kernels.fastmath import vector_features
    got = vector_features(vendor, name, features)
    assert got == (features + ",-prefer-256-bit" if wide else None)


def test_importing_rnnkit_leaves_numbas_target_alone():
    """In a fresh process: importing rnnkit sets nothing of numba's; the first compiled loop
    rnnkit chooses sets the features (by vector_features)."""
    import subprocess
    import sys
    code = ("import numba.core.config as c; import rnnkit, rnnkit.fast; a = c.CPU_FEATURES; "
            "import numpy as np; rnnkit.GRU(2, 3).forward(np.ones((1, 2, 2), np.float32)); "
            "from rnnkit.fast.kernels import fastmath as f; print(a, f._target_set)")
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("NUMBA_CPU_FEATURES", "NUMBA_CPU_NAME")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    assert out == ["None", "True"]


def test_numba_compiles_for_this_processor_by_that_rule():
    """Unless the user named numba's CPU or features, rnnkit's first compiled loop set them."""
    import os
    import numpy as np
    import rnnkit
    rnnkit.GRU(2, 3).forward(np.ones((1, 2, 2), np.float32))
    from llvmlite import binding
    from numba.core import config
    from numba.core.codegen import get_host_cpu_features
    from rnnkit.fast import openblas
    from rnnkit.fast.kernels.fastmath import vector_features
    if "NUMBA_CPU_FEATURES" in os.environ or "NUMBA_CPU_NAME" in os.environ:
        assert config.CPU_FEATURES == os.environ.get("NUMBA_CPU_FEATURES")
        return
    host = get_host_cpu_features()
    assert config.CPU_FEATURES == vector_features(openblas.cpu().get("vendor_id", ""),
                                                  binding.get_host_cpu_name(), host)
