"""Each test of the fast path starts from the default setting (rnnkit.fast.setting), and what
it changes there (setting.keep) ends with it."""
import pytest

from rnnkit.fast import setting


@pytest.fixture(autouse=True)
def default_setting():
    with setting.using(**vars(setting.Setting())):
        yield
