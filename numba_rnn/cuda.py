"""``torch.cuda``'s everyday questions, answered for numba_rnn's one device."""
from . import backend
from .random import manual_seed

__all__ = ["is_available", "device_count", "current_device", "get_device_name",
           "synchronize", "manual_seed", "manual_seed_all"]


def is_available():
    """True when numba_rnn runs its kernels on a GPU (False in the simulator)."""
    return backend.backend_name() == "cuda"


def device_count():
    return 1 if is_available() else 0


def current_device():
    return 0


def get_device_name(device=None):
    return backend.device_description()


def synchronize(device=None):
    """Wait for the device's work to finish (nothing to wait for in the simulator)."""
    if is_available():
        backend.xp.cuda.get_current_stream().synchronize()


def manual_seed_all(seed):
    manual_seed(seed)
