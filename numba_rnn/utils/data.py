"""``torch.utils.data`` in numba_rnn: datasets and loaders."""
