"""The ops: each operation defined once, with its derivative beside it, over the autograd
engine; ``Tensor``'s methods, ``nr``'s functions and ``nn.functional``'s are these
functions (the Tensor binds them, ``numba_rnn.functions`` and ``nn.functional`` import
them). Nothing here imports the Tensor: ops make tensors through the engine.

* ``convert``: the one converter of user values (``as_tensor``), masks and indices,
  dtype promotion, ``unbroadcast``;
* ``elementwise``: exp, log, ..., tanh, sigmoid (stable for large |x|), relu, the
  roundings, and the activations leaky_relu, gelu, softplus;
* ``arith``: binary arithmetic (add, ..., pow, matmul/mm/bmm/dot) with the reflected
  and in-place forms, comparisons, logic, clamp/maximum/minimum, masked_fill;
* ``reduce``: sum, mean, var, std, norm, logsumexp, cumsum, prod, max/min, amax/amin,
  argmax/argmin, topk, sort, argsort, all, any (``ValuesIndices``);
* ``movement``: reshape/view, flatten, transpose/permute/movedim, squeeze/unsqueeze,
  expand/repeat, narrow, split/chunk/unbind, flip, clone, contiguous, and ``unsqueeze_``...;
* ``index``: ``t[key]``, ``t[key] = v``, gather, index_select, masked_select;
* ``inplace``: the in-place write every in-place op goes through; copy_, fill_, zero_;
* ``softmax``: softmax and log_softmax;
* ``join``: cat, stack, hstack, vstack, where.

``Tensor``'s methods are these functions, bound by name in tables at the end of
``numba_rnn/tensor.py``.

CONTRIBUTING.md, "Add an op", says where a new one goes.
"""
