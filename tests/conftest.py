import numpy as np
import pytest

import numba_rnn as nr


@pytest.fixture
def rng():
    """A fresh, seeded generator for test data; parameters draw from nr.manual_seed."""
    nr.manual_seed(1234)
    return np.random.default_rng(1234)
