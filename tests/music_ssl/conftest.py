import pytest

from music_ssl import implementations


@pytest.fixture
def no_failures():
    """The record of kernels that failed under "auto", empty for the test and restored after it."""
    saved = dict(implementations.FAILURES)
    implementations.FAILURES.clear()
    yield implementations.FAILURES
    implementations.FAILURES.clear()
    implementations.FAILURES.update(saved)
