"""Old name of rnnkit.fast.kernels, kept as an alias: the same package and submodules."""
import importlib
import sys

from rnnkit.fast import kernels as _package

for _name in ("columns", "fastmath", "gru", "lstm", "products", "rnn", "updates"):
    sys.modules[f"{__name__}.{_name}"] = importlib.import_module(f"{_package.__name__}.{_name}")
sys.modules[__name__] = _package
