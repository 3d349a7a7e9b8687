"""``torch.nn.init`` in numba_rnn: in-place initialisers of parameters."""
