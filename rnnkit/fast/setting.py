"""What steers the fast path's choices, as one object held per context.

The fast path makes choices that must hold across calls: whether MKL may serve the large
products (``mkl``), whether the compiled loops may run (``loops``), whether MKL is treated as
tuned for this processor (``tuned``; None: the processor says), and where the current scan
sent its products (``scan_mkl``): the products after a scan go to the same library as its
own, since two libraries' threads must not take turns (rnnkit.fast.blas.choose).

They live in a frozen ``Setting`` kept in a context variable, not in module globals: a block
changes them with ``using(...)`` and they come back when it ends; each thread starts from the
defaults; ``current()`` shows what is in force.

    from rnnkit.fast import setting
    with setting.using(mkl=False):          # the large products on NumPy's BLAS
        ...
    with setting.using(loops=False):        # every scan on the NumPy reference
        ...
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Setting:
    mkl: bool = os.environ.get("RNNKIT_BLAS", "").lower() != "numpy"
    loops: bool = True
    tuned: bool | None = None
    scan_mkl: bool | None = None        # None before any scan in this context


_current: ContextVar[Setting] = ContextVar("rnnkit_fast_setting", default=Setting())
_NAMES = {f.name for f in fields(Setting)}


def current() -> Setting:
    """The setting in force in this context."""
    return _current.get()


def _changed(changes: dict) -> Setting:
    unknown = set(changes) - _NAMES
    if unknown:
        raise TypeError(f"setting: unknown field(s) {sorted(unknown)}; "
                        f"fields are {sorted(_NAMES)}")
    return replace(_current.get(), **changes)


@contextmanager
def using(**changes):
    """Within this block the setting has ``changes``; after it those fields are as before,
    and the others as the block left them (a scan's choice made inside holds after it, as
    it would without the block)."""
    before = _current.get()
    _current.set(_changed(changes))
    try:
        yield _current.get()
    finally:
        _current.set(replace(_current.get(), **{k: getattr(before, k) for k in changes}))


def keep(**changes) -> Setting:
    """Make ``changes`` in this context until it (or the ``using`` block around) ends: a
    scan's choice of library, which the products after it follow."""
    setting = _changed(changes)
    _current.set(setting)
    return setting


__all__ = ["Setting", "current", "keep", "using"]
