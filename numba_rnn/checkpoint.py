"""``nr.save`` and ``nr.load``: module and optimizer state dicts (and any tree of dicts,
lists, tuples, numbers, strings, arrays and Tensors) in one file.

The file format, version 1, is an uncompressed ``.npz`` (a ZIP archive of ``.npy``
members, readable with ``numpy.load(path, allow_pickle=False)``):

* ``__numba_rnn__.npy``: a uint8 array holding UTF-8 JSON,
  ``{"format": "numba_rnn.checkpoint", "version": 1, "tree": ...}``, where ``tree`` is
  the saved object with JSON's own values as they are and, in their place,
  ``{"$array": k}`` (a NumPy array), ``{"$tensor": k}`` (a Tensor), ``{"$scalar": k}`` (a
  NumPy scalar), ``{"$float": "7ff8000000000000"}`` (a Python float that JSON cannot
  hold, NaN or ±Inf, as its 8 bytes big-endian in hex), ``{"$tuple": [...]}`` and
  ``{"$dict": [[key, value], ...]}`` (a dict, in order, with keys of any JSON-able type,
  such as an optimizer state's int keys); the JSON is strict (no NaN or Infinity);
* ``a{k}.npy``: the k-th array, in its own dtype, so a round trip is bit-exact.

Writing is atomic: the archive goes to a temporary file in the same folder, is flushed to
disk, and is then renamed over ``path``, after which the folder is flushed too; a crash
mid-write leaves any earlier file at ``path`` as it was. The file gets the permissions an
ordinary ``open()`` gives. Reading refuses, with a ``CheckpointError`` (a ``ValueError``), a
file that is not a ZIP archive (truncated, or another format), a ZIP without the header,
another format or a newer version, and a member whose checksum fails.
"""
import io
import json
import math
import numbers
import os
import secrets
import stat
import struct
import zipfile

import numpy as np

from . import backend
from .tensor import Tensor, _wrap

FORMAT = "numba_rnn.checkpoint"
VERSION = 1
_HEADER = "__numba_rnn__"


class CheckpointError(ValueError):
    """A file that ``nr.load`` refuses: not a numba_rnn checkpoint, or a damaged one."""


def _encode(obj, arrays):
    """The JSON tree of ``obj``; arrays are appended to ``arrays`` as host copies."""
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
        arrays.append(np.asarray(obj))
        return {"$scalar": len(arrays) - 1}
    if isinstance(obj, Tensor) or backend.is_device_array(obj) or isinstance(obj, np.ndarray):
        kind = "$tensor" if isinstance(obj, Tensor) else "$array"
        host = np.array(backend.to_host(obj._array if isinstance(obj, Tensor) else obj), copy=True)
        if host.dtype.hasobject:
            raise TypeError("obj: arrays of Python objects cannot be saved, got dtype object")
        arrays.append(host)
        return {kind: len(arrays) - 1}
    if isinstance(obj, dict):
        return {"$dict": [[_encode(k, arrays), _encode(v, arrays)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"$tuple": [_encode(v, arrays) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v, arrays) for v in obj]
    raise TypeError(f"obj: expected dicts, lists, tuples, numbers, strings, None, arrays or "
                    f"Tensors, got {type(obj).__name__}")


def _decode(tree, arrays):
    if isinstance(tree, list):
        return [_decode(v, arrays) for v in tree]
    if not isinstance(tree, dict):
        return tree
    (kind, value), = tree.items()
    if kind == "$array":
        return arrays[value]
    if kind == "$tensor":
        return _wrap(backend.to_device(arrays[value]))
    if kind == "$scalar":
        return arrays[value][()]
    if kind == "$float":
        return struct.unpack(">d", bytes.fromhex(value))[0]
    if kind == "$tuple":
        return tuple(_decode(v, arrays) for v in value)
    if kind == "$dict":
        return {_freeze(_decode(k, arrays)): _decode(v, arrays) for k, v in value}
    raise CheckpointError(f"checkpoint: unknown entry {kind!r} in the header")


def _freeze(key):
    return tuple(key) if isinstance(key, list) else key


def save(obj, path):
    """Write ``obj`` (a state dict, or a dict of them) to ``path`` atomically. The file
    gets the permissions that ``open(path, "wb")`` would give it: those of the file it
    replaces, or 0o666 less the umask for a new one."""
    path = os.fspath(path)
    arrays = []
    tree = _encode(obj, arrays)  # refuses what it cannot save before any file is touched
    header = json.dumps({"format": FORMAT, "version": VERSION, "tree": tree}, allow_nan=False)
    members = {_HEADER: np.frombuffer(header.encode("utf-8"), dtype=np.uint8)}
    members.update((f"a{k}", a) for k, a in enumerate(arrays))
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


def load(path):
    """Read what ``save`` wrote: arrays come back as NumPy arrays, Tensors as Tensors on
    the device, so the result goes straight into ``load_state_dict``."""
    path = os.fspath(path)
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
    try:
        return _decode(header["tree"], arrays)
    except (KeyError, TypeError, ValueError, struct.error) as exc:
        raise CheckpointError(f"{path}: damaged numba_rnn checkpoint (the header names an "
                              f"entry that is not there: {exc})") from None
