"""The apps' tests share the suite's helpers (tests/gradcheck.py) from the folder above, and
never see the user's data-set cache."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytest


@pytest.fixture(autouse=True)
def _no_user_data_cache(tmp_path, monkeypatch):
    """An application given no --data reads the data-set cache (rnnkit.data.fetch): point it
    at an empty folder so that no test reads, or depends on, the developer's downloads."""
    monkeypatch.setenv("RNNKIT_DATA", str(tmp_path / "rnnkit-data-cache"))
