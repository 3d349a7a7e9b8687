"""The time loop, written once for every cell: one direction of one layer, and a stack of
layers and directions with variable lengths and dropout, forward and backward
(backpropagation through time).

    plan.py     the path policy (choose_path, force_path, use_handoff), the fused and
                persistent kernels' plans, and the tuples the paths share
    paths/      the registry of paths (plain, fused, persistent, the CPU's region, the
                layer-normalized cells'), each a module with forward and backward;
                paths/common.py what they share
    layer.py    one layer-direction: choose the path, look it up, run it
    stack.py    the stack: Batching (lengths), layers and directions, dropout, zoneout,
                DropConnect
"""
from .layer import layer_backward, layer_forward
from .paths import PATHS
from .paths.norm import NormCache
from .plan import (DEFAULT_HANDOFF, FUSED_MAX_BATCH, FUSED_VALIDATED_ON_GPU, HANDOFFS,
                   PERSISTENT_MAX_BATCH, LayerCache, LayerParams, Plan, choose_path,
                   fit_plan, force_path, forced_path, fused_plan, handoff, kernel_signatures,
                   persistent_plan, use_handoff)
from .stack import Batching, StackCache, stack_backward, stack_forward

__all__ = ["PATHS", "DEFAULT_HANDOFF", "FUSED_MAX_BATCH", "FUSED_VALIDATED_ON_GPU",
           "HANDOFFS", "PERSISTENT_MAX_BATCH", "Batching", "LayerCache", "LayerParams",
           "NormCache", "Plan", "StackCache", "choose_path", "fit_plan", "force_path",
           "forced_path", "fused_plan", "handoff", "kernel_signatures", "layer_backward",
           "layer_forward", "persistent_plan", "stack_backward", "stack_forward",
           "use_handoff"]
