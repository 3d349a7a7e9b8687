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
