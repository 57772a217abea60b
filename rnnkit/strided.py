"""Old name of rnnkit.fast.strided, kept as an alias: the same module object."""
import sys

from rnnkit.fast import strided as _module

sys.modules[__name__] = _module
