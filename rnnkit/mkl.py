"""Old name of rnnkit.fast.mkl, kept as an alias: the same module object."""
import sys

from rnnkit.fast import mkl as _module

sys.modules[__name__] = _module
