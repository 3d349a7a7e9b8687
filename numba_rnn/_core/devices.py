"""Devices: numba_rnn has one device, which ``"cuda"`` and ``"cpu"`` both name."""
import numbers

__all__ = ["check_device", "device_type", "is_device"]


def check_device(device):
    """numba_rnn has one device: ``"cuda"`` and ``"cpu"`` (with an index 0, or as a
    ``device``) both name it."""
    if device is None or isinstance(device, device_type):
        return
    if isinstance(device, numbers.Integral) and not isinstance(device, bool) and device == 0:
        return
    if isinstance(device, str) and device.split(":")[0] in ("cuda", "cpu") and (
            device.count(":") == 0 or device.split(":", 1)[1] == "0"):
        return
    if type(device).__name__ == "device" and type(device).__module__ == "torch":
        return
    raise ValueError(f"device: expected 'cuda', 'cpu' (numba_rnn has one device) or an "
                     f"nr.device, got {device!r}")


class device_type:
    """``nr.device("cuda")`` or ``nr.device("cpu")``: both name numba_rnn's one device
    (the GPU when there is one, else the simulator); kept so that programs that move
    models and data with ``.to(device)`` run unchanged."""

    def __init__(self, type="cuda", index=None):
        if isinstance(type, device_type):
            type, index = type.type, type.index
        elif isinstance(type, str) and ":" in type:
            type, index = type.split(":", 1)
            index = int(index)
        check_device(type if index is None else f"{type}:{index}")
        self.type = type
        self.index = index

    def __eq__(self, other):
        if isinstance(other, str):
            other = device_type(other)
        return isinstance(other, device_type) and self.type == other.type

    def __hash__(self):
        return hash(self.type)

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type={self.type!r}" + (
            ")" if self.index is None else f", index={self.index})")


def is_device(value):
    return (isinstance(value, (device_type, numbers.Integral)) and not isinstance(value, bool)
            ) or (isinstance(value, str) and value.split(":")[0] in ("cuda", "cpu")) or (
        type(value).__name__ == "device" and type(value).__module__ == "torch")
