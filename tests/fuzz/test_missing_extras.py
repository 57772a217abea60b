"""A missing optional package (as after a bare `pip install -e .`) is one line on stderr that
names the extra to install, found before any work, never a ModuleNotFoundError traceback
(issue 29). Each case runs in a fresh interpreter where the package cannot be imported."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# sys.modules[name] = None makes `import name` fail as if it were not installed
SHIM = """
import sys
for name in {blocked!r}:
    sys.modules[name] = None
sys.path.insert(0, {extra_path!r})
from rnnkit import apps
apps.APPS.update({extra_apps!r})
from rnnkit.cli import main
sys.exit(main({argv!r}))
"""


def run_without(blocked, argv, tmp_path, extra_apps=None):
    code = SHIM.format(blocked=list(blocked), argv=argv, extra_path=str(tmp_path),
                       extra_apps=extra_apps or {})
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": ""})
    return done.returncode, done.stderr.strip().splitlines()


@pytest.mark.parametrize("blocked,extra", [("tqdm", "train"), ("safetensors", "train"),
                                           ("matplotlib", "train")])
def test_demo_names_the_extra_before_training(tmp_path, blocked, extra):
    run = tmp_path / "demo"
    code, err = run_without([blocked], ["demo", "--run-dir", str(run), "--max-steps", "1"],
                            tmp_path)
    assert code == 2 and len(err) == 1, err
    assert err[0] == f"rnnkit text train: needs the optional package {blocked!r}: " \
                     f"pip install 'rnnkit[{extra}]'"
    assert not run.exists()             # said before any work, not after the training


def test_every_app_names_the_extra(tmp_path):
    code, err = run_without(["safetensors"], ["sentiment", "predict", str(tmp_path), "good"],
                            tmp_path)
    assert code == 2 and err == ["rnnkit sentiment predict: needs the optional package "
                                 "'safetensors': pip install 'rnnkit[train]'"]


def test_an_app_module_that_imports_a_missing_package_at_import_time(tmp_path):
    """load_apps runs before any command: its error is one line too."""
    (tmp_path / "needs_seqeval.py").write_text("import seqeval\nSUMMARY = 'x'\n")
    code, err = run_without(["seqeval"], ["--help"], tmp_path, {"tagging": "needs_seqeval"})
    assert code == 2 and err == ["rnnkit: needs the optional package 'seqeval': "
                                 "pip install 'rnnkit[apps]'"]
