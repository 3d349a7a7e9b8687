"""An LSTM sentiment classifier on padded variable-length batches, after bentrevett's
pytorch-sentiment-analysis tutorial 2: an Embedding with padding_idx, a bidirectional
two-layer LSTM over pack_padded_sequence, the last layer's two final states joined,
BCEWithLogitsLoss, Adam, binary accuracy, a TensorDataset and a DataLoader."""
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.utils.data import DataLoader, TensorDataset


class RNN(nn.Module):
    def __init__(self, vocab_size, embedding_dim, hidden_dim, output_dim, n_layers,
                 bidirectional, dropout, pad_idx):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=pad_idx)
        self.rnn = nn.LSTM(embedding_dim, hidden_dim, num_layers=n_layers,
                           bidirectional=bidirectional, dropout=dropout, batch_first=True)
        self.fc = nn.Linear(hidden_dim * 2, output_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, text, text_lengths):
        embedded = self.dropout(self.embedding(text))
        packed_embedded = pack_padded_sequence(embedded, text_lengths.cpu(), batch_first=True,
                                               enforce_sorted=False)
        packed_output, (hidden, cell) = self.rnn(packed_embedded)
        output, output_lengths = pad_packed_sequence(packed_output, batch_first=True)
        hidden = self.dropout(torch.cat((hidden[-2, :, :], hidden[-1, :, :]), dim=1))
        return self.fc(hidden), output


def binary_accuracy(preds, y):
    rounded_preds = torch.round(torch.sigmoid(preds))
    correct = (rounded_preds == y).float()
    return correct.sum() / len(correct)


def main(init):
    rng = np.random.default_rng(2)
    lengths = np.array([4, 2, 3, 1])
    text = np.zeros((4, 4), dtype=np.int64)
    for row, n in enumerate(lengths):
        text[row, :n] = rng.integers(2, 9, size=n)
    labels = np.array([1.0, 0.0, 1.0, 0.0], dtype=np.float32)
    dataset = TensorDataset(torch.from_numpy(text), torch.from_numpy(lengths),
                            torch.from_numpy(labels))
    loader = DataLoader(dataset, batch_size=2, shuffle=False)
    model = RNN(9, 3, 3, 1, 2, True, 0.0, 0)
    init(model)
    optimizer = optim.Adam(model.parameters(), lr=0.1)
    criterion = nn.BCEWithLogitsLoss()
    losses, accuracies = [], []
    for epoch in range(2):
        model.train()
        for batch_text, batch_lengths, batch_labels in loader:
            optimizer.zero_grad()
            predictions, _ = model(batch_text, batch_lengths)
            predictions = predictions.squeeze(1)
            loss = criterion(predictions, batch_labels)
            acc = binary_accuracy(predictions, batch_labels)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            accuracies.append(acc.item())
    model.eval()
    with torch.no_grad():
        predictions, padded = model(torch.from_numpy(text), torch.from_numpy(lengths))
    return {"losses": losses, "accuracies": accuracies, "predictions": predictions,
            "padded": padded, "state": model.state_dict()}
