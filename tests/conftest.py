"""Shared test settings."""

import os

from hypothesis import settings

# Property tests check behaviour, not speed (DESIGN 7: speed is measured in benchmarks):
# no per-example deadline, which a busy shared machine would turn into random failures.
settings.register_profile("adsys", deadline=None)
settings.load_profile("adsys")

# The suite runs one worker per core, and each lab's LightGBM starts its own OpenMP
# threads: threads that spin while they wait take the core another worker needs.
# Waiting threads sleep instead (set before any library starts OpenMP; the lab kernels
# inherit it). About 6-8% less wall time for a lab and its student copy run together.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")
