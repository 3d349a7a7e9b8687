"""Seed article 000, written against numba_rnn: a two-layer LSTM and a two-layer GRU
(batch_first) wrapped in modules, run on a tiny batch.

The article's comment claims the output shape is (2, 2, 1); with hidden_size=10 the
right shape is (2, 2, 10), which is what PyTorch gives and what this prints.

Run: python examples/seed_000.py
"""
import numba_rnn as nr
from numba_rnn import nn


class MyLSTM(nn.Module):
    def __init__(self, input_size=1, hidden_size=10, num_layers=2):
        super().__init__()
        self.lstm = nr.LSTM(input_size, hidden_size, num_layers, batch_first=True)

    def forward(self, x, h0=None):
        out, _ = self.lstm(x, h0)
        return out


class MyGRU(nn.Module):
    def __init__(self, input_size=1, hidden_size=10, num_layers=2):
        super().__init__()
        self.gru = nr.GRU(input_size, hidden_size, num_layers, batch_first=True)

    def forward(self, x, h0=None):
        out, _ = self.gru(x, h0)
        return out


def main():
    lstm = MyLSTM()
    input_seq = [
        [[1], [2]],
        [[3], [4]],
    ]
    input_tensor = nr.tensor(input_seq, dtype="float32")  # torch.FloatTensor(input_seq)
    lstm_output = lstm(input_tensor)
    print("output shape:", lstm_output.shape)  # (2, 2, 10)

    gru = MyGRU()
    gru_output = gru(input_tensor)
    print("output shape:", gru_output.shape)  # (2, 2, 10)
    return {"lstm": lstm, "gru": gru, "input": input_tensor,
            "lstm_output": lstm_output, "gru_output": gru_output}


if __name__ == "__main__":
    main()
