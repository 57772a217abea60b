"""Old name of rnnkit.fast.blas, kept as an alias: the same module object."""
import sys

from rnnkit.fast import blas as _module

sys.modules[__name__] = _module
