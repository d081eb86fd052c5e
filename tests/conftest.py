"""Shared set-up of ntlib's unit tests: float64 and one torch thread per test, hypothesis profiles.

* :func:`float64_one_thread` (autouse) gives every test the float64 default dtype of
  the book (``ntlib.config.DTYPE``) and one torch thread (the tensors here are tiny:
  one thread is faster, and the machine is shared), then restores whatever was set
  before, so no test depends on the order in which the tests run. No test module
  sets the default dtype at import time (``tests/test_packaging.py`` checks it).
* Hypothesis profiles, chosen with ``HYPOTHESIS_PROFILE``:

  - ``ci`` (default): 25 examples per property (a property that needs more or fewer
    states its count with ``helpers.examples(n)``, which scales with the profile),
    derandomized (the same examples on every run and machine), no deadline (timings on
    a shared 2-core machine are noise), no example database;
  - ``dev``: 5 random examples, for a quick run while editing;
  - ``thorough``: 200 random examples, for an occasional deep run.

The builders shared by several test modules (random SPD matrices, teachers,
weights, quadratics) are in ``tests/helpers.py`` (``from helpers import ...``).
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import settings

settings.register_profile("ci", max_examples=25, deadline=None, derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", max_examples=5, deadline=None)
settings.register_profile("thorough", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def float64_one_thread():
    """float64 default dtype and one torch thread for the test; the previous state is restored after it."""
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_default_dtype(dtype)
        torch.set_num_threads(threads)
