"""``torch.utils`` in numba_rnn."""
from . import data
