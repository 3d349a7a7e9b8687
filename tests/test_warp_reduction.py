"""The GPU's warp reduction (kernels/steps.py, ``reduce_scatter``) in the simulator.

The simulator has no warp operations, so the fused and persistent kernels reduce there by
atomic adds, and the shuffle code they run on a GPU would go untested: here the
simulator is lent a ``shfl_xor_sync`` (a block of 32 threads is one warp, and its block
barrier stands in for the warp's lockstep), and a kernel calls ``reduce_scatter``
itself on known values."""
import threading

import numpy as np
import pytest

from numba_rnn import backend
from numba_rnn.backend import cuda
from numba_rnn.kernels.steps import GROUP, TILE, reduce_scatter

pytestmark = pytest.mark.skipif(backend.backend_name() != "simulator",
                                reason="on a GPU the fused and persistent tests run it")


def _shfl_xor_sync(self, mask, value, lane_mask):
    thread = threading.current_thread()
    board = thread._manager.__dict__.setdefault("_shuffle_board", {})
    lane = thread.threadIdx.x
    board[lane] = value
    self.syncthreads()
    other = board[lane ^ lane_mask]
    self.syncthreads()
    return other


@pytest.fixture
def simulated_shuffles(monkeypatch):
    from numba.cuda.simulator import kernelapi

    monkeypatch.setattr(kernelapi.FakeCUDAModule, "shfl_xor_sync", _shfl_xor_sync,
                        raising=False)


@cuda.jit
def _scatter_kernel(values, totals, owners):
    # values (32, 16): each lane's 16 sums; totals (16,), owners (16,) out
    lane = cuda.threadIdx.x
    acc = cuda.local.array(16, np.float64)
    for a in range(16):
        acc[a] = values[lane, a]
    total, which = reduce_scatter(acc, lane)
    if (lane & 1) == 0:
        totals[which] = total
        cuda.atomic.add(owners, which, 1)


@pytest.mark.parametrize("seed", [0, 1])
def test_reduce_scatter_gives_each_pair_one_total(simulated_shuffles, seed):
    values = np.random.default_rng(seed).standard_normal((32, GROUP * TILE))
    totals = np.zeros(16)
    owners = np.zeros(16, dtype=np.int64)
    _scatter_kernel[1, 32](values, totals, owners)
    np.testing.assert_allclose(totals, values.sum(axis=0), rtol=1e-13)
    np.testing.assert_array_equal(owners, 1)   # each sum written by exactly one lane
