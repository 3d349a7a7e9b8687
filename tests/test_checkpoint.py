"""nr.save / nr.load: bit-exact round trips (non-finite floats too), refusal of truncated,
foreign and newer files, atomic and durable writes that never leave a half file under the
real name, and the permissions an ordinary open() gives."""
import json
import math
import os
import stat
import struct
import zipfile

import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn import checkpoint


def trained_model_and_optimizer():
    nr.manual_seed(0)
    model = nr.nn.Sequential(nr.nn.Embedding(7, 4), nr.nn.Linear(4, 3, dtype="float32"))
    lstm = nr.LSTM(3, 5, num_layers=2, dtype="float64")
    opt = nr.optim.AdamW(model.parameters(), lr=0.01)
    loss = nr.nn.functional.cross_entropy(model(np.array([1, 2, 6])), np.array([0, 2, 1]))
    loss.backward()
    opt.step()
    return model, lstm, opt


def test_round_trip_is_bit_exact(tmp_path):
    model, lstm, opt = trained_model_and_optimizer()
    obj = {"model": model.state_dict(), "lstm": lstm.state_dict(), "optimizer": opt.state_dict(),
           "epoch": 3, "loss": 0.1 + 0.2, "nan": float("nan"), "note": "ok", "none": None,
           "pair": (1, [2.5, True]), "scalar": np.float32(1.5), "tensor": nr.tensor([1.0, 2.0])}
    path = tmp_path / "model.npz"
    nr.save(obj, path)
    back = nr.load(path)
    assert list(back) == list(obj)
    for section in ("model", "lstm"):
        assert list(back[section]) == list(obj[section])
        for name, value in obj[section].items():
            assert back[section][name].dtype == value.dtype
            np.testing.assert_array_equal(back[section][name], value)
    assert list(back["optimizer"]["state"]) == [0, 1, 2]  # int keys stay ints
    for k, entry in obj["optimizer"]["state"].items():
        for key, value in entry.items():
            np.testing.assert_array_equal(back["optimizer"]["state"][k][key], value)
    assert back["optimizer"]["param_groups"] == obj["optimizer"]["param_groups"]
    assert back["epoch"] == 3 and back["loss"] == 0.1 + 0.2 and np.isnan(back["nan"])
    assert back["pair"] == (1, [2.5, True]) and back["note"] == "ok" and back["none"] is None
    assert back["scalar"] == np.float32(1.5) and back["scalar"].dtype == np.float32
    assert isinstance(back["tensor"], nr.Tensor)
    np.testing.assert_array_equal(back["tensor"].numpy(), [1.0, 2.0])
    fresh = nr.LSTM(3, 5, num_layers=2, dtype="float64")
    fresh.load_state_dict(back["lstm"])
    for name, value in fresh.state_dict().items():
        np.testing.assert_array_equal(value, obj["lstm"][name])


def test_the_format_is_a_documented_npz(tmp_path):
    path = tmp_path / "m.ckpt"  # any name: nothing is appended
    nr.save({"w": np.arange(3.0)}, path)
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(archive["__numba_rnn__"].tobytes())
        assert header["format"] == "numba_rnn.checkpoint" and header["version"] == 1
        assert header["tree"] == {"$dict": [["w", {"$array": 0}]]}
        np.testing.assert_array_equal(archive["a0"], np.arange(3.0))


def _good_file(tmp_path):
    model, _, opt = trained_model_and_optimizer()
    path = tmp_path / "good.npz"
    nr.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, path)
    return path


@pytest.mark.parametrize("cut", [0.5, 0.9, 0.99])
def test_truncated_file_is_refused(tmp_path, cut):
    data = _good_file(tmp_path).read_bytes()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(checkpoint.CheckpointError, match="truncated.npz: not a numba_rnn checkpoint"):
        nr.load(bad)


def test_corrupted_member_is_refused(tmp_path):
    path = _good_file(tmp_path)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("a0.npy")
    offset = info.header_offset + 30 + len(info.filename) + 200  # inside the member's data
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        nr.load(path)


def test_foreign_files_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    plain = tmp_path / "plain.npz"
    np.savez(plain, weight=np.zeros(3))
    newer = tmp_path / "newer.npz"
    header = json.dumps({"format": "numba_rnn.checkpoint", "version": 99, "tree": None})
    np.savez(newer, __numba_rnn__=np.frombuffer(header.encode(), np.uint8))
    for path, words in ((text, "not a ZIP"), (plain, "without the __numba_rnn__ header"),
                        (newer, "version 99 is newer")):
        with pytest.raises(ValueError, match=words):
            nr.load(path)


def test_a_crash_mid_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = _good_file(tmp_path)
    before = path.read_bytes()

    def crash(file, **members):
        file.write(b"PK\x03\x04 half an archive")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(checkpoint.np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        nr.save({"w": np.zeros(3)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["good.npz"]  # no temporary left behind
    monkeypatch.undo()
    assert set(nr.load(path)) == {"model", "optimizer"}


def test_unsupported_objects_are_refused_before_writing(tmp_path):
    path = _good_file(tmp_path)
    before = path.read_bytes()
    with pytest.raises(TypeError, match="obj: expected .* got set"):
        nr.save({"bad": {1, 2}}, path)
    with pytest.raises(TypeError, match="dtype object"):
        nr.save({"bad": np.array([None])}, path)
    assert path.read_bytes() == before


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_new_files_get_the_permissions_open_gives(tmp_path, umask):
    previous = os.umask(umask)
    try:
        nr.save({"a": 1}, tmp_path / "ckpt.npz")
        with open(tmp_path / "plain", "wb"):
            pass
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "ckpt.npz") == _mode(tmp_path / "plain") == 0o666 & ~umask


def test_replacing_a_file_keeps_its_permissions(tmp_path):
    path = tmp_path / "ckpt.npz"
    nr.save({"a": 1}, path)
    os.chmod(path, 0o640)
    nr.save({"a": 2}, path)
    assert _mode(path) == 0o640 and nr.load(path) == {"a": 2}


def test_the_file_then_the_folder_are_synced(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.npz"
    synced = []
    real = os.fsync

    def spy(descriptor):
        synced.append((stat.S_ISDIR(os.fstat(descriptor).st_mode), path.exists()))
        real(descriptor)

    monkeypatch.setattr(os, "fsync", spy)
    nr.save({"a": 1}, path)
    # the data before the rename, the folder (holding the rename) after it
    assert synced == [(False, False), (True, True)]


def test_non_finite_floats_round_trip_bit_exactly_as_strict_json(tmp_path):
    def bits(value):
        return struct.pack(">d", value)

    payload_nan = struct.unpack(">d", bytes.fromhex("7ff8000000000123"))[0]
    negative_nan = struct.unpack(">d", bytes.fromhex("fff8000000000000"))[0]
    values = [math.inf, -math.inf, math.nan, payload_nan, negative_nan, -0.0, 1e-310, 0.1]
    obj = {"lr": math.nan, "values": values, "pair": (math.inf, 2)}
    path = tmp_path / "ckpt.npz"
    nr.save(obj, path)
    loaded = nr.load(path)
    assert [bits(v) for v in loaded["values"]] == [bits(v) for v in values]
    assert bits(loaded["lr"]) == bits(math.nan)
    assert bits(loaded["pair"][0]) == bits(math.inf) and loaded["pair"][1] == 2

    def refuse(constant):
        raise AssertionError(f"the header holds {constant}, which JSON does not have")

    with np.load(path, allow_pickle=False) as archive:
        json.loads(archive[checkpoint._HEADER].tobytes().decode("utf-8"), parse_constant=refuse)


# ------------------------------------------------------ whole objects, weights_only
import pickle  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from collections import OrderedDict  # noqa: E402

from numba_rnn import serialization  # noqa: E402


class Tagger(nr.nn.Module):
    """A model as PyTorch programs define them, saved whole with nr.save(model, path)."""

    def __init__(self):
        super().__init__()
        self.embed = nr.nn.Embedding(5, 2, dtype="float64")
        self.rnn = nr.GRU(2, 3, batch_first=True, dtype="float64")
        self.head = nr.nn.Linear(3, 2, dtype="float64")
        self.labels = ["noun", "verb"]
        self.register_buffer("scale", nr.tensor([2.0], dtype="float64"))

    def forward(self, tokens):
        out, _ = self.rnn(self.embed(tokens))
        return self.head(out) * self.scale


TAGGER_CLASSES = [Tagger, nr.nn.Embedding, nr.GRU, nr.nn.Linear]
TOKENS = np.array([[1, 2, 4], [0, 3, 3]])


def trained_tagger():
    nr.manual_seed(0)
    model = Tagger()
    opt = nr.optim.Adam(model.parameters(), lr=0.05)
    model(TOKENS).sum().backward()
    opt.step()
    return model, opt


def test_a_whole_model_is_refused_by_default_with_the_ways_out(tmp_path):
    model, _ = trained_tagger()
    path = tmp_path / "model.pt"
    nr.save(model, path)
    with pytest.raises(checkpoint.WeightsOnlyError) as caught:
        nr.load(path)
    error = caught.value
    assert isinstance(error, pickle.UnpicklingError) and isinstance(error, checkpoint.CheckpointError)
    assert isinstance(error, ValueError)
    text = str(error)
    for words in ("weights only load failed", "test_checkpoint:Tagger", "numba_rnn.nn.rnn:GRU",
                  "state_dict()", "weights_only=False", "add_safe_globals([Tagger, Embedding, "
                  "GRU, Linear])"):
        assert words in text
    with np.load(path, allow_pickle=False) as archive:  # still a plain npz, version 2
        header = json.loads(archive["__numba_rnn__"].tobytes())
    assert header["version"] == 2 and header["tree"]["$object"][0] == "test_checkpoint:Tagger"


def _same_model(back, model):
    assert type(back) is Tagger and back is not model
    np.testing.assert_array_equal(back(TOKENS).numpy(), model(TOKENS).numpy())
    assert back.labels == ["noun", "verb"] and back.training
    assert isinstance(back.rnn.weight_hh_l0, nr.nn.Parameter) and back.rnn.weight_hh_l0.requires_grad
    assert list(back.state_dict()) == list(model.state_dict())
    assert isinstance(back._parameters, OrderedDict) and "scale" in back._buffers


def test_a_whole_model_and_optimizer_load_with_weights_only_false(tmp_path):
    model, opt = trained_tagger()
    path = tmp_path / "all.pt"
    nr.save({"model": model, "optimizer": opt, "epoch": 3}, path)
    back = nr.load(path, weights_only=False, map_location="cpu")
    _same_model(back["model"], model)
    new_model, new_opt = back["model"], back["optimizer"]
    # the optimizer holds the loaded model's own parameters, and its Adam state
    assert new_opt.param_groups[0]["params"][0] is next(iter(new_model.parameters()))
    assert set(map(id, new_opt.state)) == set(map(id, new_model.parameters()))
    # training goes on exactly as it would have without the round trip
    for m, o in ((model, opt), (new_model, new_opt)):
        o.zero_grad()
        m(TOKENS).sum().backward()
        o.step()
    np.testing.assert_array_equal(new_model(TOKENS).numpy(), model(TOKENS).numpy())


def test_allowed_classes_load_with_the_default(tmp_path):
    model, _ = trained_tagger()
    path = tmp_path / "model.pt"
    nr.save(model, path)
    with serialization.safe_globals(TAGGER_CLASSES):
        _same_model(nr.load(path), model)
    assert serialization.get_safe_globals() == []
    with serialization.safe_globals(TAGGER_CLASSES[1:]):  # one class missing: refused
        with pytest.raises(checkpoint.WeightsOnlyError, match=r"\(test_checkpoint:Tagger\)"):
            nr.load(path)
    try:
        serialization.add_safe_globals(TAGGER_CLASSES)
        assert set(serialization.get_safe_globals()) == set(TAGGER_CLASSES)
        _same_model(nr.load(path), model)
    finally:
        serialization.clear_safe_globals()
    with pytest.raises(checkpoint.WeightsOnlyError):
        nr.load(path)


def _forged(path, tree, arrays=()):
    header = json.dumps({"format": "numba_rnn.checkpoint", "version": 2, "tree": tree})
    members = {"__numba_rnn__": np.frombuffer(header.encode(), np.uint8)}
    members.update((f"a{k}", a) for k, a in enumerate(arrays))
    with open(path, "wb") as file:  # np.savez would append .npz to a name
        np.savez(file, **members)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


def test_a_malicious_file_cannot_run_code_with_the_default(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    # 1. a pickle that runs code when unpickled
    evil = tmp_path / "evil.pt"
    blob = np.frombuffer(pickle.dumps(_Payload(marker)), np.uint8)
    _forged(evil, {"$dict": [["model", {"$pickle": [0, "builtins:exec"]}]]}, [blob])
    # 2. a class in a module whose import runs code, and a function to call
    (tmp_path / "evil_module.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\nclass Thing:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importer = tmp_path / "import.pt"
    _forged(importer, {"$object": ["evil_module:Thing", 0, {"$dict": []}]})
    caller = tmp_path / "call.pt"
    _forged(caller, {"$object": ["os:system", 0, {"$dict": []}]})
    loaded = []
    monkeypatch.setattr(checkpoint.pickle, "loads", lambda *a, **k: loaded.append(a))
    for path, name in ((evil, "builtins:exec (pickled)"), (importer, "evil_module:Thing"),
                       (caller, "os:system")):
        with pytest.raises(checkpoint.WeightsOnlyError, match=re.escape(name)):
            nr.load(path)
    assert not marker.exists() and not loaded and "evil_module" not in sys.modules
    # allowing a function does not make it a class to instantiate
    with serialization.safe_globals([(print, "os:system")]):
        with pytest.raises(checkpoint.CheckpointError, match="is not a class"):
            nr.load(caller)
    monkeypatch.undo()
    # what weights_only=False means: the file is trusted, and it ran
    monkeypatch.syspath_prepend(str(tmp_path))
    nr.load(evil, weights_only=False)
    assert marker.read_text() == "pwned"


def test_objects_that_reduce_themselves_are_pickled_and_need_weights_only_false(tmp_path):
    path = tmp_path / "rng.pt"
    obj = {"rng": np.random.default_rng(5), "data": {1, 2}, "raw": b"\x00\xff", "z": 1 + 2j,
           "dtype": np.dtype("float32"), "fn": np.add}
    nr.save(obj, path)
    with pytest.raises(checkpoint.WeightsOnlyError, match="numpy.random._generator:Generator \\(pickled\\)"):
        nr.load(path)
    back = nr.load(path, weights_only=False)
    assert back["rng"].random() == np.random.default_rng(5).random()
    assert back["data"] == {1, 2} and back["raw"] == b"\x00\xff" and back["z"] == 1 + 2j
    assert back["dtype"] == np.float32 and back["fn"] is np.add


def test_unsaveable_objects_are_refused_before_writing(tmp_path):
    path = _good_file(tmp_path)
    before = path.read_bytes()
    model, _ = trained_tagger()
    model.activation = lambda x: x
    with pytest.raises(TypeError, match="lambda"):
        nr.save(model, path)
    assert path.read_bytes() == before


def test_file_objects_and_shared_tensors(tmp_path):
    import io
    weight = nr.tensor([1.0, 2.0])
    buffer = io.BytesIO()
    nr.save({"a": weight, "b": weight, "sd": OrderedDict(w=np.ones(2))}, buffer)
    buffer.seek(0)
    back = nr.load(buffer)
    assert back["a"] is back["b"] and back["sd"] == {"w": back["sd"]["w"]}
    with np.load(io.BytesIO(buffer.getvalue())) as archive:
        assert json.loads(archive["__numba_rnn__"].tobytes())["version"] == 1
        assert archive.files == ["__numba_rnn__", "a0", "a1"]  # one array for both names
