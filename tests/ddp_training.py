"""Run by test_torch_interop.py: a small PyTorch model around numba_rnn.torch.LSTM
trained for three SGD steps under DistributedDataParallel (gloo, two processes, each
half of the batch), and the same model trained alone on the whole batch; each writes
its parameters to the folder given."""
import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import numba_rnn.torch as nrt

STEPS, BATCH, T, I, H = 3, 4, 3, 2, 3


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nrt.LSTM(I, H, num_layers=2, batch_first=True, dtype=torch.float64)
        self.head = torch.nn.Linear(H, 1, dtype=torch.float64)

    def forward(self, x):
        output, _ = self.lstm(x)
        return self.head(output[:, -1])


def data():
    generator = torch.Generator().manual_seed(1)
    return (torch.randn(STEPS, BATCH, T, I, generator=generator, dtype=torch.float64),
            torch.randn(STEPS, BATCH, 1, generator=generator, dtype=torch.float64))


def train(model, rows):
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    xs, ys = data()
    for step in range(STEPS):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(xs[step, rows]), ys[step, rows])
        loss.backward()
        opt.step()


def fresh_model():
    torch.manual_seed(0)
    return Model()


def worker(rank, folder, port):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    model = torch.nn.parallel.DistributedDataParallel(fresh_model())
    half = BATCH // 2
    train(model, slice(rank * half, (rank + 1) * half))
    if rank == 0:
        torch.save(model.module.state_dict(), os.path.join(folder, "rank0.pt"))
    dist.barrier()  # both ranks done before either tears gloo down
    dist.destroy_process_group()
    # gloo's threads can abort the interpreter's own teardown ("terminate called without
    # an active exception"): everything is written, so leave without it
    os._exit(0)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    folder = sys.argv[1]
    torch.save(fresh_model().state_dict(), os.path.join(folder, "start.pt"))
    alone = fresh_model()
    train(alone, slice(0, BATCH))
    torch.save(alone.state_dict(), os.path.join(folder, "alone.pt"))
    mp.spawn(worker, args=(folder, free_port()), nprocs=2, join=True)
