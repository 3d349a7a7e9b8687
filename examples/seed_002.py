"""Seed article 002, written against numba_rnn: one-layer LSTM and GRU (batch_first) on a
random batch, a mean-squared-error loss summed over both, backward, and the gradients of
the LSTM's parameters printed.

The article moves modules and tensors to 'cuda'; numba_rnn keeps storage on the GPU
whenever there is one, so there is no .to() to call.

Run: python examples/seed_002.py
"""
import numpy as np

import numba_rnn as nr


def main(seed=None):
    if seed is not None:
        nr.manual_seed(seed)
    rng = np.random.default_rng(seed)

    input_size = output_size = hidden_size = 5
    sequence_len = 2

    lstm = nr.LSTM(input_size=input_size,
                   hidden_size=hidden_size,
                   num_layers=1,
                   batch_first=True)
    gru = nr.GRU(input_size=input_size,
                 hidden_size=hidden_size,
                 num_layers=1,
                 batch_first=True)

    batch_size = 3
    seq_len = sequence_len

    # random data, shaped [batch_size, seq_len, feature_dim]
    input_data = rng.standard_normal((batch_size, seq_len, input_size)).astype(np.float32)
    target_data = np.zeros((batch_size, seq_len, output_size), dtype=np.float32)
    inputs = nr.tensor(input_data)
    targets = nr.tensor(target_data)
    print("Inputs Shape:", inputs.shape)
    print("Targets Shape:", targets.shape)

    outputs, _ = lstm(inputs)
    loss = ((outputs - targets) ** 2).mean() / batch_size

    outputs, _ = gru(inputs)
    loss += ((outputs - targets) ** 2).mean() / batch_size

    loss.backward()
    print("Loss:", loss.item())
    print("Gradients of loss w.r.t weights are:")
    for name, param in lstm.named_parameters():
        print(name, ":\n", param.grad)

    print("\n Gradients of loss w.r.t bias terms are: ")
    for name, param in lstm.named_parameters():
        if "bias" in name:
            print(name, ":\n", param.grad)
    return {"lstm": lstm, "gru": gru, "input": input_data, "target": target_data, "loss": loss}


if __name__ == "__main__":
    main(seed=0)
