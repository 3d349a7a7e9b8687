"""Tolerances and comparisons that tests, the demo and the benchmarks share: one table,
written once."""
import numpy as np

from . import backend

#: (rtol, atol) for comparing a result computed in a dtype against a float64 oracle (the
#: NumPy reference, PyTorch in float64, or PyTorch in the same dtype).
TOLERANCES = {
    np.dtype(np.float32): (1e-4, 1e-5),
    np.dtype(np.float64): (1e-9, 1e-11),
}

#: Finite-difference gradient checks in float64: maximum relative error, measured as
#: max|analytic - numeric| / max(max|analytic|, max|numeric|) per tensor.
GRADCHECK_MAX_RELATIVE_ERROR = 1e-6


def to_numpy(a):
    """A host NumPy array from a Tensor, a device array or a CPU torch tensor."""
    if hasattr(a, "data") and backend.is_device_array(getattr(a, "data")):
        a = a.data
    if hasattr(a, "detach") and hasattr(a, "cpu"):
        a = a.detach().cpu().numpy()
    return np.asarray(backend.to_host(a))


def assert_close(actual, expected, dtype, name="value"):
    """Assert ``actual`` (computed in ``dtype``) matches ``expected`` within TOLERANCES."""
    rtol, atol = TOLERANCES[np.dtype(dtype)]
    actual, expected = to_numpy(actual), to_numpy(expected)
    if actual.shape != expected.shape:
        raise AssertionError(f"{name}: shape {actual.shape} != expected {expected.shape}")
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64),
                               rtol=rtol, atol=atol, err_msg=name)


def relative_error(analytic, numeric):
    """max|analytic - numeric| / max(max|analytic|, max|numeric|): an error relative to the
    tensor's scale, meaningful also where single elements are near zero."""
    analytic = to_numpy(analytic).astype(np.float64)
    numeric = to_numpy(numeric).astype(np.float64)
    scale = max(np.max(np.abs(analytic), initial=0.0), np.max(np.abs(numeric), initial=0.0))
    if scale == 0.0:
        return 0.0
    return float(np.max(np.abs(analytic - numeric)) / scale)
