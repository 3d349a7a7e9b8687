"""The kernels kept on disk, so that a new process loads them instead of compiling them
again: the CPU kernels (1.5–9 s a cell and dtype at every start without it) and the CUDA
kernels (NVVM and nvJitLink: 1.5–4 s an LSTM forward and backward on a path, measured
offline; benchmarks/NOTES.md).

Numba's own cache (``cache=True``) keys a function's compilations by the file it is
defined in (a hash of that file) and the function's bytecode; it knows nothing of the
functions it calls, which ``targets.device`` inlines: a changed unit function would be
served stale from a cache keyed by its caller. And the kernels here are generated
(``targets._generate``): they have no file. So each CPU kernel is written to a module
file of its own in the cache folder, named by a key that hashes everything its
compilation depends on:

* the kernel's source (the generated wrapper, serial and parallel) and compile options;
* ``fingerprint`` of every global the wrapper names: for a function (a unit, an item
  or row function, a device function; anything outside Numba, NumPy and Python's
  math) its code, closure values, defaults and the globals its code reads,
  recursively through every function it reaches; typed constants, dtypes and Numba
  types by value;
* the Python, NumPy, llvmlite, Numba and numba-cuda versions.

Numba caches the module's functions next to it (``__pycache__``, or under
``NUMBA_CACHE_DIR`` where set).

The CUDA kernels go the same way (``load_cuda``, and ``cuda_jit`` for a kernel written
as a function, a closure of a factory or at module level: its source, without
decorators, becomes the module's, and the values of its closure and the globals it
reads the module's globals), compiled by ``cuda.jit(cache=True)``: numba-cuda keys a
cached kernel by its file's modification time and size, its bytecode and a pickle of
its closure (none here: the values are the module's globals, which ``fingerprint``
tells), the signature, numba-cuda's version and its codegen's "magic tuple", the CUDA
runtime's version and the device's compute capability; it too knows nothing of the
device functions a kernel calls, which the key here follows (``fingerprint`` of a
``CUDADispatcher``: its options and its Python function; of an ``@intrinsic``: its
definition; numba-cuda's version is in the key as well). One module file serves every
compute capability, numba-cuda's index holding an entry for each. The simulator accepts
``cache=True`` and ignores it (``FakeCUDAKernel`` compiles nothing); its kernels run from
the same module files, so that the test suite runs what a GPU compiles. A change to anything above gives another key, another
file, a fresh compile: a stale entry is never read (old files stay until the folder
is cleared). ``NUMBA_RNN_CACHE_DIR`` names the folder (default
``$XDG_CACHE_HOME/numba_rnn``, ``~/.cache/numba_rnn``); empty, it turns the cache
off. Where the folder cannot be written, or a kernel reaches a value whose identity
cannot be fingerprinted, the kernel compiles as before, in memory (one warning for an
unusable folder).
"""
import dis
import functools
import hashlib
import inspect
import os
import platform
import re
import sys
import textwrap
import types
import uuid
import warnings

import numba
import numba.core.dispatcher
import numpy as np

#: Raised into the key: bump it when the scheme (what a key hashes) changes.
SCHEME = 2

_VARIABLE = "NUMBA_RNN_CACHE_DIR"


class Uncacheable(TypeError):
    """A value a kernel depends on whose identity ``fingerprint`` cannot tell."""


def folder():
    """The cache folder, or None when ``NUMBA_RNN_CACHE_DIR`` is set empty (no cache)."""
    chosen = os.environ.get(_VARIABLE)
    if chosen is not None:
        return os.path.abspath(os.path.expanduser(chosen)) if chosen.strip() else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "numba_rnn")


# ----------------------------------------------------------------- fingerprints
#: Libraries whose functions and modules a kernel may name, known by name (their
#: versions are in the key, or they are Python's); any other function is known by its code.
_LIBRARIES = {"numba", "numba_cuda", "numpy", "llvmlite", "math", "cmath", "operator",
              "builtins"}
_GLOBAL_OPS = {"LOAD_GLOBAL", "LOAD_NAME"}


def _library(module_name):
    return (module_name or "").partition(".")[0] in _LIBRARIES


def fingerprint(value):
    """A deterministic text that changes whenever ``value`` would compile differently
    as a kernel's global: see the module's docstring. Raises Uncacheable for a value
    it cannot tell (a kernel reaching one is compiled without the cache)."""
    return _fingerprint(value, {})


def _fingerprint(value, seen):
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, np.generic):
        return f"scalar:{value.dtype.str}:{value!r}"
    if isinstance(value, np.dtype):
        return f"dtype:{value.str}"
    if isinstance(value, numba.types.Type):
        return f"numba-type:{value}"
    if isinstance(value, types.ModuleType):
        if not _library(value.__name__):  # what the kernel reads of it is not in the key
            raise Uncacheable(f"a kernel reads module {value.__name__} as a global")
        return f"module:{value.__name__}"
    if isinstance(value, (tuple, list)):
        return (f"{type(value).__name__}("
                + ",".join(_fingerprint(v, seen) for v in value) + ")")
    if id(value) in seen:  # a function met before (or reaching itself)
        return f"seen:{seen[id(value)][0]}"
    if isinstance(value, numba.core.dispatcher.Dispatcher):
        _seen(value, seen)
        options = sorted((k, repr(v)) for k, v in value.targetoptions.items())
        return f"dispatcher{options}:{_fingerprint(value.py_func, seen)}"
    if type(value).__name__ == "_Intrinsic" and type(value).__module__ == "numba.core.extending":
        _seen(value, seen)  # a CPU @intrinsic: its definition gives its code
        return f"intrinsic:{_fingerprint(value._defn, seen)}"
    cuda_function = _cuda_function(value)
    if cuda_function is not None:  # a CUDA kernel or device function, or the simulator's
        _seen(value, seen)
        kind, options, function = cuda_function
        return f"{kind}{options}:{_fingerprint(function, seen)}"
    if hasattr(value, "__wrapped__") and callable(value):  # functools wrappers
        return _fingerprint(value.__wrapped__, seen)
    if isinstance(value, types.FunctionType):
        if _library(value.__module__):  # its name, and the library's version
            return f"function:{value.__module__}.{value.__qualname__}"
        _seen(value, seen)
        return _function(value, seen)
    if isinstance(value, (types.BuiltinFunctionType, type)):
        module = getattr(value, "__module__", None)
        if not _library(module):
            raise Uncacheable(f"a kernel uses {value!r}")
        return f"builtin:{module}.{getattr(value, '__qualname__', value)}"
    raise Uncacheable(f"a kernel depends on {type(value).__name__} {value!r}")


def _cuda_function(value):
    """(kind, options, Python function) of numba-cuda's dispatcher (``cuda.jit``, device
    functions included), of the simulator's ``FakeCUDAKernel`` or of an ``@intrinsic``
    (whose definition gives its code); None for anything else."""
    kind = type(value)
    if not kind.__module__.startswith(("numba.cuda", "numba_cuda")):
        return None
    if kind.__name__ == "CUDADispatcher":
        return ("cuda-dispatcher", sorted((k, repr(v)) for k, v in value.targetoptions.items()),
                value.py_func)
    if kind.__name__ == "FakeCUDAKernel":
        return ("cuda-simulated", [("debug", value._debug), ("device", value._device),
                                   ("fastmath", value._fastmath)], value.fn)
    if kind.__name__ == "_Intrinsic":
        return "cuda-intrinsic", [], value._defn
    return None


def _seen(value, seen):
    # functions and dispatchers only, held so that no other object takes their id
    seen[id(value)] = (len(seen), value)


def _function(function, seen):
    """A function outside the libraries: its code, the values of its closure, its defaults and
    every global its code (nested code included) reads."""
    code = function.__code__
    closure = [cell.cell_contents for cell in function.__closure__ or ()]
    names = sorted(_global_names(code))
    builtins = function.__globals__.get("__builtins__", {})
    builtins = builtins if isinstance(builtins, dict) else vars(builtins)
    referenced = []
    for name in names:
        if name in function.__globals__:
            referenced.append((name, _fingerprint(function.__globals__[name], seen)))
        elif name in builtins:
            referenced.append((name, _fingerprint(builtins[name], seen)))
        else:
            referenced.append((name, "undefined"))
    kwdefaults = sorted((function.__kwdefaults__ or {}).items())
    # a generated module's name is part of a function from it: a cached caller's
    # environment names the module of each function it calls, so a callee whose module
    # file changed (a comment is enough: the name hashes the source text, the code here
    # does not) must change its callers' keys too, or their cache entries would name a
    # module this process never made
    where = function.__module__ if str(function.__module__).startswith(_MODULE_PREFIX) else ""
    return (f"function:{where}:{function.__qualname__}:{_code(code, seen)}:"
            f"closure={[_fingerprint(v, seen) for v in closure]}:"
            f"defaults={_fingerprint(function.__defaults__, seen)}:"
            f"kwdefaults={_fingerprint(kwdefaults, seen)}:globals={referenced}")


def _code(code, seen):
    consts = [_code(c, seen) if isinstance(c, types.CodeType)
              else repr(sorted(map(repr, c))) if isinstance(c, frozenset)
              else _fingerprint(c, seen) for c in code.co_consts]
    return (f"code({code.co_code.hex()},{consts},{code.co_names},{code.co_varnames},"
            f"{code.co_freevars},{code.co_cellvars},{code.co_argcount},"
            f"{code.co_posonlyargcount},{code.co_kwonlyargcount},{code.co_flags})")


def _global_names(code):
    names = {i.argval for i in dis.get_instructions(code) if i.opname in _GLOBAL_OPS}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


@functools.lru_cache(maxsize=None)
def _versions():
    from importlib import metadata

    import llvmlite
    try:
        numba_cuda = metadata.version("numba-cuda")
    except metadata.PackageNotFoundError:
        numba_cuda = None
    return (f"scheme {SCHEME}; python {sys.version}; {platform.machine()}; "
            f"numpy {np.__version__}; llvmlite {llvmlite.__version__}; "
            f"numba {numba.__version__}; numba-cuda {numba_cuda}")


def key(source, namespace, options):
    """The hash that names a kernel's module file (see the module's docstring)."""
    parts = [_versions(), source, repr(sorted(options.items()))]
    parts += [f"{name}={fingerprint(namespace[name])}" for name in sorted(namespace)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


# ---------------------------------------------------------------------- modules
_MODULE_PREFIX = "numba_rnn_cached_"
_warned = False


def _warn_once(message):
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(f"numba_rnn: {message}; kernels compile without the disk cache "
                      f"(set {_VARIABLE} to a writable folder, or empty to turn it off)",
                      RuntimeWarning, stacklevel=4)


def _write(path, source):
    """``source`` in ``path`` (written once, atomically: processes may race on it);
    False where the folder cannot take it."""
    try:
        with open(path) as existing:
            if existing.read() == source:
                return True
    except OSError:
        pass
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        partial = f"{path}.{uuid.uuid4().hex[:12]}.tmp"
        with open(partial, "w") as f:
            f.write(source)
        os.replace(partial, path)
        return True
    except OSError as exc:
        _warn_once(f"cannot write the kernel cache in {os.path.dirname(path)} ({exc})")
        return False


def _module(name, source, namespace, functions):
    """The module of ``source`` with the globals ``namespace``, from its file in the
    cache folder named by ``key`` (written where it is not there yet); None where the
    cache is off, or cannot hold it."""
    where = folder()
    if where is None:
        return None
    try:
        digest = key(source, namespace, functions)
    except Uncacheable:
        return None
    module_name = f"{_MODULE_PREFIX}{name}_{digest[:20]}"
    module = sys.modules.get(module_name)
    if module is None:
        path = os.path.join(where, module_name + ".py")
        header = f"# numba_rnn kernel {name}, generated; key {digest}\n"
        if not _write(path, header + source):
            return None
        module = types.ModuleType(module_name)
        module.__file__ = path
        module.__dict__.update(namespace)
        exec(compile(header + source, path, "exec"), module.__dict__)  # noqa: S102
        # Numba rebuilds a cached function's environment by importing its module
        sys.modules[module_name] = module
    return module


def load(name, source, namespace, functions):
    """The functions ``functions`` (name -> Numba options) defined by ``source`` with
    the globals ``namespace``, compiled by ``numba.njit`` with Numba's disk cache, from
    a module file named by ``key``; None where the cache is off, or cannot hold this
    kernel (the caller then compiles without it)."""
    module = _module(name, source, namespace, functions)
    if module is None:
        return None
    try:
        return {f: numba.njit(cache=True, **options)(getattr(module, f))
                for f, options in functions.items()}
    except RuntimeError as exc:  # no locator: Numba found no writable cache folder
        _warn_once(str(exc))
        return None


def load_cuda(name, source, namespace, options=None):
    """The CUDA kernel ``name`` defined by ``source`` with the globals ``namespace``,
    ``cuda.jit(cache=True, **options)`` of it from a module file named by ``key``
    (numba-cuda then keeps its compilations beside it); None where the cache is off,
    or cannot hold this kernel (the caller then compiles without it)."""
    from ..backend import cuda

    options = dict(options or {})
    module = _module(name, source, namespace, {name: {"cuda.jit": options}})
    if module is None:
        return None
    try:
        kernel = cuda.jit(cache=True, **options)(getattr(module, name))
    except RuntimeError as exc:  # no locator: numba-cuda found no writable cache folder
        _warn_once(str(exc))
        return None
    kernel.cache_key = module.__name__  # marks a kernel the disk cache holds
    return kernel


_DEF = re.compile(r"^def ", re.MULTILINE)


def function_module(function):
    """(source, namespace) of a module defining ``function`` at its top level: its
    source without its decorators, dedented, and as globals the values of its closure
    and the globals (and builtins shadowed there) its code reads. Raises OSError or
    TypeError where its source cannot be read (a function made by ``exec``)."""
    text = textwrap.dedent(inspect.getsource(function))
    found = _DEF.search(text)
    if found is None:
        raise TypeError(f"no def at the top of the source of {function.__qualname__}")
    code = function.__code__
    namespace = {name: cell.cell_contents
                 for name, cell in zip(code.co_freevars, function.__closure__ or ())}
    for name in sorted(_global_names(code)):
        if name in function.__globals__:
            namespace[name] = function.__globals__[name]
    return text[found.start():], namespace


def cuda_jit(function=None, **options):
    """``cuda.jit(**options)`` of ``function`` (a kernel: also as ``@cuda_jit``), from the
    disk cache where it can hold it (``function_module``, ``load_cuda``); else compiled
    as ``cuda.jit`` compiles it."""
    if function is None:
        return functools.partial(cuda_jit, **options)
    from ..backend import cuda

    try:
        source, namespace = function_module(function)
    except (OSError, TypeError):
        kernel = None
    else:
        kernel = load_cuda(function.__name__, source, namespace, options)
    return kernel if kernel is not None else cuda.jit(**options)(function)


def cpu_jit(function=None, **options):
    """``numba.njit(**options)`` of ``function`` (a nested or generated function: also
    as ``@cpu_jit``), from the disk cache where it can hold it (``function_module``,
    ``load``): its source and closure values become a module of the cache folder,
    keyed by everything it reaches; else compiled as ``numba.njit`` compiles it."""
    if function is None:
        return functools.partial(cpu_jit, **options)
    try:
        source, namespace = function_module(function)
    except (OSError, TypeError):
        compiled = None
    else:
        compiled = load(function.__name__, source, namespace, {function.__name__: options})
    if compiled is None:
        return numba.njit(**options)(function)
    return compiled[function.__name__]
