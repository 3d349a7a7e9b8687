"""A row-by-row MNIST-style classifier with BatchNorm: each image's rows are the time
steps of a batch-first LSTM, the last step goes through BatchNorm1d and a Linear layer;
SGD with momentum and a StepLR schedule; accuracy with torch.max(outputs.data, 1); eval
mode uses the running statistics."""
import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset


class RNN(nn.Module):
    def __init__(self, input_size, hidden_size, num_layers, num_classes):
        super().__init__()
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True)
        self.bn = nn.BatchNorm1d(hidden_size)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        h0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size)
        c0 = torch.zeros(self.num_layers, x.size(0), self.hidden_size)
        out, _ = self.lstm(x, (h0, c0))
        return self.fc(self.bn(out[:, -1, :]))


def main(init):
    rng = np.random.default_rng(4)
    images = torch.tensor(rng.random((8, 1, 4, 4)).astype(np.float32))
    labels = torch.tensor(rng.integers(0, 3, size=8))
    loader = DataLoader(TensorDataset(images, labels), batch_size=4, shuffle=False)
    model = RNN(4, 5, 2, 3)
    init(model)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    losses, lrs = [], []
    for epoch in range(2):
        model.train()
        for i, (images_, labels_) in enumerate(loader):
            images_ = images_.reshape(-1, 4, 4).to("cpu")
            outputs = model(images_)
            loss = criterion(outputs, labels_)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    model.eval()
    with torch.no_grad():
        correct, total = 0, 0
        for images_, labels_ in loader:
            outputs = model(images_.reshape(-1, 4, 4))
            _, predicted = torch.max(outputs.data, 1)
            total += labels_.size(0)
            correct += (predicted == labels_).sum().item()
    return {"losses": losses, "lrs": lrs, "accuracy": [correct / total],
            "outputs": outputs, "state": model.state_dict()}
