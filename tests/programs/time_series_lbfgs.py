"""An LSTMCell time-series predictor trained with LBFGS in float64, after pytorch/examples
time_sequence_prediction: two stacked LSTMCells stepped over input.chunk(...), outputs
joined with torch.cat, a closure for LBFGS, and a prediction into the future under
no_grad."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim


class Sequence(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm1 = nn.LSTMCell(1, 4)
        self.lstm2 = nn.LSTMCell(4, 4)
        self.linear = nn.Linear(4, 1)

    def forward(self, input, future=0):
        outputs = []
        h_t = torch.zeros(input.size(0), 4, dtype=torch.double)
        c_t = torch.zeros(input.size(0), 4, dtype=torch.double)
        h_t2 = torch.zeros(input.size(0), 4, dtype=torch.double)
        c_t2 = torch.zeros(input.size(0), 4, dtype=torch.double)
        for input_t in input.chunk(input.size(1), dim=1):
            h_t, c_t = self.lstm1(input_t, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        for i in range(future):
            h_t, c_t = self.lstm1(output, (h_t, c_t))
            h_t2, c_t2 = self.lstm2(h_t, (h_t2, c_t2))
            output = self.linear(h_t2)
            outputs += [output]
        return torch.cat(outputs, dim=1)


def main(init):
    T, L = 5, 6
    x = np.empty((T, L), "int64")
    x[:] = np.array(range(L)) + np.random.default_rng(3).integers(-4, 4, T).reshape(T, 1)
    data = np.sin(x / 1.0 / 3).astype("float64")
    input = torch.from_numpy(data[2:, :-1])
    target = torch.from_numpy(data[2:, 1:])
    test_input = torch.from_numpy(data[:2, :-1])
    test_target = torch.from_numpy(data[:2, 1:])
    seq = Sequence()
    seq.double()
    init(seq)
    criterion = nn.MSELoss()
    optimizer = optim.LBFGS(seq.parameters(), lr=0.8, max_iter=4)
    losses = []
    for i in range(2):
        def closure():
            optimizer.zero_grad()
            out = seq(input)
            loss = criterion(out, target)
            losses.append(loss.item())
            loss.backward()
            return loss
        optimizer.step(closure)
        with torch.no_grad():
            future = 3
            pred = seq(test_input, future=future)
            loss = criterion(pred[:, :-future], test_target)
            losses.append(loss.item())
            y = pred.detach().numpy()
    return {"losses": losses, "prediction": y, "state": seq.state_dict()}
