"""``nr.save`` and ``nr.load``: module and optimizer state dicts (and any tree of dicts,
lists, tuples, numbers, strings, arrays and Tensors) in one file, and whole objects (a
model, an optimizer) under PyTorch's ``weights_only`` rule.

The file format is an uncompressed ``.npz`` (a ZIP archive of ``.npy`` members, readable
with ``numpy.load(path, allow_pickle=False)``):

* ``__numba_rnn__.npy``: a uint8 array holding UTF-8 JSON,
  ``{"format": "numba_rnn.checkpoint", "version": 1 or 2, "tree": ...}``, where ``tree``
  is the saved object with JSON's own values as they are and, in their place,
  ``{"$array": k}`` (a NumPy array), ``{"$tensor": k}`` (a Tensor), ``{"$scalar": k}`` (a
  NumPy scalar), ``{"$float": "7ff8000000000000"}`` (a Python float that JSON cannot
  hold, NaN or ±Inf, as its 8 bytes big-endian in hex), ``{"$tuple": [...]}`` and
  ``{"$dict": [[key, value], ...]}`` (a dict, in order, with keys of any JSON-able type,
  such as an optimizer state's int keys); the JSON is strict (no NaN or Infinity);
* ``a{k}.npy``: the k-th array, in its own dtype, so a round trip is bit-exact. An array
  or Tensor that appears several times in the tree is stored once, and loads as one
  object.

Version 1 holds data only, and is what a tree of the kinds above is written as. Version 2
is written when the tree holds whole objects (anything else: a Module, an optimizer, a
function); it adds
``{"$object": [name, n, state]}`` (an instance of the class ``name``, "module:qualname",
number n, with ``state`` what pickle's default reduction gives: its ``__getstate__()``,
usually its ``__dict__``), ``{"$ref": n}`` (object n again), ``{"$global": name}`` (a
class or function, by name), ``{"$parameter": [k, requires_grad]}``, ``{"$devarray": k}``
(a CuPy array), ``{"$odict": [...]}``, ``{"$set": [...]}``, ``{"$frozenset": [...]}``,
``{"$bytes": hex}``, ``{"$complex": [re, im]}``, ``{"$dtype": str}``, and
``{"$pickle": [k, name]}`` (an object whose class reduces itself, e.g. a NumPy Generator:
the pickle bytes are array k).

Loading follows PyTorch >= 2.6: ``nr.load(path)`` (``weights_only=True``) rebuilds data
only, and never imports a module, unpickles, or calls code named by the file, except
classes and functions the program allowed with ``nr.serialization.add_safe_globals``:
an allowed class is rebuilt as pickle would, ``cls.__new__(cls)`` then
``__setstate__(state)`` or an update of its ``__dict__``, with ``state`` itself data (and
allowed objects). A file that names anything else raises ``WeightsOnlyError`` (a
``CheckpointError`` and a ``pickle.UnpicklingError``) listing the names.
``nr.load(path, weights_only=False)`` trusts the file: it imports the classes and
functions it names and unpickles ``$pickle`` entries.

Writing is atomic: the archive goes to a temporary file in the same folder, is flushed to
disk, and is then renamed over ``path``, after which the folder is flushed too; a crash
mid-write leaves any earlier file at ``path`` as it was. The file gets the permissions an
ordinary ``open()`` gives. Reading refuses, with a ``CheckpointError`` (a ``ValueError``), a
file that is not a ZIP archive (truncated, or another format), a ZIP without the header,
another format or a newer version, and a member whose checksum fails.
"""
import contextlib
import copyreg
import importlib
import io
import json
import math
import numbers
import os
import pickle
import secrets
import stat
import struct
import types
import zipfile
from collections import OrderedDict

import numpy as np

from . import backend
from .tensor import Tensor, _wrap

FORMAT = "numba_rnn.checkpoint"
VERSION = 2  # the newest version this reads; data-only trees are still written as 1
_DATA_VERSION = 1
_HEADER = "__numba_rnn__"


class CheckpointError(ValueError):
    """A file that ``nr.load`` refuses: not a numba_rnn checkpoint, or a damaged one."""


class WeightsOnlyError(CheckpointError, pickle.UnpicklingError):
    """``nr.load(path)`` (``weights_only=True``) met a file that holds whole objects:
    classes or functions the program has not allowed, or pickled objects."""


# ------------------------------------------------------------------ allowed globals
_SAFE_GLOBALS = {}  # "module:qualname" -> the class or function


def _name_of(obj):
    """"module:qualname" of a class or function."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if not isinstance(module, str) or not isinstance(qualname, str):
        raise TypeError(f"{obj!r} has no module and qualified name")
    return f"{module}:{qualname}"


def add_safe_globals(safe_globals):
    """Allow ``nr.load``'s default (``weights_only=True``) to rebuild instances of these
    classes and to return these functions, as ``torch.serialization.add_safe_globals``:
    each entry is a class or function, or a ``(obj, "module:qualname")`` pair naming it
    as the file does. Allowing a class trusts its ``__setstate__`` (if any) with data."""
    if not isinstance(safe_globals, (list, tuple, set)):
        raise TypeError(f"safe_globals: expected a list of classes or functions, got "
                        f"{type(safe_globals).__name__}")
    entries = {}
    for item in safe_globals:
        if isinstance(item, tuple):
            if len(item) != 2 or not isinstance(item[1], str) or ":" not in item[1]:
                raise TypeError(f"safe_globals: expected (obj, 'module:qualname') pairs, "
                                f"got {item!r}")
            entries[item[1]] = item[0]
        elif isinstance(item, type) or callable(item):
            entries[_name_of(item)] = item
        else:
            raise TypeError(f"safe_globals: expected classes or functions, got "
                            f"{type(item).__name__}")
    _SAFE_GLOBALS.update(entries)


def get_safe_globals():
    """The classes and functions ``add_safe_globals`` allowed."""
    return [obj if _safe_name(obj) == name else (obj, name)
            for name, obj in _SAFE_GLOBALS.items()]


def _safe_name(obj):
    try:
        return _name_of(obj)
    except TypeError:
        return None


def clear_safe_globals():
    """Forget every class and function ``add_safe_globals`` allowed."""
    _SAFE_GLOBALS.clear()


@contextlib.contextmanager
def safe_globals(safe_globals):
    """Within this context, these classes and functions are allowed too."""
    before = dict(_SAFE_GLOBALS)
    add_safe_globals(safe_globals)
    try:
        yield
    finally:
        _SAFE_GLOBALS.clear()
        _SAFE_GLOBALS.update(before)


def _import(name):
    """The class or function ``name`` ("module:qualname") names: imports its module
    (``weights_only=False`` only)."""
    module_name, qualname = name.split(":", 1)
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


# ------------------------------------------------------------------- writing
_DATA_ONLY_KINDS = (set, frozenset, bytes, bytearray, complex, np.dtype)


def _is_whole_object(obj):
    """Whether ``obj`` is neither data of version 1 nor a builtin kind of version 2: an
    instance of some class (a Module, an optimizer, ...), a class or a function."""
    return not (obj is None or isinstance(obj, (bool, str, numbers.Number, np.generic, Tensor,
                                               np.ndarray, dict, list, tuple) + _DATA_ONLY_KINDS)
                or backend.is_device_array(obj))


def _holds_whole_objects(obj):
    stack = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif _is_whole_object(item):
            return True
    return False


class _Encoder:
    """The JSON tree of an object; arrays are appended to ``arrays`` as host copies.
    ``objects``: version 2 (whole objects), else only version 1's data."""

    def __init__(self, objects):
        self.objects = objects
        self.arrays = []
        self.memo = {}  # id -> its encoding (arrays and Tensors stored once, object refs)
        self.alive = []  # what the memo's ids belong to, kept alive until the end

    def _store(self, obj, host, kind):
        if id(obj) not in self.memo:
            if host.dtype.hasobject:
                raise TypeError("obj: arrays of Python objects cannot be saved, got dtype "
                                "object")
            self.arrays.append(host)
            self.alive.append(obj)
            self.memo[id(obj)] = len(self.arrays) - 1
        return {kind: self.memo[id(obj)]}

    def encode(self, obj, where="obj"):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, numbers.Integral) and not isinstance(obj, np.generic):
            return int(obj)
        if isinstance(obj, float) and not isinstance(obj, np.generic):
            if math.isfinite(obj):
                return obj
            # NaN and ±Inf are not JSON: their 8 bytes, big-endian, as hex (bit-exact)
            return {"$float": struct.pack(">d", obj).hex()}
        if isinstance(obj, np.generic):
            self.arrays.append(np.asarray(obj))
            return {"$scalar": len(self.arrays) - 1}
        if isinstance(obj, Tensor):
            host = np.array(backend.to_host(obj._array), copy=True)
            if self.objects and _is_parameter(obj):
                entry = self._store(obj, host, "$parameter")
                return {"$parameter": [entry["$parameter"], bool(obj.requires_grad)]}
            return self._store(obj, host, "$tensor")
        if isinstance(obj, np.ndarray) or backend.is_device_array(obj):
            kind = "$array"
            if self.objects and not isinstance(obj, np.ndarray):
                kind = "$devarray"  # CuPy storage (an optimizer's state) goes back there
            return self._store(obj, np.array(backend.to_host(obj), copy=True), kind)
        if isinstance(obj, dict):
            kind = "$odict" if self.objects and isinstance(obj, OrderedDict) else "$dict"
            return {kind: [[self.encode(k, where), self.encode(v, f"{where}[{k!r}]")]
                           for k, v in obj.items()]}
        if isinstance(obj, tuple):
            return {"$tuple": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if not self.objects:
            raise TypeError(f"obj: expected dicts, lists, tuples, numbers, strings, None, "
                            f"arrays or Tensors, got {type(obj).__name__}")
        return self._encode_object(obj, where)

    def _encode_object(self, obj, where):
        if isinstance(obj, (set, frozenset)):
            kind = "$set" if isinstance(obj, set) else "$frozenset"
            return {kind: [self.encode(v, where) for v in obj]}
        if isinstance(obj, (bytes, bytearray)) and type(obj) in (bytes, bytearray):
            return {"$bytes": bytes(obj).hex()}
        if isinstance(obj, complex) and type(obj) is complex:
            return {"$complex": [self.encode(obj.real), self.encode(obj.imag)]}
        if (isinstance(obj, np.dtype) and not obj.hasobject and obj.fields is None
                and obj.subdtype is None):
            return {"$dtype": obj.str}
        if id(obj) in self.memo:
            return {"$ref": self.memo[id(obj)]}
        if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)):
            return {"$global": self._global_name(obj, where)}
        try:
            # a class registered with copyreg (NumPy's ufuncs) is left to pickle
            reduced = (None if type(obj) in copyreg.dispatch_table
                       else obj.__reduce_ex__(2))
        except Exception as exc:
            raise TypeError(f"{where}: cannot save a {type(obj).__name__} ({exc})") from None
        if (isinstance(reduced, tuple) and len(reduced) >= 2
                and reduced[0] is copyreg.__newobj__ and len(reduced[1]) == 1
                and reduced[1][0] is type(obj) and all(r is None for r in reduced[3:])):
            # what pickle does for a plain class: cls.__new__(cls), then its state
            name = self._global_name(type(obj), where)
            number = len(self.memo)
            self.memo[id(obj)] = number
            self.alive.append(obj)
            state = reduced[2] if len(reduced) > 2 else None
            self.alive.append(state)
            return {"$object": [name, number, self.encode(state, f"{where}.__dict__")]}
        try:
            data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise TypeError(f"{where}: cannot save a {type(obj).__name__} ({exc})") from None
        self.arrays.append(np.frombuffer(data, dtype=np.uint8))
        return {"$pickle": [len(self.arrays) - 1, _safe_name(type(obj)) or repr(type(obj))]}

    @staticmethod
    def _global_name(obj, where):
        """The name of a class or function, checked as pickle does: it must be
        importable under it (not a lambda, nor defined inside a function)."""
        name = _safe_name(obj)
        try:
            found = name is not None and _import(name) is obj
        except Exception:
            found = False
        if not found:
            raise TypeError(f"{where}: cannot save {obj!r}: it is not importable as "
                            f"{name or 'a module attribute'} (a lambda, or defined inside a "
                            "function?); define it at module level")
        return name


def _is_parameter(tensor):
    from .nn.module import Parameter
    return isinstance(tensor, Parameter)


# ------------------------------------------------------------------- reading
class _Decoder:
    def __init__(self, arrays, weights_only, path):
        self.arrays = arrays
        self.weights_only = weights_only
        self.path = path
        self.tensors = {}  # (kind, k) -> the object, so that shared ones stay shared
        self.objects = {}  # object number -> the instance

    def _shared(self, kind, k, make):
        if (kind, k) not in self.tensors:
            self.tensors[(kind, k)] = make(self.arrays[k])
        return self.tensors[(kind, k)]

    def decode(self, tree):
        if isinstance(tree, list):
            return [self.decode(v) for v in tree]
        if not isinstance(tree, dict):
            return tree
        (kind, value), = tree.items()
        if kind == "$array":
            return self.arrays[value]
        if kind == "$tensor":
            return self._shared(kind, value, lambda a: _wrap(backend.to_device(a)))
        if kind == "$scalar":
            return self.arrays[value][()]
        if kind == "$float":
            return struct.unpack(">d", bytes.fromhex(value))[0]
        if kind == "$tuple":
            return tuple(self.decode(v) for v in value)
        if kind == "$dict":
            return {_freeze(self.decode(k)): self.decode(v) for k, v in value}
        if kind == "$odict":
            return OrderedDict((_freeze(self.decode(k)), self.decode(v)) for k, v in value)
        if kind == "$parameter":
            from .nn.module import Parameter
            k, requires_grad = value
            return self._shared(kind, k, lambda a: Parameter(backend.to_device(a),
                                                              requires_grad=bool(requires_grad)))
        if kind == "$devarray":
            return self._shared(kind, value, backend.to_device)
        if kind in ("$set", "$frozenset"):
            items = (_freeze(self.decode(v)) for v in value)
            return set(items) if kind == "$set" else frozenset(items)
        if kind == "$bytes":
            return bytes.fromhex(value)
        if kind == "$complex":
            return complex(self.decode(value[0]), self.decode(value[1]))
        if kind == "$dtype":
            dtype = np.dtype(str(value))
            if dtype.hasobject:
                raise CheckpointError(f"{self.path}: a dtype of Python objects in the header")
            return dtype
        if kind == "$ref":
            return self.objects[value]
        if kind == "$global":
            return self._global(value)
        if kind == "$object":
            return self._object(*value)
        if kind == "$pickle":
            if self.weights_only:  # never reached: load() checks first; kept as a guard
                raise WeightsOnlyError(f"{self.path}: refusing to unpickle with weights_only")
            return pickle.loads(self.arrays[value[0]].tobytes())
        raise CheckpointError(f"checkpoint: unknown entry {kind!r} in the header")

    def _global(self, name):
        if self.weights_only:
            if name not in _SAFE_GLOBALS:  # never reached: load() checks first
                raise WeightsOnlyError(f"{self.path}: {name} is not an allowed global")
            return _SAFE_GLOBALS[name]
        try:
            return _import(name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise CheckpointError(f"{self.path}: cannot find {name}, which the file names "
                                  f"({type(exc).__name__}: {exc})") from None

    def _object(self, name, number, state):
        cls = self._global(name)
        if not isinstance(cls, type):
            raise CheckpointError(f"{self.path}: {name} is not a class")
        instance = cls.__new__(cls)
        self.objects[number] = instance
        state = self.decode(state)
        setstate = getattr(cls, "__setstate__", None)
        if setstate is not None:
            instance.__setstate__(state)
            return instance
        slots = None
        if isinstance(state, tuple) and len(state) == 2:
            state, slots = state
        if state:
            if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
                raise CheckpointError(f"{self.path}: the state of a {name} is not a dict "
                                      "of attributes")
            instance.__dict__.update(state)
        if slots:
            for key, value in slots.items():
                setattr(instance, key, value)
        return instance


def _freeze(key):
    return tuple(key) if isinstance(key, list) else key


def _unsafe_entries(tree):
    """The names of what a weights-only load would refuse: classes and functions not
    allowed, and pickled objects."""
    found = []
    stack = [tree]
    while stack:  # depth first, in the file's order
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif isinstance(item, dict) and len(item) == 1:
            (kind, value), = item.items()
            if kind == "$global" and value not in _SAFE_GLOBALS:
                found.append(str(value))
            elif kind == "$object" and isinstance(value, list) and len(value) == 3:
                if value[0] not in _SAFE_GLOBALS:
                    found.append(str(value[0]))
                stack.append(value[2])
            elif kind == "$pickle" and isinstance(value, list) and len(value) == 2:
                found.append(f"{value[1]} (pickled)")
            elif isinstance(value, list):
                stack.extend(reversed(value))
    return list(dict.fromkeys(found))


def _weights_only_message(path, names):
    allowable = [n for n in names if not n.endswith("(pickled)")]
    short = [n.split(":", 1)[1].rsplit(".", 1)[-1] for n in allowable]
    text = (f"{path}: weights only load failed: the file holds whole objects "
            f"({', '.join(names)}) that nr.load(path) (weights_only=True, the default, as "
            "in PyTorch >= 2.6) does not rebuild, since rebuilding them runs code that the "
            "file names. Either\n"
            "  * save the state instead, nr.save(model.state_dict(), path), and load it "
            "into a model your code builds: model.load_state_dict(nr.load(path));\n"
            "  * or, only if you trust the source of the file, "
            "nr.load(path, weights_only=False)")
    if allowable and len(allowable) == len(names):
        text += (";\n  * or allow these classes and functions: "
                 f"nr.serialization.add_safe_globals([{', '.join(short)}]) (or within "
                 f"`with nr.serialization.safe_globals([...]):`), names {allowable}")
    return text + "."


# ---------------------------------------------------------------- save and load
def save(obj, f):
    """Write ``obj`` to ``f`` (a path, written atomically, or a binary file object): a
    state dict or any tree of data as version 1; whole objects (``nr.save(model,
    path)``) as version 2 (see the module's docstring). A new file gets the permissions
    that ``open(path, "wb")`` would give it: those of the file it replaces, or 0o666 less
    the umask."""
    encoder = _Encoder(objects=_holds_whole_objects(obj))
    # refuses what it cannot save before any file is touched
    tree = encoder.encode(obj)
    version = VERSION if encoder.objects else _DATA_VERSION
    header = json.dumps({"format": FORMAT, "version": version, "tree": tree}, allow_nan=False)
    members = {_HEADER: np.frombuffer(header.encode("utf-8"), dtype=np.uint8)}
    members.update((f"a{k}", a) for k, a in enumerate(encoder.arrays))
    if hasattr(f, "write"):
        buffer = io.BytesIO()
        np.savez(buffer, **members)
        f.write(buffer.getvalue())
        return
    path = os.fspath(f)
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = _create_temporary(folder, os.path.basename(path))
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **members)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.chmod(temporary, stat.S_IMODE(os.stat(path).st_mode))
        except FileNotFoundError:
            pass  # a new file keeps the mode it was created with
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    _fsync_folder(folder)  # the rename itself is durable once the folder is


def _create_temporary(folder, name):
    """(descriptor, path) of a new, empty file beside ``name`` in ``folder``, created
    with mode 0o666 less the umask, as ``open()`` creates files (``tempfile.mkstemp``
    would make it 0o600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        temporary = os.path.join(folder, f".{name}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:
            continue


def _fsync_folder(folder):
    """Flush ``folder``'s entries (the rename) to disk, where the platform can."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # folders cannot be opened on this platform (Windows)
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some file systems refuse to sync a folder; the data itself is synced
    finally:
        os.close(descriptor)


def load(f, map_location=None, *, weights_only=True, mmap=None):
    """Read what ``save`` wrote, from a path or a binary file object: arrays come back as
    NumPy arrays, Tensors as Tensors on the device, so a state dict goes straight into
    ``load_state_dict``.

    ``weights_only=True`` (the default; None means it too): data only, and classes and
    functions allowed with ``nr.serialization.add_safe_globals``; a file holding anything
    else (a whole model saved with ``nr.save(model, path)``) raises ``WeightsOnlyError``
    and nothing from the file is imported, unpickled or run. ``weights_only=False``
    trusts the file: its classes are imported and its pickled entries unpickled.
    ``map_location`` is accepted and ignored: numba_rnn has one device. ``mmap`` must be
    None or False."""
    if weights_only is None:
        weights_only = True
    if not isinstance(weights_only, (bool, np.bool_)):
        raise TypeError(f"weights_only: expected True or False, got {weights_only!r}")
    if mmap:
        raise ValueError("mmap: numba_rnn checkpoints are read whole; pass mmap=None")
    if hasattr(f, "read"):
        path = getattr(f, "name", "<file object>")
        data = f.read()
    else:
        path = os.fspath(f)
        with open(path, "rb") as file:
            data = file.read()
    if not zipfile.is_zipfile(io.BytesIO(data)):
        raise CheckpointError(f"{path}: not a numba_rnn checkpoint (not a ZIP archive: "
                              "truncated, or another format)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            if _HEADER not in archive.files:
                raise CheckpointError(f"{path}: not a numba_rnn checkpoint (a ZIP archive "
                                      f"without the {_HEADER} header)")
            header = json.loads(archive[_HEADER].tobytes().decode("utf-8"))
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise CheckpointError(f"{path}: not a numba_rnn checkpoint (format "
                                      f"{header.get('format') if isinstance(header, dict) else None!r})")
            if not isinstance(header.get("version"), int) or header["version"] > VERSION:
                raise CheckpointError(f"{path}: checkpoint format version {header.get('version')!r}"
                                      f" is newer than this numba_rnn reads ({VERSION})")
            arrays = {int(name[1:]): archive[name] for name in archive.files if name != _HEADER}
    except CheckpointError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: damaged numba_rnn checkpoint ({type(exc).__name__}: "
                              f"{exc})") from None
    if weights_only:
        refused = _unsafe_entries(header["tree"])
        if refused:
            raise WeightsOnlyError(_weights_only_message(path, refused))
    try:
        return _Decoder(arrays, bool(weights_only), path).decode(header["tree"])
    except (KeyError, TypeError, ValueError, struct.error) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path}: damaged numba_rnn checkpoint (the header names an "
                              f"entry that is not there, or a malformed one: {exc})") from None
