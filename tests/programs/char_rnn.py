"""A character-level RNN generator, after the PyTorch tutorial "Generating names with a
character-level RNN": an RNN built from Linear layers over one-hot tensors filled by item
assignment, LogSoftmax and NLLLoss summed over the steps, a manual SGD step on p.data,
and greedy sampling with topk."""
import numpy as np
import torch
import torch.nn as nn

LETTERS = "abcdef."


class RNN(nn.Module):
    def __init__(self, n_categories, input_size, hidden_size, output_size):
        super().__init__()
        self.hidden_size = hidden_size
        self.i2h = nn.Linear(n_categories + input_size + hidden_size, hidden_size)
        self.i2o = nn.Linear(n_categories + input_size + hidden_size, output_size)
        self.o2o = nn.Linear(hidden_size + output_size, output_size)
        self.dropout = nn.Dropout(0.0)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, category, input, hidden):
        input_combined = torch.cat((category, input, hidden), 1)
        hidden = self.i2h(input_combined)
        output = self.i2o(input_combined)
        output_combined = torch.cat((hidden, output), 1)
        output = self.o2o(output_combined)
        output = self.dropout(output)
        output = self.softmax(output)
        return output, hidden

    def initHidden(self):
        return torch.zeros(1, self.hidden_size)


def category_tensor(k, n):
    tensor = torch.zeros(1, n)
    tensor[0][k] = 1
    return tensor


def input_tensor(line):
    tensor = torch.zeros(len(line), 1, len(LETTERS))
    for li in range(len(line)):
        tensor[li][0][LETTERS.find(line[li])] = 1
    return tensor


def target_tensor(line):
    letter_indexes = [LETTERS.find(line[li]) for li in range(1, len(line))]
    letter_indexes.append(len(LETTERS) - 1)
    return torch.LongTensor(letter_indexes)


def main(init):
    rnn = RNN(2, len(LETTERS), 5, len(LETTERS))
    init(rnn)
    criterion = nn.NLLLoss()
    learning_rate = 0.05
    names = [("abca", 0), ("fed", 1), ("bead", 0)]
    losses = []
    for name, category in names * 2:
        target_line_tensor = target_tensor(name)
        target_line_tensor.unsqueeze_(-1)
        hidden = rnn.initHidden()
        rnn.zero_grad()
        loss = torch.Tensor([0])
        cat, line = category_tensor(category, 2), input_tensor(name)
        for i in range(line.size(0)):
            output, hidden = rnn(cat, line[i], hidden)
            l = criterion(output, target_line_tensor[i])
            loss += l
        loss.backward()
        for p in rnn.parameters():
            p.data.add_(p.grad.data, alpha=-learning_rate)
        losses.append(loss.item() / line.size(0))
    samples = []
    with torch.no_grad():
        for start, category in (("a", 0), ("f", 1)):
            cat, input = category_tensor(category, 2), input_tensor(start)
            hidden = rnn.initHidden()
            output_name = start
            for i in range(5):
                output, hidden = rnn(cat, input[0], hidden)
                topv, topi = output.topk(1)
                topi = topi[0][0]
                if topi == len(LETTERS) - 1:
                    break
                output_name += LETTERS[topi]
                input = input_tensor(LETTERS[topi])
            samples.append(output_name)
    return {"losses": losses, "samples": samples, "state": rnn.state_dict()}
