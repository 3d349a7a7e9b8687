"""numba.cuda kernels, one file per cell; ``CELLS`` registers each cell by name."""
from . import gru, lngru, lnlstm, lstm, rnn

CELLS = {
    "lstm": lstm.CELL,
    "gru": gru.CELL,
    "rnn_tanh": rnn.TANH,
    "rnn_relu": rnn.RELU,
    "ln_lstm": lnlstm.CELL,
    "ln_gru": lngru.CELL,
}
