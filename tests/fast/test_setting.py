"""rnnkit.fast.setting: the fast path's choices in one object per context."""
import threading

import numpy as np
import pytest

import rnnkit
from rnnkit.fast import blas, kernels, setting


def test_using_changes_its_fields_for_the_block_and_keeps_a_choice_made_inside():
    start = setting.current()
    with setting.using(mkl=False) as inside:
        assert inside.mkl is False and setting.current() is inside
        blas.choose(blas.MIN_MACS)                      # a scan inside: NumPy's products
        assert setting.current().scan_mkl is False
    assert setting.current().mkl is start.mkl
    assert setting.current().scan_mkl is False          # the scan's choice holds after it


def test_a_scan_keeps_its_choice_for_the_products_after_it():
    layer = rnnkit.LSTM(3, 4, seed=0)
    with kernels.reference_only():
        layer.forward(np.ones((2, 5, 3), np.float32))   # a small step: NumPy's products
    assert setting.current().scan_mkl is False
    assert not blas.wants_mkl(1 << 30)


def test_unknown_fields_are_refused():
    with pytest.raises(TypeError, match=r"unknown field\(s\) \['gpu'\]"):
        with setting.using(gpu=True):
            pass
    with pytest.raises(TypeError, match="unknown field"):
        setting.keep(threads=2)


def test_each_thread_starts_from_the_defaults():
    setting.keep(mkl=False, scan_mkl=True)
    seen = []
    worker = threading.Thread(target=lambda: seen.append(setting.current()))
    worker.start()
    worker.join()
    assert seen == [setting.Setting()]
    assert setting.current().mkl is False


def test_reference_only_switches_the_loops_off_for_the_block():
    with kernels.reference_only():
        assert setting.current().loops is False
        assert not kernels.serves(np.float32)
    assert setting.current().loops is True
    assert kernels.serves(np.float32) == kernels.AVAILABLE
