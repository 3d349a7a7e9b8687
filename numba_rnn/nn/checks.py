"""The argument checks, kept at their old import path: they live in ``numba_rnn._core.checks``."""
from .._core.checks import (check_bool, check_choice, check_dtype, check_int,  # noqa: F401
                            check_probability, check_real)
