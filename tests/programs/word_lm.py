"""A word-level language model with tied weights, after pytorch/examples
word_language_model: batchify, truncated BPTT with repackaged hidden states, gradient
clipping, a hand-written SGD step on p.data, evaluation under no_grad, lr annealing,
and a state_dict checkpoint."""
import math
import os
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class RNNModel(nn.Module):
    def __init__(self, rnn_type, ntoken, ninp, nhid, nlayers, dropout=0.0, tie_weights=True):
        super().__init__()
        self.ntoken = ntoken
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = getattr(nn, rnn_type)(ninp, nhid, nlayers, dropout=dropout)
        self.decoder = nn.Linear(nhid, ntoken)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        self.init_weights()
        self.rnn_type, self.nhid, self.nlayers = rnn_type, nhid, nlayers

    def init_weights(self):
        initrange = 0.1
        nn.init.uniform_(self.encoder.weight, -initrange, initrange)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -initrange, initrange)

    def forward(self, input, hidden):
        emb = self.drop(self.encoder(input))
        output, hidden = self.rnn(emb, hidden)
        output = self.drop(output)
        decoded = self.decoder(output)
        decoded = decoded.view(-1, self.ntoken)
        return F.log_softmax(decoded, dim=1), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        if self.rnn_type == "LSTM":
            return (weight.new_zeros(self.nlayers, bsz, self.nhid),
                    weight.new_zeros(self.nlayers, bsz, self.nhid))
        return weight.new_zeros(self.nlayers, bsz, self.nhid)


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    data = data.narrow(0, 0, nbatch * bsz)
    return data.view(bsz, -1).t().contiguous()


def get_batch(source, i, bptt):
    seq_len = min(bptt, len(source) - 1 - i)
    data = source[i:i + seq_len]
    target = source[i + 1:i + 1 + seq_len].view(-1)
    return data, target


def repackage_hidden(h):
    if isinstance(h, torch.Tensor):
        return h.detach()
    return tuple(repackage_hidden(v) for v in h)


def main(init, rnn_type="LSTM"):
    words = np.random.default_rng(0).integers(0, 7, size=40)
    ids = torch.tensor(words.tolist()).type(torch.int64)
    train_data = batchify(ids[:28], 2)
    val_data = batchify(ids[28:], 2)
    model = RNNModel(rnn_type, 7, 4, 4, 2)
    init(model)
    criterion = nn.NLLLoss()
    lr, bptt, clip = 2.0, 3, 0.25
    losses = []

    def evaluate(source):
        model.eval()
        total = 0.0
        hidden = model.init_hidden(2)
        with torch.no_grad():
            for i in range(0, source.size(0) - 1, bptt):
                data, targets = get_batch(source, i, bptt)
                output, hidden = model(data, hidden)
                hidden = repackage_hidden(hidden)
                total += len(data) * criterion(output, targets).item()
        return total / (len(source) - 1)

    best = None
    folder = tempfile.mkdtemp()
    for epoch in range(2):
        model.train()
        hidden = model.init_hidden(2)
        for batch, i in enumerate(range(0, train_data.size(0) - 1, bptt)):
            data, targets = get_batch(train_data, i, bptt)
            model.zero_grad()
            hidden = repackage_hidden(hidden)
            output, hidden = model(data, hidden)
            loss = criterion(output, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
            for p in model.parameters():
                p.data.add_(p.grad, alpha=-lr)
            losses.append(loss.item())
        val_loss = evaluate(val_data)
        losses.append(val_loss)
        if best is None or val_loss < best:
            torch.save(model.state_dict(), os.path.join(folder, "model.pt"))
            best = val_loss
        else:
            lr /= 4.0
    model.load_state_dict(torch.load(os.path.join(folder, "model.pt")))
    return {"losses": losses, "ppl": [math.exp(evaluate(val_data))],
            "tied": [model.decoder.weight is model.encoder.weight],
            "keys": sorted(model.state_dict().keys()), "state": model.state_dict()}
