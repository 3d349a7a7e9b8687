"""The registry of paths: how one layer-direction runs its time loop, forward and
backward. ``layer.layer_forward`` takes the path ``plan.choose_path`` chooses, looks up the
module that runs it here (``lookup``) and calls it; ``layer.layer_backward`` calls the
same module's backward (by its name, kept in LayerCache.runner).

Every path is a module of this package with the same interface:

    PATH        the name choose_path and force_path know it by ("plain", "fused",
                "persistent"; PATHS below lists them)
    runs(cell)  whether it runs PATH for ``cell`` on the current backend
    forward(cell, x, states0, params, batching, zo) -> (output (T,B,P), final states
                (one (B,·) array per state), LayerCache): x (T,B,I) sorted by length,
                states0 one (B,·) array per state, params LayerParams, batching a
                stack.Batching, zo the zoneout weights (T,B,S*H) or None
    backward(cell, cache, params, doutput, carry, batching) -> (dx (T,B,I), LayerParams
                of gradients): cache the forward's LayerCache, doutput (T,B,P)
                contiguous, carry one (B,·) array per state, the final states' gradients,
                which the backward turns in place into the initial states'

What they share (the input projection, the state sequences, the gate gradients, the
weight gradients after the loop) is paths/common.py's. Several modules may run one
PATH: the one registered last whose runs(cell) holds runs it ("region" is the CPU's
"persistent", "norm" the layer-normalized cells' "plain").

Adding a path: write paths/<name>.py with the four names above, and add the one line
``register("<name>")`` below. A new PATH is forceable at once (force_path); the automatic
choice (plan.choose_path) takes it where its policy is told to.
"""
import importlib

from ... import backend

#: name -> the module that runs it, in the order registered
REGISTRY = {}


def register(name):
    """Add the path module paths/<name>.py to the registry, under ``name``."""
    REGISTRY[name] = importlib.import_module(f"{__name__}.{name}")


register("plain")       # cuBLAS GEMM plus a gate kernel each step (and a projection)
register("fused")       # one fused kernel each step
register("persistent")  # one persistent kernel for the whole sequence, on a GPU
register("region")      # persistent on the CPU: one parallel region (kernels/region.py)
register("norm")        # plain for the layer-normalized cells (kernels/norm.py)

#: How a layer can run its steps (kernels/steps.py), the names force_path takes.
PATHS = tuple(dict.fromkeys(module.PATH for module in REGISTRY.values()))


def lookup(path, cell):
    """(name, module) of the module that runs ``path`` for ``cell`` here."""
    for name in reversed(list(REGISTRY)):
        module = REGISTRY[name]
        if module.PATH == path and module.runs(cell):
            return name, module
    raise ValueError(f"path: nothing runs {path!r} for a {cell.name} cell on the "
                     f"{backend.backend_name()} backend")
