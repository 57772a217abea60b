"""No code runs from a file: nothing in the package imports pickle (or its kin) or loads
with pickling allowed, and a NumPy file holding pickled objects is refused."""
import ast
from pathlib import Path

import numpy as np
import pytest

import rnnkit

PACKAGE = Path(rnnkit.__file__).parent
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "joblib", "shelve", "marshal", "cloudpickle"}


def calls_and_imports():
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            yield path, node


def test_no_module_imports_a_pickling_library():
    found = []
    for path, node in calls_and_imports():
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        found += [f"{path.name}: {n}" for n in names if n.split(".")[0] in UNSAFE_MODULES]
    assert found == []


def test_no_load_allows_pickles_and_no_torch_load_or_eval():
    found = []
    for path, node in calls_and_imports():
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        if name in ("eval", "exec", "torch.load") or (
                name.endswith("load") and any(k.arg == "allow_pickle" and
                                              ast.unparse(k.value) != "False"
                                              for k in node.keywords)):
            found.append(f"{path.name}: {ast.unparse(node)}")
        if name in ("np.load", "numpy.load") and not any(k.arg == "allow_pickle"
                                                         for k in node.keywords):
            found.append(f"{path.name}: {ast.unparse(node)} (say allow_pickle=False)")
    assert found == []


def test_the_mnist_loader_refuses_a_pickled_npz(tmp_path):
    from rnnkit.apps import mnist
    path = tmp_path / "mnist.npz"
    np.savez(path, x_train=np.array([{"evil": 1}], dtype=object), y_train=np.zeros(1),
             x_test=np.zeros((1, 28, 28)), y_test=np.zeros(1))
    with pytest.raises(rnnkit.RnnkitError):
        mnist.load_images(str(path))
