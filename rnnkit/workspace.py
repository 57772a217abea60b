"""Old name of rnnkit.fast.workspace, kept as an alias: the same module object."""
import sys

from rnnkit.fast import workspace as _module

sys.modules[__name__] = _module
