import os

import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import backend
from numba_rnn.kernels import registry

# Without a GPU the suite runs the CUDA kernels in the simulator (the CPU path's tests,
# test_cpu_path.py and those marked below, switch to "cpu" themselves), unless
# NUMBA_RNN_BACKEND names a backend for the whole run.
if not os.environ.get("NUMBA_RNN_BACKEND") and backend.backend_name() == "cpu":
    backend.set_backend("simulator")

#: Every kernel launch of the session, with its argument types: the compile check
#: (test_compile.py, run last) compiles each kernel as the tests launched it.
LAUNCHES = registry.LaunchRecord()


def pytest_configure(config):
    registry.record_launches(LAUNCHES)


def pytest_collection_modifyitems(session, config, items):
    # the compile check reads what every other test launched: it runs last
    items.sort(key=lambda item: item.path.name == "test_compile.py")


@pytest.fixture(scope="session")
def launch_record():
    return LAUNCHES


@pytest.fixture
def rng():
    """A fresh, seeded generator for test data; parameters draw from nr.manual_seed."""
    nr.manual_seed(1234)
    return np.random.default_rng(1234)
