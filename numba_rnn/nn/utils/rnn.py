"""``torch.nn.utils.rnn`` in numba_rnn: packed sequences."""
