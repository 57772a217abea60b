"""Safe files: named arrays as safetensors, metadata as JSON, every write atomic.

A write goes to a temporary file in the same folder, is flushed to disk, then renamed over
the target, so a crash leaves either the old file or the new one, never half of one. Loading
never unpickles anything; a missing, truncated or foreign file raises RnnkitError naming it.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from rnnkit.errors import RnnkitError


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_json(path: str | os.PathLike, obj) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode("utf-8"))


def load_json(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise RnnkitError(f"{path}: expected an existing JSON file, got no such file")
    try:
        return json.loads(path.read_text("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RnnkitError(f"{path}: expected a JSON file, got unreadable content ({e})") from None


def save_arrays(path: str | os.PathLike, arrays: dict[str, np.ndarray],
                metadata: dict[str, str] | None = None) -> None:
    """Write named arrays as one safetensors file (readable by NumPy + safetensors alone)."""
    from safetensors.numpy import save
    data = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
    atomic_write_bytes(path, save(data, metadata=metadata))


def load_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    from safetensors import SafetensorError
    from safetensors.numpy import load
    path = Path(path)
    if not path.is_file():
        raise RnnkitError(f"{path}: expected an existing safetensors file, got no such file")
    try:
        return load(path.read_bytes())
    except (SafetensorError, ValueError, OSError) as e:
        raise RnnkitError(f"{path}: expected a safetensors file, got one that cannot be read "
                          f"({e})") from None


def array_shapes(path: str | os.PathLike) -> dict[str, tuple]:
    """The name and shape of every array in a safetensors file, read from its header alone
    (nothing is loaded): to check what a file describes before allocating anything for it."""
    import struct
    path = Path(path)
    if not path.is_file():
        raise RnnkitError(f"{path}: expected an existing safetensors file, got no such file")
    with open(path, "rb") as f:
        head = f.read(8)
        size = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 0 < size <= path.stat().st_size - 8:
            raise RnnkitError(f"{path}: expected a safetensors file, got a header size of "
                              f"{size} in a file of {path.stat().st_size} bytes")
        try:
            header = json.loads(f.read(size))
            return {k: tuple(int(n) for n in v["shape"]) for k, v in header.items()
                    if k != "__metadata__"}
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            raise RnnkitError(f"{path}: expected a safetensors file, got an unreadable header "
                              f"({type(e).__name__}: {e})") from None
