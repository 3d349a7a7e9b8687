"""Packed sequences (nr.nn.utils.rnn) and their use by the recurrent layers, checked
against torch.nn.utils.rnn and torch.nn.LSTM/GRU/RNN in float64, values and every
gradient; and nr.utils.data (datasets, samplers, DataLoader, default_collate) against
torch.utils.data."""
from collections import namedtuple

import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn.nn.utils import rnn as nrnn
from numba_rnn.testing import assert_close
from numba_rnn.utils import data as ndata
from oracles import import_torch

torch = import_torch()  # every test here holds numba_rnn against PyTorch: skip without it
from torch.nn.utils import rnn as trnn  # noqa: E402
from torch.utils import data as tdata  # noqa: E402

F64 = "float64"


def leaf(array):
    return (nr.tensor(array, dtype=F64, requires_grad=True),
            torch.tensor(array, dtype=torch.float64, requires_grad=True))


def as_numpy(t):
    return t.numpy() if isinstance(t, nr.Tensor) else t.detach().numpy()


# ------------------------------------------------------------------ packing
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("enforce_sorted,lengths", [(True, [4, 2, 1]), (False, [2, 4, 1]),
                                                    (False, [3, 1, 3])])
@pytest.mark.parametrize("kind", ["list", "tensor", "torch", "ndarray"])
def test_pack_and_pad_match_torch_with_gradients(rng, batch_first, enforce_sorted, lengths,
                                                 kind):
    T, B = 4, 3
    x = rng.standard_normal((B, T, 2) if batch_first else (T, B, 2))
    given = {"list": lengths, "tensor": nr.tensor(lengths), "torch": torch.tensor(lengths),
             "ndarray": np.array(lengths)}[kind]
    xn, xt = leaf(x)
    packed = nrnn.pack_padded_sequence(xn, given, batch_first=batch_first,
                                       enforce_sorted=enforce_sorted)
    tpacked = trnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first=batch_first,
                                        enforce_sorted=enforce_sorted)
    assert isinstance(packed, nrnn.PackedSequence) and isinstance(packed, tuple)
    assert packed._fields == ("data", "batch_sizes", "sorted_indices", "unsorted_indices")
    np.testing.assert_array_equal(packed.data.numpy(), as_numpy(tpacked.data))
    assert packed.batch_sizes.dtype == np.int64 and isinstance(packed.batch_sizes._array, np.ndarray)
    np.testing.assert_array_equal(packed.batch_sizes.numpy(), tpacked.batch_sizes.numpy())
    for name in ("sorted_indices", "unsorted_indices"):
        mine, theirs = getattr(packed, name), getattr(tpacked, name)
        assert (mine is None) == (theirs is None)
        if mine is not None:
            assert mine.dtype == np.int64
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
    padded, out_lengths = nrnn.pad_packed_sequence(packed, batch_first=batch_first,
                                                   padding_value=-2.5, total_length=5)
    tpadded, tlengths = trnn.pad_packed_sequence(tpacked, batch_first=batch_first,
                                                 padding_value=-2.5, total_length=5)
    np.testing.assert_array_equal(padded.numpy(), as_numpy(tpadded))
    assert out_lengths.dtype == np.int64
    np.testing.assert_array_equal(out_lengths.numpy(), tlengths.numpy())
    upstream = rng.standard_normal(padded.shape)
    (padded * upstream).sum().backward()
    (tpadded * torch.tensor(upstream)).sum().backward()
    assert_close(xn.grad, xt.grad, F64, "d input")


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_pad_sequence_and_pack_sequence_match_torch(rng, batch_first, padding_side):
    arrays = [rng.standard_normal((n, 2)) for n in (2, 4, 1)]
    pairs = [leaf(a) for a in arrays]
    padded = nrnn.pad_sequence([p[0] for p in pairs], batch_first=batch_first,
                               padding_value=7.0, padding_side=padding_side)
    tpadded = trnn.pad_sequence([p[1] for p in pairs], batch_first=batch_first,
                                padding_value=7.0, padding_side=padding_side)
    np.testing.assert_array_equal(padded.numpy(), as_numpy(tpadded))
    upstream = rng.standard_normal(padded.shape)
    (padded * upstream).sum().backward()
    (tpadded * torch.tensor(upstream)).sum().backward()
    for (mine, theirs) in pairs:
        assert_close(mine.grad, theirs.grad, F64, "d sequence")

    packed = nrnn.pack_sequence([p[0] for p in pairs], enforce_sorted=False)
    tpacked = trnn.pack_sequence([p[1] for p in pairs], enforce_sorted=False)
    np.testing.assert_array_equal(packed.data.numpy(), as_numpy(tpacked.data))
    for mine, original in zip(nrnn.unpack_sequence(packed), arrays):
        np.testing.assert_array_equal(mine.numpy(), original)
    lengths = nr.tensor([2, 4, 1])
    for mine, original in zip(nrnn.unpad_sequence(padded if padding_side == "right" else
                                                  nrnn.pad_sequence([p[0] for p in pairs],
                                                                    batch_first=batch_first),
                                                  lengths, batch_first=batch_first), arrays):
        np.testing.assert_array_equal(mine.numpy(), original)


def test_packed_sequence_constructor_and_conversions():
    data = nr.tensor(np.arange(10.0).reshape(5, 2))
    packed = nrnn.PackedSequence(data, [2, 2, 1], [1, 0])
    np.testing.assert_array_equal(packed.unsorted_indices.numpy(), [1, 0])
    again = nrnn.PackedSequence((data, nr.tensor([2, 2, 1])))
    assert again.sorted_indices is None and again.unsorted_indices is None
    assert packed.to("cuda") is packed and packed.cpu() is packed
    as32 = packed.float()
    assert as32.data.dtype == np.float32 and as32.batch_sizes is packed.batch_sizes
    padded, lengths = nrnn.pad_packed_sequence(packed, batch_first=True)
    np.testing.assert_array_equal(lengths.numpy(), [2, 3])
    np.testing.assert_array_equal(padded.numpy()[1], [[0, 1], [4, 5], [8, 9]])


def test_packing_refuses_what_torch_refuses():
    x = nr.tensor(np.zeros((3, 2, 1)))
    with pytest.raises(RuntimeError, match="must be sorted in decreasing order.*enforce_sorted"):
        nrnn.pack_padded_sequence(x, [1, 3])
    with pytest.raises(ValueError, match="must be sorted"):  # also a ValueError, as bad input is
        nrnn.pack_padded_sequence(x, [1, 3])
    with pytest.raises(RuntimeError, match="greater than 0"):
        nrnn.pack_padded_sequence(x, [0, 3], enforce_sorted=False)
    with pytest.raises(RuntimeError, match=r"len\(lengths\)` to be equal to batch_size, but got 3"):
        nrnn.pack_padded_sequence(x, [3, 2, 1])
    with pytest.raises(ValueError, match="at most 3"):
        nrnn.pack_padded_sequence(x, [4, 3])
    with pytest.raises(TypeError, match="lengths: .*integers"):
        nrnn.pack_padded_sequence(x, [2.5, 1])
    packed = nrnn.pack_padded_sequence(x, [3, 2])
    with pytest.raises(ValueError, match="total_length=2 and max sequence length being 3"):
        nrnn.pad_packed_sequence(packed, total_length=2)
    with pytest.raises(TypeError, match="PackedSequence"):
        nrnn.pad_packed_sequence(x)
    with pytest.raises(ValueError, match="sequences: expected every sequence"):
        nrnn.pad_sequence([nr.tensor(np.zeros((2, 3))), nr.tensor(np.zeros((2, 4)))])


# ------------------------------------------------------------ recurrent layers
LAYERS = {"lstm": (nr.LSTM, torch.nn.LSTM), "gru": (nr.GRU, torch.nn.GRU),
          "rnn": (nr.RNN, torch.nn.RNN)}
CASES = [  # mode, enforce_sorted, batch_first, bidirectional, num_layers, hx given, lengths
    ("lstm", True, False, False, 1, True, [4, 2, 1]),
    ("lstm", False, True, True, 2, True, [2, 4, 1]),
    ("lstm", False, False, True, 1, False, [3, 1, 3]),
    ("gru", False, False, True, 2, False, [3, 1, 4]),
    ("gru", True, True, False, 2, True, [4, 4, 2]),
    ("gru", False, True, True, 1, True, [1, 4, 1]),
    ("rnn", False, False, False, 1, True, [1, 3, 2]),
]


@pytest.mark.parametrize("mode,enforce_sorted,batch_first,bidirectional,num_layers,with_hx,"
                         "lengths", CASES)
def test_layers_on_packed_sequences_match_torch(rng, mode, enforce_sorted, batch_first,
                                                bidirectional, num_layers, with_hx, lengths):
    T, B, I, H = 4, 3, 2, 3
    ours, theirs = LAYERS[mode]
    layer = ours(I, H, num_layers=num_layers, batch_first=batch_first,
                 bidirectional=bidirectional, dtype=F64)
    reference = theirs(I, H, num_layers=num_layers, batch_first=batch_first,
                       bidirectional=bidirectional, dtype=torch.float64)
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    D = 2 if bidirectional else 1
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    xn, xt = leaf(x)
    states = [leaf(rng.standard_normal((num_layers * D, B, H)))
              for _ in range(2 if mode == "lstm" else 1)]

    def hx(k):
        if not with_hx:
            return None
        return tuple(s[k] for s in states) if mode == "lstm" else states[0][k]

    packed = nrnn.pack_padded_sequence(xn, lengths, batch_first=batch_first,
                                       enforce_sorted=enforce_sorted)
    tpacked = trnn.pack_padded_sequence(xt, lengths, batch_first=batch_first,
                                        enforce_sorted=enforce_sorted)
    output, finals = layer(packed, hx(0))
    toutput, tfinals = reference(tpacked, hx(1))
    finals = finals if mode == "lstm" else (finals,)
    tfinals = tfinals if mode == "lstm" else (tfinals,)

    assert isinstance(output, nrnn.PackedSequence)
    assert output.batch_sizes is packed.batch_sizes
    assert output.sorted_indices is packed.sorted_indices
    np.testing.assert_array_equal(output.batch_sizes.numpy(), toutput.batch_sizes.numpy())
    # compared unpacked: with equal lengths the order within the packed data is the sort's
    padded = nrnn.pad_packed_sequence(output, batch_first=batch_first)[0]
    tpadded = trnn.pad_packed_sequence(toutput, batch_first=batch_first)[0]
    assert_close(padded, tpadded, F64, "output")
    if len(set(lengths)) == len(lengths):
        assert_close(output.data, toutput.data, F64, "output.data")
    for name, mine, expected in zip(("h_n", "c_n"), finals, tfinals):
        assert_close(mine, expected, F64, name)
    # the same numbers as the padded input with lengths=
    if not batch_first:
        direct, _ = layer(xn, hx(0), lengths=lengths)
        assert_close(padded, direct[: padded.shape[0]], F64, "packed vs lengths=")

    upstream = rng.standard_normal(padded.shape)
    loss = (padded * upstream).sum()
    tloss = (tpadded * torch.tensor(upstream)).sum()
    for mine, expected in zip(finals, tfinals):
        weights = rng.standard_normal(mine.shape)
        loss = loss + (mine * weights).sum()
        tloss = tloss + (expected * torch.tensor(weights)).sum()
    loss.backward()
    tloss.backward()
    assert_close(xn.grad, xt.grad, F64, "d input")
    if with_hx:
        for name, (mine, expected) in zip(("d h_0", "d c_0"), states):
            assert_close(mine.grad, expected.grad, F64, name)
    named = dict(layer.named_parameters())
    for name, param in reference.named_parameters():
        assert_close(named[name].grad, param.grad, F64, "d " + name)


def test_layers_refuse_malformed_packed_input():
    lstm = nr.LSTM(2, 3, dtype=F64)
    packed = nrnn.pack_padded_sequence(nr.tensor(np.zeros((3, 2, 2))), [3, 2])
    with pytest.raises(ValueError, match="lengths: a PackedSequence carries"):
        lstm(packed, lengths=[3, 2])
    with pytest.raises(TypeError, match="input: expected dtype float64"):
        lstm(packed.float())
    wide = nrnn.pack_padded_sequence(nr.tensor(np.zeros((3, 2, 5))), [3, 2])
    with pytest.raises(ValueError, match=r"input: expected PackedSequence data of shape \(N, 2\)"):
        lstm(wide)
    with pytest.raises(ValueError, match="h_0"):
        lstm(packed, (nr.tensor(np.zeros((1, 3))), nr.tensor(np.zeros((1, 3)))))
    assert lstm.flatten_parameters() is None


# ------------------------------------------------------------------- data
def test_default_collate_matches_torch():
    Pair = namedtuple("Pair", ["a", "b"])
    samples = [
        [1.5, 2.5], [1, 2], [True, False], [np.float32(1), np.float32(2)],
        [np.int16(3), np.int16(4)], [np.zeros((2, 3)), np.ones((2, 3))],
        [np.zeros(2, np.float32), np.ones(2, np.float32)],
        [("a", 1), ("b", 2)], [{"x": 1.0, "y": [1, 2]}, {"x": 2.0, "y": [3, 4]}],
        [Pair(1, 2.0), Pair(3, 4.0)], [torch.zeros(2), torch.ones(2)],
    ]

    def same(mine, theirs):
        if isinstance(theirs, torch.Tensor):
            assert isinstance(mine, nr.Tensor), (mine, theirs)
            assert mine.dtype == np.dtype(str(theirs.dtype).split(".")[1]), (mine, theirs)
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
        elif isinstance(theirs, dict):
            assert type(mine) is type(theirs) and list(mine) == list(theirs)
            for key in theirs:
                same(mine[key], theirs[key])
        elif isinstance(theirs, (list, tuple)):
            assert type(mine) is type(theirs) and len(mine) == len(theirs)
            for a, b in zip(mine, theirs):
                same(a, b)
        else:
            assert mine == theirs

    for batch in samples:
        same(ndata.default_collate(batch), tdata.default_collate(batch))
    batch = [nr.tensor([1.0, 2.0]), nr.tensor([3.0, 4.0])]
    np.testing.assert_array_equal(ndata.default_collate(batch).numpy(), [[1, 2], [3, 4]])
    with pytest.raises(RuntimeError, match="stack expects each tensor to be equal size"):
        ndata.default_collate([nr.tensor([1.0]), nr.tensor([1.0, 2.0])])
    with pytest.raises(RuntimeError, match="each element in list of batch should be of equal size"):
        ndata.default_collate([[1, 2], [1]])
    with pytest.raises(TypeError, match="default_collate: batch must contain"):
        ndata.default_collate([object(), object()])


def test_collate_passes_gradients_to_the_samples():
    leaves = [nr.tensor([1.0, 2.0], requires_grad=True), nr.tensor([3.0, 4.0], requires_grad=True)]
    (ndata.default_collate(leaves) * nr.tensor([[1.0, 2.0], [3.0, 4.0]])).sum().backward()
    np.testing.assert_array_equal(leaves[1].grad.numpy(), [3.0, 4.0])


def make_dataset(n=10):
    x = np.arange(2 * n, dtype=np.float32).reshape(n, 2)
    return x, np.arange(n), ndata.TensorDataset(nr.tensor(x), nr.tensor(np.arange(n)))


def test_data_loader_batches_as_torch():
    x, y, dataset = make_dataset()
    reference = tdata.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    for kwargs in ({"batch_size": 4}, {"batch_size": 4, "drop_last": True}, {"batch_size": 1},
                   {"batch_size": None}, {"batch_size": 3, "collate_fn": lambda b: len(b)}):
        mine = ndata.DataLoader(dataset, **kwargs)
        theirs = tdata.DataLoader(reference, **kwargs)
        assert len(mine) == len(theirs)
        batches, tbatches = list(mine), list(theirs)
        assert len(batches) == len(tbatches)
        for a, b in zip(batches, tbatches):
            if isinstance(b, int):
                assert a == b
                continue
            assert isinstance(a, list) and len(a) == 2
            for mine_part, their_part in zip(a, b):
                np.testing.assert_array_equal(mine_part.numpy(), their_part.numpy())
                assert mine_part.dtype == np.dtype(str(their_part.dtype).split(".")[1])
    assert len(dataset) == 10 and len(ndata.DataLoader(dataset, batch_size=3, drop_last=True)) == 3


def test_shuffling_is_reproducible_from_manual_seed():
    _, _, dataset = make_dataset()
    loader = ndata.DataLoader(dataset, batch_size=4, shuffle=True)

    def epoch():
        return np.concatenate([batch[1].numpy() for batch in loader]).tolist()

    nr.manual_seed(7)
    first, second = epoch(), epoch()
    nr.manual_seed(7)
    assert epoch() == first and epoch() == second
    assert sorted(first) == list(range(10)) and first != second
    own = ndata.DataLoader(dataset, batch_size=10, shuffle=True,
                           generator=np.random.default_rng(3))
    assert next(iter(own))[1].numpy().tolist() == np.random.default_rng(3).permutation(10).tolist()
    with pytest.raises(TypeError, match="generator"):
        ndata.DataLoader(dataset, shuffle=True, generator=42)


def test_samplers_subsets_and_splits():
    _, _, dataset = make_dataset()
    nr.manual_seed(1)
    parts = ndata.random_split(dataset, [0.3, 0.7])
    assert [len(p) for p in parts] == [3, 7]
    indices = sorted(parts[0].indices + parts[1].indices)
    assert indices == list(range(10))
    nr.manual_seed(1)
    assert ndata.random_split(dataset, [3, 7])[0].indices == parts[0].indices
    with pytest.raises(ValueError, match="Sum of input lengths"):
        ndata.random_split(dataset, [3, 3])
    subset = ndata.Subset(dataset, [4, 2])
    assert subset[1][1].item() == 2 and len(subset) == 2
    both = dataset + subset
    assert len(both) == 12 and both[11][1].item() == 2 and both[-1][1].item() == 2
    sampler = ndata.RandomSampler(dataset, replacement=True, num_samples=25)
    drawn = list(sampler)
    assert len(drawn) == len(sampler) == 25 and all(0 <= i < 10 for i in drawn)
    assert len(list(ndata.RandomSampler(dataset, num_samples=13))) == 13
    batches = list(ndata.BatchSampler(ndata.SequentialSampler(dataset), 4, False))
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    loader = ndata.DataLoader(dataset, batch_sampler=[[9, 0], [5]])
    assert [b[1].numpy().tolist() for b in loader] == [[9, 0], [5]]


def test_loader_options_refused_as_torch():
    _, _, dataset = make_dataset()
    sampler = ndata.SequentialSampler(dataset)
    with pytest.raises(ValueError, match="sampler option is mutually exclusive with shuffle"):
        ndata.DataLoader(dataset, sampler=sampler, shuffle=True)
    with pytest.raises(ValueError, match="batch_sampler option is mutually exclusive"):
        ndata.DataLoader(dataset, batch_size=2, batch_sampler=[[0]])
    with pytest.raises(ValueError, match="drop_last"):
        ndata.DataLoader(dataset, batch_size=None, drop_last=True)
    with pytest.raises(ValueError, match="batch_size should be a positive integer"):
        ndata.DataLoader(dataset, batch_size=0)
    with pytest.raises(ValueError, match="num_workers"):
        ndata.DataLoader(dataset, num_workers=-1)
    with pytest.raises(ValueError, match="Size mismatch"):
        ndata.TensorDataset(nr.tensor([1.0, 2.0]), nr.tensor([1.0]))
    # worker processes are not used, but the option is accepted
    assert len(list(ndata.DataLoader(dataset, batch_size=5, num_workers=2))) == 2


class Stream(ndata.IterableDataset):
    def __iter__(self):
        return iter(range(7))

    def __len__(self):
        return 7


def test_iterable_datasets_are_batched():
    batches = [b.numpy().tolist() for b in ndata.DataLoader(Stream(), batch_size=3)]
    assert batches == [[0, 1, 2], [3, 4, 5], [6]]
    assert len(ndata.DataLoader(Stream(), batch_size=3, drop_last=True)) == 2
    with pytest.raises(ValueError, match="IterableDataset"):
        ndata.DataLoader(Stream(), shuffle=True)


def test_packed_batches_from_a_loader_train_a_layer():
    """The usual PyTorch loop: variable-length sequences padded by a collate_fn, packed,
    run, and a gradient step."""
    rng = np.random.default_rng(0)
    sequences = [rng.standard_normal((n, 2)) for n in (3, 1, 2, 4)]

    def collate(batch):
        lengths = [len(s) for s in batch]
        return nrnn.pad_sequence([nr.tensor(s, dtype=F64) for s in batch], batch_first=True), lengths

    nr.manual_seed(0)
    gru = nr.GRU(2, 3, batch_first=True, dtype=F64)
    optimizer = nr.optim.SGD(gru.parameters(), lr=0.1)
    before = gru.weight_hh_l0.numpy()
    for padded, lengths in ndata.DataLoader(sequences, batch_size=2, shuffle=True,
                                            collate_fn=collate):
        packed = nrnn.pack_padded_sequence(padded, lengths, batch_first=True,
                                           enforce_sorted=False)
        output, h_n = gru(packed)
        optimizer.zero_grad()
        (h_n * h_n).sum().backward()
        optimizer.step()
    assert not np.allclose(gru.weight_hh_l0.numpy(), before)
