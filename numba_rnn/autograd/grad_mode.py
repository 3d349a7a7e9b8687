"""Grad mode: whether operations record the graph, per thread (``no_grad``,
``enable_grad``, ``set_grad_enabled``, as PyTorch's)."""
import contextlib
import functools
import inspect
import threading

import numpy as np

__all__ = ["is_grad_enabled", "no_grad", "enable_grad", "set_grad_enabled"]

# Grad mode is per thread, as in PyTorch: a thread starts with gradients enabled.
_local = threading.local()


def is_grad_enabled():
    """Whether operations record the graph in this thread."""
    return getattr(_local, "grad_enabled", True)


def _set_grad_mode(enabled):
    _local.grad_enabled = enabled


class _GradMode(contextlib.ContextDecorator):
    """A context manager and decorator that sets grad mode to ``self._enabled`` on entry
    and restores the previous mode on exit. Entries nest (each saves its own previous
    mode), and each call of a decorated function gets a fresh context, so a recursive
    decorated function restores the mode its caller had; a decorated generator runs each
    step in the mode, and its caller keeps its own between steps, as in PyTorch."""

    _enabled = None

    def __new__(cls, orig_func=None):
        if orig_func is None:
            return super().__new__(cls)
        if not callable(orig_func):
            raise TypeError(f"{cls.__name__}: expected no argument or a function to "
                            f"decorate, got {type(orig_func).__name__}")
        return cls()(orig_func)  # used bare, as @nr.no_grad

    def __init__(self):
        self._previous = []

    def __call__(self, func):
        if inspect.isgeneratorfunction(func):
            return _wrap_generator(self._recreate_cm, func)
        return super().__call__(func)

    def _recreate_cm(self):
        return type(self)()

    def __enter__(self):
        self._previous.append(is_grad_enabled())
        _set_grad_mode(self._enabled)
        return self

    def __exit__(self, *exc):
        _set_grad_mode(self._previous.pop())
        return False


def _wrap_generator(context, func):
    """``func``, a generator function, with every step of its generator run within a
    fresh ``context()`` (PyTorch's _wrap_generator does the same)."""
    @functools.wraps(func)
    def generator(*args, **kwargs):
        steps = func(*args, **kwargs)
        try:
            with context():
                response = steps.send(None)
            while True:
                try:
                    request = yield response
                except GeneratorExit:
                    with context():
                        steps.close()
                    raise
                except BaseException as exc:
                    with context():
                        response = steps.throw(exc)
                else:
                    with context():
                        response = steps.send(request)
        except StopIteration as stop:
            return stop.value

    return generator


class no_grad(_GradMode):
    """Within this context (or decorated function), operations record no graph, as
    ``torch.no_grad``."""

    _enabled = False


class enable_grad(_GradMode):
    """Within this context (or decorated function), operations record the graph again,
    also inside ``no_grad``, as ``torch.enable_grad``."""

    _enabled = True


class set_grad_enabled(_GradMode):
    """``set_grad_enabled(mode)`` switches grad mode on or off at once, as a function;
    as a context manager or decorator it restores the previous mode on exit."""

    def __new__(cls, mode):
        return object.__new__(cls)

    def __init__(self, mode):
        if not isinstance(mode, (bool, np.bool_)):
            raise TypeError(f"mode: expected True or False, got {type(mode).__name__} {mode!r}")
        self._enabled = bool(mode)
        self._before = is_grad_enabled()
        _set_grad_mode(self._enabled)

    def __call__(self, func):
        _set_grad_mode(self._before)  # decorating switches nothing until a call
        return super().__call__(func)

    def _recreate_cm(self):
        return set_grad_enabled(self._enabled)

    def __enter__(self):
        _set_grad_mode(self._enabled)
        return self

    def __exit__(self, *exc):
        _set_grad_mode(self._before)
        return False
