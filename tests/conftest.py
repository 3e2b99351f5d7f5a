"""Shared test settings."""

from hypothesis import settings

# Property tests check behaviour, not speed (DESIGN 7: speed is measured in benchmarks):
# no per-example deadline, which a busy shared machine would turn into random failures.
settings.register_profile("adsys", deadline=None)
settings.load_profile("adsys")
