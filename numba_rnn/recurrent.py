"""The time loop (``numba_rnn.rnn``) under its former name: the names this module had.

The code is in ``numba_rnn.rnn``: ``plan`` (the path policy and the kernels' plans),
``paths`` (the registry of paths, a module each), ``layer`` (one layer-direction) and
``stack`` (layers, directions, lengths, dropout). Setting an attribute here changes
nothing there: set it on the module that defines it (``numba_rnn.rnn.plan`` for the
constants and plans, ``numba_rnn.rnn.paths.persistent`` for its kernels).
"""
from .rnn import (DEFAULT_HANDOFF, FUSED_MAX_BATCH, FUSED_VALIDATED_ON_GPU, HANDOFFS, PATHS,
                  PERSISTENT_MAX_BATCH, Batching, LayerCache, LayerParams, NormCache, Plan,
                  StackCache, choose_path, fit_plan, force_path, forced_path, fused_plan,
                  handoff, kernel_signatures, layer_backward, layer_forward, persistent_plan,
                  stack_backward, stack_forward, use_handoff)

__all__ = ["DEFAULT_HANDOFF", "FUSED_MAX_BATCH", "FUSED_VALIDATED_ON_GPU", "HANDOFFS", "PATHS",
           "PERSISTENT_MAX_BATCH", "Batching", "LayerCache", "LayerParams", "NormCache", "Plan",
           "StackCache", "choose_path", "fit_plan", "force_path", "forced_path", "fused_plan",
           "handoff", "kernel_signatures", "layer_backward", "layer_forward", "persistent_plan",
           "stack_backward", "stack_forward", "use_handoff"]
