"""Dropout1d/2d/3d, AlphaDropout and FeatureAlphaDropout, modules and functions, against
PyTorch: eval and p=0 return the input, p=1 what PyTorch gives, the mask's channel
structure and scale, its statistics, alpha dropout's affine map to the bit, gradients
equal to mask·scale, reproducibility with nr.manual_seed, reprs, signatures, warnings and
bad input.

Masks come from different generators, so outputs are compared through their structure:
the keep mask is read back from each output (a dropped element is 0, or alpha dropout's
constant) and the rule is checked on our output and on PyTorch's alike."""
import inspect
import math
import warnings

import numpy as np
import pytest

import numba_rnn as nr
from numba_rnn.nn import functional as F
from oracles import import_torch
from test_bad_input import assert_refused

#: SELU's λα (ATen's Dropout.cpp ``alpha``); test_alpha_dropout_affine_map_is_torchs
#: shows that PyTorch's output obeys the formula with it.
SELU_SATURATION = 1.7580993408473766

FUNCTIONS = ["dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout",
             "feature_alpha_dropout"]
MODULES = {"dropout": "Dropout", "dropout1d": "Dropout1d", "dropout2d": "Dropout2d",
           "dropout3d": "Dropout3d", "alpha_dropout": "AlphaDropout",
           "feature_alpha_dropout": "FeatureAlphaDropout"}
ALPHA = {"alpha_dropout", "feature_alpha_dropout"}

#: (function, input shape, mask_dims): one mask draw per index of the leading mask_dims
#: dimensions, shared along the rest, as PyTorch 2.13 does (including the ranks it warns
#: about: dropout2d takes 3-D as (N, C, L); dropout3d takes any rank but 5 as unbatched).
STRUCTURE = [
    ("dropout1d", (8, 16, 5), 2), ("dropout1d", (32, 5), 1),
    ("dropout2d", (8, 16, 4, 3), 2), ("dropout2d", (8, 16, 5), 2), ("dropout2d", (8, 16), 2),
    ("dropout2d", (4, 8, 3, 2, 2), 2),
    ("dropout3d", (4, 8, 3, 2, 2), 2), ("dropout3d", (32, 3, 2, 2), 1),
    ("dropout3d", (32, 3, 2), 1), ("dropout3d", (32, 2, 1, 2, 1, 2), 1),
    ("feature_alpha_dropout", (8, 16, 3), 2), ("feature_alpha_dropout", (8, 16, 2, 2), 2),
    ("dropout", (8, 16, 3), 3), ("alpha_dropout", (8, 16, 3), 3),
]


#: A shape each function takes without a warning.
SHAPES = {"dropout1d": (4, 6, 3), "dropout2d": (4, 6, 3, 2)}


def _shape(name):
    return SHAPES.get(name, (4, 6, 3, 2, 2))


def _rng():
    return np.random.default_rng(2024)


def _functions(torch, name):
    return getattr(F, name), getattr(torch.nn.functional, name)


def _alpha_constants(p, dtype):
    """a, and alpha dropout's shift of a dropped and of a kept element, in ``dtype`` as
    ATen rounds them: b = (keep - 1)·λα·a + λα·a·p."""
    a = 1.0 / math.sqrt((SELU_SATURATION * SELU_SATURATION * p + 1) * (1 - p))
    t = np.dtype(dtype).type
    kept_shift = t(SELU_SATURATION * a * p)
    return t(a), -t(SELU_SATURATION * a) + kept_shift, kept_shift


def _keep_mask(name, y, p):
    """The keep mask read back from an output of ``name`` on an input without zeros."""
    if name in ALPHA:
        return y != _alpha_constants(p, y.dtype)[1]
    return y != 0


def _scale(name, p, dtype):
    """What a kept element is multiplied by: 1/(1-p), or alpha dropout's a."""
    if name in ALPHA:
        return _alpha_constants(p, dtype)[0]
    return np.dtype(dtype).type(1) / np.dtype(dtype).type(1 - p)


def _run_both(torch, name, x, p, training=True, **kwargs):
    """Our and PyTorch's outputs (NumPy) of ``name`` on ``x``, and their warnings; both
    generators seeded, so that the statistical checks are deterministic."""
    ours, theirs = _functions(torch, name)
    nr.manual_seed(0)
    torch.manual_seed(0)
    outputs, caught = [], []
    for f, wrap in ((ours, nr.tensor), (theirs, torch.from_numpy)):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            outputs.append(f(wrap(x.copy()), p, training, **kwargs).numpy())
        caught.append([str(m.message) for m in w])
    return outputs, caught


# ------------------------------------------------------------ identity and p = 1
@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_eval_mode_and_p0_return_the_input(name, dtype):
    torch = import_torch()
    x = _rng().standard_normal(_shape(name)).astype(dtype)
    for p, training in ((0.5, False), (0.0, True)):
        (ours, theirs), _ = _run_both(torch, name, x, p, training)
        np.testing.assert_array_equal(theirs, x)
        np.testing.assert_array_equal(ours, x)
        assert ours.dtype == x.dtype
    module = getattr(nr.nn, MODULES[name])(0.5)
    module.eval()
    np.testing.assert_array_equal(module(x).numpy(), x)
    assert module.train().training and not np.array_equal(module(x).numpy(), x)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_p1_gives_torchs_zeros(name):
    """PyTorch multiplies by zero at p = 1, alpha dropout too: zeros, -0 where x < 0."""
    torch = import_torch()
    x = _rng().standard_normal(_shape(name)).astype("float32")
    (ours, theirs), _ = _run_both(torch, name, x, 1.0)
    np.testing.assert_array_equal(theirs, 0)
    np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_array_equal(np.signbit(ours), np.signbit(theirs))


def test_training_defaults_and_signatures_are_torchs():
    """alpha_dropout and feature_alpha_dropout default to training=False, the others to
    True; names, order and defaults of every argument are PyTorch's."""
    torch = import_torch()
    for name in FUNCTIONS:
        ours, theirs = _functions(torch, name)
        ours_params = [(q.name, q.default) for q in inspect.signature(ours).parameters.values()]
        theirs_params = [(q.name, q.default) for q in inspect.signature(theirs).parameters.values()]
        assert ours_params == theirs_params, name
    x = np.ones((3, 4, 5), "float32")
    np.testing.assert_array_equal(F.alpha_dropout(x).numpy(), x)
    np.testing.assert_array_equal(F.feature_alpha_dropout(x).numpy(), x)
    assert not np.array_equal(F.dropout1d(x).numpy(), x)


def test_empty_input_is_returned():
    torch = import_torch()
    for name, shape in (("dropout1d", (0, 3)), ("feature_alpha_dropout", (0, 3)),
                        ("dropout2d", (2, 0, 3, 3))):
        (ours, theirs), _ = _run_both(torch, name, np.ones(shape, "float32"), 0.5)
        assert ours.shape == theirs.shape == shape


# ------------------------------------------------------------ structure and scale
@pytest.mark.parametrize("name,shape,mask_dims", STRUCTURE,
                         ids=[f"{n}-{len(s)}d" for n, s, _ in STRUCTURE])
def test_channel_structure_scale_and_warnings(name, shape, mask_dims):
    """Every channel all kept or all dropped, the kept ones scaled by 1/(1-p) (alpha: the
    affine map), distinct draws along the leading dims; the same rule holds for PyTorch's
    output, and the warnings are PyTorch's, word for word."""
    torch = import_torch()
    p = 0.4
    x = (_rng().uniform(0.5, 1.5, shape) * _rng().choice([-1, 1], shape)).astype("float32")
    outputs, (ours_warnings, theirs_warnings) = _run_both(torch, name, x, p)
    assert ours_warnings == theirs_warnings
    a, dropped, kept_shift = _alpha_constants(p, "float32")
    for y in outputs:
        keep = _keep_mask(name, y, p)
        channels = keep.reshape(shape[:mask_dims] + (-1,))
        assert np.all(channels == channels[..., :1]), "a channel partly kept"
        assert 0 < keep.mean() < 1 and len(np.unique(channels[..., 0])) == 2
        if name in ALPHA:
            expected = np.where(keep, x * a + kept_shift, dropped)
        else:
            expected = np.where(keep, x * _scale(name, p, "float32"), 0)
        np.testing.assert_array_equal(y, expected)


@pytest.mark.parametrize("name,shape", [("dropout", (400, 500)),
                                        ("dropout2d", (400, 500, 2, 2)),
                                        ("dropout1d", (500, 400, 3)),
                                        ("feature_alpha_dropout", (400, 500, 2))])
@pytest.mark.parametrize("p", [0.2, 0.7])
def test_kept_fraction(name, shape, p):
    """Over 200,000 draws the kept fraction is 1-p within 0.006 (5.8 standard errors or
    more: sqrt(p(1-p)/n) <= 0.00103), ours and PyTorch's."""
    torch = import_torch()
    x = np.ones(shape, "float32")
    for y in _run_both(torch, name, x, p)[0]:
        assert abs(_keep_mask(name, y, p).mean() - (1 - p)) < 0.006


@pytest.mark.parametrize("name", ["alpha_dropout", "feature_alpha_dropout"])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_alpha_dropout_keeps_mean_and_std(name, p):
    """On N(0, 1) input (400 × 1000 elements; feature: 400 × 250 channels of 4) the output
    has mean 0 and std 1 within 0.02 each, ours and PyTorch's: 7 standard errors or more
    (shared draws in a channel make the mean's error <= sqrt(0.71/100000) = 0.0027)."""
    torch = import_torch()
    x = _rng().standard_normal((400, 250, 4) if name.startswith("feature") else (400, 1000))
    for y in _run_both(torch, name, x.astype("float32"), p)[0]:
        assert abs(y.mean()) < 0.02 and abs(y.std() - 1) < 0.02, (y.mean(), y.std())


@pytest.mark.parametrize("name", ["alpha_dropout", "feature_alpha_dropout"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_alpha_dropout_affine_map_is_torchs(name, dtype):
    """For the mask read back from an output, the output is, to the bit, what ATen's ops
    give for that mask: noise = keep; b = (noise - 1)·λα·a + λα·a·p; y = x·(noise·a) + b.
    Checked on PyTorch's output too, which ties SELU_SATURATION to PyTorch."""
    torch = import_torch()
    p = 0.3
    a = 1.0 / math.sqrt((SELU_SATURATION * SELU_SATURATION * p + 1) * (1 - p))
    x = _rng().standard_normal((16, 8, 5)).astype(dtype)
    for y in _run_both(torch, name, x, p)[0]:
        noise = torch.from_numpy(_keep_mask(name, y, p).astype(dtype))
        b = noise.add(-1).mul_(SELU_SATURATION * a).add_(SELU_SATURATION * a * p)
        noise.mul_(a)
        np.testing.assert_array_equal(y, torch.from_numpy(x).mul(noise).add_(b).numpy())


# ------------------------------------------------------------------------ gradients
@pytest.mark.parametrize("name,shape", [("dropout", (6, 5, 4)), ("dropout1d", (6, 5, 4)),
                                        ("dropout1d", (5, 4)), ("dropout2d", (6, 5, 4, 3)),
                                        ("dropout3d", (6, 5, 4, 3, 2)),
                                        ("dropout3d", (5, 4, 3, 2)),
                                        ("alpha_dropout", (6, 5, 4)),
                                        ("feature_alpha_dropout", (6, 5, 4))])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gradient_is_mask_times_scale(name, shape, dtype):
    """d input = upstream · keep · (1/(1-p) or a), for the keep mask read back from the
    output, through nr's autograd; the same holds for PyTorch's."""
    torch = import_torch()
    rng, p = _rng(), 0.35
    x = (rng.uniform(0.5, 1.5, shape) * rng.choice([-1, 1], shape)).astype(dtype)
    upstream = rng.standard_normal(shape).astype(dtype)
    ours, theirs = _functions(torch, name)
    for f, wrap in ((ours, nr.tensor), (theirs, torch.tensor)):
        leaf = wrap(x, requires_grad=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            y = f(leaf, p, True)
        y.backward(wrap(upstream))
        keep = _keep_mask(name, y.detach().numpy(), p)
        expected = upstream * (keep.astype(dtype) * _scale(name, p, dtype))
        np.testing.assert_array_equal(leaf.grad.numpy(), expected)


def test_gradient_at_p1_is_zero():
    for name in FUNCTIONS:
        x = nr.tensor(np.ones(_shape(name), "float32"), requires_grad=True)
        getattr(F, name)(x, 1.0, True).sum().backward()
        np.testing.assert_array_equal(x.grad.numpy(), 0)


# ----------------------------------------------------------------- reproducibility
@pytest.mark.parametrize("name", FUNCTIONS)
def test_same_seed_same_mask(name):
    module = getattr(nr.nn, MODULES[name])(0.5)
    x = _rng().standard_normal(_shape(name)).astype("float32")

    def draw(seed):
        nr.manual_seed(seed)
        return module(x).numpy()

    first = draw(7)
    np.testing.assert_array_equal(draw(7), first)
    assert not np.array_equal(draw(8), first)
    nr.manual_seed(7)  # the function draws as its module does
    np.testing.assert_array_equal(getattr(F, name)(x, 0.5, True).numpy(), first)


def test_inplace_computes_out_of_place():
    """inplace=True is accepted: the same output as inplace=False, the input unchanged."""
    for name in FUNCTIONS:
        x = nr.tensor(np.ones(_shape(name), "float32"))
        nr.manual_seed(3)
        y = getattr(F, name)(x, 0.5, True, inplace=True)
        nr.manual_seed(3)
        np.testing.assert_array_equal(y.numpy(), getattr(F, name)(x, 0.5, True).numpy())
        np.testing.assert_array_equal(x.numpy(), 1)
        assert getattr(nr.nn, MODULES[name])(0.5, inplace=True).inplace


# ------------------------------------------------------------------------- modules
@pytest.mark.parametrize("name", FUNCTIONS)
def test_module_repr_is_torchs(name):
    torch = import_torch()
    for args in ((), (0.2,), (1,), (0.0, True)):
        ours = getattr(nr.nn, MODULES[name])(*args)
        theirs = getattr(torch.nn, MODULES[name])(*args)
        assert repr(ours) == repr(theirs)
        assert ours.p == theirs.p and ours.inplace == theirs.inplace
    assert repr(nr.nn.Sequential(nr.nn.Dropout2d(0.1))) == repr(
        torch.nn.Sequential(torch.nn.Dropout2d(0.1)))


# ----------------------------------------------------------------------- bad input
@pytest.mark.parametrize("name,shape", [("dropout1d", (2, 3, 4, 5)), ("dropout1d", (3,)),
                                        ("dropout1d", ())])
@pytest.mark.parametrize("training", [True, False])
def test_dropout1d_rank_is_refused_as_torch(name, shape, training):
    """PyTorch raises (RuntimeError) for a rank other than 2 or 3, in eval mode too; we
    raise ValueError naming input, the expected shapes and the given one."""
    torch = import_torch()
    with pytest.raises(RuntimeError, match="Expected 2D or 3D input"):
        torch.nn.functional.dropout1d(torch.ones(shape), 0.5, training)
    assert_refused(lambda: F.dropout1d(np.ones(shape, "float32"), 0.5, training), ValueError,
                   ["input", "(C, L)", "(N, C, L)", str(shape)])


@pytest.mark.parametrize("name,shape", [("dropout2d", (5,)), ("dropout3d", ()),
                                        ("feature_alpha_dropout", (5,))])
def test_too_few_dims_for_a_channel_mask(name, shape):
    """PyTorch refuses these only when it draws a mask (training, 0 < p < 1), and warns
    as it does; we raise ValueError naming input and the shape there, and otherwise
    return the input as PyTorch does."""
    torch = import_torch()
    ours, theirs = _functions(torch, name)
    x = np.ones(shape, "float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="at least 2 dimensions"):
            theirs(torch.from_numpy(x), 0.5, True)
        assert_refused(lambda: ours(x, 0.5, True), ValueError,
                       ["input", "(C, *)" if name == "dropout3d" else "(N, C, *)", str(shape)])
        for p, training in ((0.5, False), (0.0, True)):
            np.testing.assert_array_equal(ours(x, p, training).numpy(), x)
            np.testing.assert_array_equal(theirs(torch.from_numpy(x), p, training).numpy(), x)
        (y, torch_y), _ = _run_both(torch, name, x, 1.0)
        np.testing.assert_array_equal(y, torch_y)


BAD_ARGUMENTS = [
    ("p above 1", dict(p=1.5), ValueError, ["p", "[0, 1]", "1.5"]),
    ("p below 0", dict(p=-0.1), ValueError, ["p", "[0, 1]", "-0.1"]),
    ("p a string", dict(p="0.5"), TypeError, ["p", "real number", "'0.5'"]),
    ("training not a bool", dict(training=1), TypeError, ["training", "True or False", "1"]),
    ("inplace not a bool", dict(inplace="yes"), TypeError, ["inplace", "True or False", "'yes'"]),
    ("integer input", dict(input=np.ones((4, 6, 3, 2), "int64")), TypeError,
     ["input", "float32 or float64", "int64"]),
]


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("case,arguments,error,words", BAD_ARGUMENTS,
                         ids=[b[0] for b in BAD_ARGUMENTS])
def test_bad_arguments_are_refused_before_a_draw(name, case, arguments, error, words):
    """Refused with the argument, the expectation and the value named, and before any
    mask is drawn: the generator is where the seed left it."""
    call = dict(input=np.ones(_shape(name), "float32"), p=0.5, training=True, inplace=False)
    call.update(arguments)
    nr.manual_seed(5)
    assert_refused(lambda: getattr(F, name)(**call), error, words)
    after_refusal = F.dropout(np.ones(50, "float32"), 0.5, True).numpy()
    nr.manual_seed(5)
    np.testing.assert_array_equal(F.dropout(np.ones(50, "float32"), 0.5, True).numpy(),
                                  after_refusal)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_module_refuses_p_at_construction(name):
    torch = import_torch()
    with pytest.raises(ValueError, match="between 0 and 1"):
        getattr(torch.nn, MODULES[name])(1.5)
    assert_refused(lambda: getattr(nr.nn, MODULES[name])(1.5), ValueError, ["p", "[0, 1]", "1.5"])
    assert_refused(lambda: getattr(nr.nn, MODULES[name])(0.5, inplace=1), TypeError,
                   ["inplace", "True or False", "1"])
