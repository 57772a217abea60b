"""The apps' tests share the suite's helpers (tests/gradcheck.py) from the folder above."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
