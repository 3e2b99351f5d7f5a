"""Shared test settings."""

import matplotlib.pyplot as plt
import pytest
from hypothesis import settings

# Property tests check behaviour, not speed (DESIGN 7: speed is measured in benchmarks):
# no per-example deadline, which a busy shared machine would turn into random failures.
settings.register_profile("adsys", deadline=None)
settings.load_profile("adsys")


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test drew, so a long run does not keep hundreds open."""
    yield
    plt.close("all")
