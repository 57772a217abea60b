"""The shared data sets (../shared/data beside the checkout) for the tests that read them."""
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def shared_data(relative: str) -> Path:
    """The path of ``../shared/data/<relative>``; a test that needs a missing one fails
    saying which file it needs and where it looked."""
    for base in (ROOT / "shared", ROOT.parent / "shared"):
        path = base / "data" / relative
        if path.is_file():
            return path
    pytest.fail(f"this test needs ../shared/data/{relative} (the shared data sets beside the "
                f"checkout), not found at {ROOT.parent / 'shared' / 'data' / relative}")
