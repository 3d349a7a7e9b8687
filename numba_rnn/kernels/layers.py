"""Kernels of the layers beyond the recurrent ones.

Embedding backward: dW[idx[n], :] += dy[n, :] for every looked-up row n. Rows looked up
more than once receive several additions: on CUDA one thread per element of dy, adding
atomically; on the CPU each thread owns whole columns of dW, so no two add to one element.
"""
import numba

from ..backend import cuda
from . import registry, targets


@registry.factory(lambda: [()])
def embedding_backward(target):
    if target == targets.CUDA:
        @cuda.jit
        def embedding_backward(indices, dy, dweight):
            # indices (N,) int64; dy (N,E); dweight (V,E), accumulated into
            k = cuda.grid(1)
            width = dy.shape[1]
            if k >= indices.shape[0] * width:
                return
            n, j = k // width, k % width
            cuda.atomic.add(dweight, (indices[n], j), dy[n, j])

        return embedding_backward

    @numba.njit(parallel=True)
    def embedding_backward_cpu(items, indices, dy, dweight):
        # items = dy.size, as a launch gets; a column of dweight per iteration
        for j in numba.prange(dy.shape[1]):
            for n in range(indices.shape[0]):
                dweight[indices[n], j] += dy[n, j]

    # items = dy.size: columns are what spreads over threads, so a wide table does
    return targets.CpuKernel(embedding_backward_cpu, "embedding_backward")
