"""numba.cuda kernels, one file per cell; ``CELLS`` registers each cell by name."""
from . import gru, lstm

CELLS = {
    "lstm": lstm.CELL,
    "gru": gru.CELL,
}
