"""Every ``numba.cuda`` kernel of the package, with how to build it again, and the record
of how each one is launched.

Kernels are made in one of two ways, and both register what they make:

* ``@registry.jit`` instead of ``@cuda.jit`` for a kernel at module level;
* ``@registry.factory(domain)`` on a function that builds kernels for its arguments (a
  dtype, a cell) and a ``target`` (``kernels/targets.py``), returning one kernel or a
  namedtuple of them; builds are cached, and ``domain()`` lists every argument tuple the
  package builds it with. A factory called without ``target`` builds for this thread's
  backend (``targets.current()``): the CPU path's kernels on the "cpu" backend, else the
  CUDA kernels, which alone are registered (the CPU's are not compiled for GPUs).

A kernel's ``Recipe`` (module, function, arguments, field) rebuilds it in another
process: the compile check (``numba_rnn.kernels.compile``) runs with the real CUDA target
while the tests run in the simulator, and Numba is one or the other per process.
``record_launches`` collects, from the single launch path in ``backend``, the argument
types of every launch, so that kernels are compiled with the very types (dtypes, ranks,
layouts) their call sites give them. ``all_kernels()`` builds every factory over its
domain, so that a kernel no launch has reached shows up instead of going unchecked.
"""
import functools
import importlib
from collections import namedtuple

import numba
import numpy as np

from .. import backend
from . import cache, targets
from .cells import CELLS

#: How to build a kernel again: ``getattr(module, function)`` is the kernel itself
#: (``args`` None) or a factory, called with the decoded ``args``; ``field`` names the
#: kernel in a namedtuple result.
Recipe = namedtuple("Recipe", ["module", "function", "args", "field"])

_recipes = {}      # id(kernel) -> (kernel, Recipe); the kernel is held so ids stay unique
_factories = []    # (cached factory, domain)


def _register(kernel, recipe):
    _recipes[id(kernel)] = (kernel, recipe)


def recipe_of(kernel):
    """The Recipe of a registered kernel, or None."""
    entry = _recipes.get(id(kernel))
    return None if entry is None else entry[1]


def jit(function):
    """``cuda.jit`` for a kernel defined at module level, registered; kept in the disk
    cache where it can be (``cache.cuda_jit``)."""
    kernel = cache.cuda_jit(function)
    _register(kernel, Recipe(function.__module__, function.__qualname__, None, None))
    return kernel


def factory(domain):
    """Decorator of a function that builds kernels: ``build(*args)`` returns a kernel or a
    namedtuple of kernels. Each build is made once per arguments (a dtype however it is
    spelled) and registered; ``domain()`` yields every arguments tuple the package uses."""
    def decorate(build):
        built = {}

        @functools.wraps(build)
        def cached(*args, target=None):
            target = targets.current() if target is None else target
            encoded = tuple(encode_arg(a) for a in args)
            if (encoded, target) not in built:
                result = build(*[decode_arg(a) for a in encoded], target=target)
                fields = result._fields if hasattr(result, "_fields") else (None,)
                kernels = result if hasattr(result, "_fields") else (result,)
                for field, kernel in zip(fields, kernels):
                    if target == targets.CUDA and kernel is not None:
                        _register(kernel, Recipe(build.__module__, build.__qualname__,
                                                 encoded, field))
                built[encoded, target] = result
            return built[encoded, target]

        _factories.append((cached, domain))
        return cached
    return decorate


def encode_arg(value):
    """A factory argument as a hashable, JSON-able pair: ("cell", name) for a cell,
    ("dtype", name) for a dtype however spelled (factories take nothing else)."""
    if hasattr(value, "num_gates") and hasattr(value, "units"):
        return ("cell", value.name)
    return ("dtype", np.dtype(value).name)


def decode_arg(value):
    kind, name = value
    if kind == "cell":
        return CELLS[name]
    return np.dtype(name)


def recipe_from_json(value):
    """A Recipe from its JSON form (lists where it had tuples)."""
    module, function, args, field = value
    return Recipe(module, function, None if args is None else tuple(tuple(a) for a in args),
                  field)


def build(recipe):
    """The kernel a Recipe describes, built in this process."""
    made = getattr(importlib.import_module(recipe.module), recipe.function)
    if recipe.args is None:
        return made
    result = made(*[decode_arg(a) for a in recipe.args], target=targets.CUDA)
    return result if recipe.field is None else getattr(result, recipe.field)


def all_kernels():
    """Every kernel the package can launch: each factory built over its domain, and every
    kernel registered at module level. Returns {Recipe: kernel}; a kernel built for a cell
    that has since been unregistered (``cells.unregister``) is not one of them."""
    for cached, domain in list(_factories):
        for args in domain():
            cached(*args, target=targets.CUDA)
    return {recipe: kernel for kernel, recipe in _recipes.values()
            if not any(kind == "cell" and name not in CELLS for kind, name in recipe.args or ())}


# ------------------------------------------------------------------ launches
def describe(value):
    """A launch argument's Numba type as JSON: ("array", dtype, ndim, layout) or
    ("scalar", dtype)."""
    return describe_type(numba.typeof(value))


def describe_type(value_type):
    """``describe`` of a Numba type. Read-only flags are dropped: device arrays are never
    read-only."""
    if isinstance(value_type, numba.types.Array):
        return ("array", np.dtype(str(value_type.dtype)).name, value_type.ndim,
                value_type.layout)
    return ("scalar", np.dtype(str(value_type)).name)


def numba_type(description):
    """The Numba type of a ``describe`` result."""
    if description[0] == "array":
        _, dtype, ndim, layout = description
        return numba.types.Array(numba.from_dtype(np.dtype(dtype)), ndim, layout)
    return numba.from_dtype(np.dtype(description[1]))


class LaunchRecord:
    """The distinct argument types (signatures) of the launches seen, per kernel Recipe.
    Called by backend.launch_grid before each launch; refuses a kernel the registry does
    not know, which could not be compile-checked."""

    def __init__(self):
        self.signatures = {}  # Recipe -> {signature tuple: None} (ordered, distinct)

    def __call__(self, kernel, blocks, threads, shared_bytes, args):
        recipe = recipe_of(kernel)
        if recipe is None:
            raise RuntimeError(f"launch of a kernel that is not registered: {kernel!r}; "
                               "define it with registry.jit or registry.factory")
        self.signatures.setdefault(recipe, {})[tuple(describe(a) for a in args)] = None


def record_launches(record=None):
    """Record every launch from now on into ``record`` (a new LaunchRecord by default),
    and return it; ``stop_recording()`` ends it."""
    record = LaunchRecord() if record is None else record
    backend.set_launch_recorder(record)
    return record


def stop_recording():
    backend.set_launch_recorder(None)
