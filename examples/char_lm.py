"""A character-level language model on Shakespeare's sonnets (examples/data/sonnets.txt,
public domain), trained with truncated backpropagation through time.

The text is cut into `batch` parallel streams; each training step reads the next `bptt`
characters of every stream, carrying the LSTM's (h, c) over from the previous chunk but
cut from its graph with ``detach()``: gradients flow back at most `bptt` steps, while the
state still remembers what came before. Samples are printed as it learns, the loss curve
is saved as a PNG, and the model and optimizer are checkpointed with ``nr.save`` (resume
with ``--resume``).

Run: python examples/char_lm.py             (H=128, bptt 50: minutes on the CPU path;
                                            tiny in the simulator)
     python examples/char_lm.py --full      (H=512, for a GPU)
"""
import math
import os

import numpy as np

import numba_rnn as nr
from numba_rnn.nn import functional as F

from _common import announce, parser, plot_curves, progress, settle

TEXT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "sonnets.txt")
SMALL = dict(embed=8, hidden=16, batch=4, bptt=8, train_steps=100, lr=0.01, sample_every=50)
LARGE = dict(embed=64, hidden=512, batch=32, bptt=100, train_steps=3000, lr=0.002,
             sample_every=500)
NATIVE = dict(embed=32, hidden=128, batch=16, bptt=50, train_steps=400, lr=0.005,
              sample_every=100)


class CharLM(nr.nn.Module):
    """Embedding → LSTM → Linear: logits of the next character at every step."""

    def __init__(self, vocab, embed, hidden):
        super().__init__()
        self.embed = nr.nn.Embedding(vocab, embed)
        self.lstm = nr.LSTM(embed, hidden)
        self.head = nr.nn.Linear(hidden, vocab)

    def forward(self, ids, state=None):
        output, state = self.lstm(self.embed(ids), state)  # ids (T, B) → output (T, B, H)
        return self.head(output), state                    # logits (T, B, V)


def streams(ids, batch):
    """(L, batch): the text cut into `batch` contiguous streams, one per column."""
    length = len(ids) // batch
    return ids[: length * batch].reshape(batch, length).T.copy()


def sample(model, alphabet, rng, prime="Shall ", length=120, temperature=0.8):
    """Characters drawn one at a time from the model's predictions."""
    index = {c: k for k, c in enumerate(alphabet)}
    was_training = model.training
    model.eval()
    text, state = prime, None
    with nr.no_grad():
        ids = np.array([[index[c]] for c in prime])  # (T, 1)
        for _ in range(length):
            logits, state = model(ids, state)
            probs = F.softmax(logits[-1, 0] / temperature, dim=0).numpy().astype(np.float64)
            choice = rng.choice(len(alphabet), p=probs / probs.sum())
            text += alphabet[choice]
            ids = np.array([[choice]])
    model.train(was_training)
    return text


def main(argv=None):
    p = parser(__doc__.splitlines()[0], SMALL, LARGE, NATIVE)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    args = settle(p.parse_args(argv), SMALL, LARGE, NATIVE)
    announce("char-level LM", args, list(SMALL))
    nr.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    with open(TEXT, encoding="utf-8") as f:
        text = f.read()
    alphabet = sorted(set(text))
    data = streams(np.array([alphabet.index(c) for c in text]), args.batch)
    model = CharLM(len(alphabet), args.embed, args.hidden)
    optimizer = nr.optim.Adam(model.parameters(), lr=args.lr)
    checkpoint = os.path.join(args.out, "char_lm_checkpoint.npz")
    losses, first_step, position = [], 0, 0
    if args.resume and os.path.exists(checkpoint):
        saved = nr.load(checkpoint)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        losses, first_step, position = saved["losses"], saved["step"], saved["position"]
        print(f"resumed from {checkpoint} at step {first_step}")
    print(f"{len(text)} characters, {len(alphabet)} distinct; a uniform guess scores "
          f"ln {len(alphabet)} = {math.log(len(alphabet)):.2f}")

    state = None
    steps = progress(range(first_step, first_step + args.train_steps), desc="training",
                     disable=args.no_progress)
    for step in steps:
        if position + args.bptt + 1 > len(data):  # back to the start of the streams
            position, state = 0, None
        x = data[position: position + args.bptt]            # (bptt, B)
        y = data[position + 1: position + args.bptt + 1]    # the next characters
        if state is not None:
            state = tuple(s.detach() for s in state)  # truncated BPTT: keep the values,
                                                       # cut the graph at the chunk's start
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.reshape(-1, len(alphabet)), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nr.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        position += args.bptt
        if hasattr(steps, "set_postfix"):
            steps.set_postfix(loss=f"{losses[-1]:.3f}")
        if (step + 1) % args.sample_every == 0:
            print(f"\n--- step {step + 1}, loss {np.mean(losses[-args.sample_every:]):.3f} ---")
            print(sample(model, alphabet, rng))

    os.makedirs(args.out, exist_ok=True)
    nr.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "losses": losses, "step": first_step + args.train_steps, "position": position},
            checkpoint)
    print(f"checkpoint saved to {checkpoint}")
    window = max(1, len(losses) // 20)
    plot_curves({"LSTM": np.convolve(losses, np.ones(window) / window, mode="valid")},
                os.path.join(args.out, "char_lm.png"),
                f"char-level LM, H={args.hidden}, bptt={args.bptt} ({nr.backend_name()})",
                f"cross-entropy (mean of {window} steps)", log=False)
    return {"losses": losses, "model": model, "alphabet": alphabet}


if __name__ == "__main__":
    main()
