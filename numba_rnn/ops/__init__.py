"""The ops: each operation defined once, with its derivative beside it, over the autograd
engine; ``Tensor``'s methods, ``nr``'s functions and ``nn.functional``'s are these
functions (the Tensor binds them, ``numba_rnn.functions`` and ``nn.functional`` import
them). Nothing here imports the Tensor: ops make tensors through the engine.

* ``convert``: the one converter of user values (``as_tensor``), masks and indices,
  dtype promotion, ``unbroadcast``;
* ``elementwise``: exp, log, ..., tanh, sigmoid (stable for large |x|), relu, the
  roundings, and the activations leaky_relu, gelu, softplus;
* ``softmax``: softmax and log_softmax;
* ``join``: cat, stack, hstack, vstack, where.

CONTRIBUTING.md, "Add an op", says where a new one goes.
"""
