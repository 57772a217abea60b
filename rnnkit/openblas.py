"""Old name of rnnkit.fast.openblas, kept as an alias: the same module object."""
import sys

from rnnkit.fast import openblas as _module

sys.modules[__name__] = _module
