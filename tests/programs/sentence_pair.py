"""A sentence-pair encoder (a Siamese "MaLSTM" with an InferSent-style classifier head):
one shared LSTM encodes both sentences, similarity exp(-|h1 - h2|_1), features
(u, v, |u - v|, u * v) into a classifier; BCELoss plus CrossEntropyLoss, RMSprop and
ReduceLROnPlateau; weights initialised with nn.init.xavier_uniform_ and orthogonal_."""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim


class PairEncoder(nn.Module):
    def __init__(self, vocab, dim, hidden):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.encoder = nn.LSTM(dim, hidden, batch_first=True)
        self.classifier = nn.Sequential(nn.Linear(4 * hidden, hidden), nn.Tanh(),
                                        nn.Linear(hidden, 3))
        for name, param in self.encoder.named_parameters():
            if "weight_hh" in name:
                nn.init.orthogonal_(param)
            elif "weight_ih" in name:
                nn.init.xavier_uniform_(param)

    def encode(self, tokens):
        _, (h, _) = self.encoder(self.embedding(tokens))
        return h[-1]

    def forward(self, a, b):
        u, v = self.encode(a), self.encode(b)
        similarity = torch.exp(-torch.sum(torch.abs(u - v), dim=1, keepdim=True))
        features = torch.cat((u, v, torch.abs(u - v), u * v), 1)
        return similarity.clamp(1e-6, 1 - 1e-6), self.classifier(features)


def main(init):
    rng = np.random.default_rng(5)
    a = torch.tensor(rng.integers(0, 8, size=(3, 4)))
    b = torch.tensor(rng.integers(0, 8, size=(3, 4)))
    same = torch.tensor([[1.0], [0.0], [1.0]])
    classes = torch.tensor([0, 2, 1])
    model = PairEncoder(8, 3, 4)
    init(model)
    optimizer = optim.RMSprop(model.parameters(), lr=0.01)
    scheduler = optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5,
                                                     patience=0)
    bce = nn.BCELoss()
    losses = []
    for step in range(3):
        optimizer.zero_grad()
        similarity, logits = model(a, b)
        loss = bce(similarity, same) + F.cross_entropy(logits, classes)
        loss.backward()
        optimizer.step()
        scheduler.step(loss.item() + (step == 2))
        losses.append(loss.item())
    return {"losses": losses, "lr": [optimizer.param_groups[0]["lr"]],
            "similarity": similarity, "state": model.state_dict()}
