"""Kernels of the layers beyond the recurrent ones.

Embedding backward: dW[idx[n], :] += dy[n, :] for every looked-up row n. Rows looked up
more than once receive several additions, hence the atomic add; one thread per element
of dy.
"""
from ..backend import cuda
from . import registry


@registry.jit
def embedding_backward(indices, dy, dweight):
    # indices (N,) int64; dy (N,E); dweight (V,E), accumulated into
    k = cuda.grid(1)
    width = dy.shape[1]
    if k >= indices.shape[0] * width:
        return
    n, j = k // width, k % width
    cuda.atomic.add(dweight, (indices[n], j), dy[n, j])
