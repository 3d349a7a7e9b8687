"""numba.cuda kernels, one file per cell; each cell's file registers its ``Cell`` with
``cells.register``, and ``CELLS`` (``cells.CELLS``) holds every registered cell by name."""
from .cells import CELLS, lookup, register, unregister  # noqa: F401

# the built-in cells, each registering itself (in this order: CELLS's)
from . import lstm, gru, rnn, lnlstm, lngru  # noqa: E402,F401,I001  isort: skip
