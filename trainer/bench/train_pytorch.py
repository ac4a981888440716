"""PyTorch side of `cargo xtask bench train`: the same CNN as Albedo's trainer, on the same
samples, with the same batch size and threads.

The samples come from `cargo run -p albedo-trainer --release --example bench_train --
--export DIR`: `x.f32` (raw values, [n, C, P, P]), `y.i64` and `meta.json` (channels, the
train mean and standard deviation per channel, width, depth, dropout, lr, batch, warm-up and
timed batch counts).

The network is `trainer/src/model.rs`'s: `depth` blocks, block i a 3x3 convolution (padding
1, no bias) to `width * 2**(i-1)` channels, batch norm (eps 1e-5, momentum 0.1), ReLU and
2x2 max pooling; then global average pooling, dropout and a linear layer to the classes;
float32 everywhere. Training: Adam (betas 0.9/0.999, eps 1e-5, no weight decay, the lr of
meta.json), cross-entropy, shuffled batches of the normalised samples; each step also reads
the loss and the logits back (as Albedo's loop does for its metrics). Inference: eval mode,
no autograd, normalisation + forward + softmax of raw batches, as
`EoCnn::predict_proba`.

Prints `pytorch_images_per_sec=` and `pytorch_infer_images_per_sec=` (and `torch=...`).
"""

import argparse
import json
import os
import time

import numpy as np
import torch
from torch import nn


class Net(nn.Module):
    """The network of trainer/src/model.rs."""

    def __init__(self, in_channels: int, classes: int, width: int, depth: int, dropout: float):
        super().__init__()
        blocks = []
        c_in = in_channels
        for i in range(depth):
            c_out = width << i
            blocks += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out, eps=1e-5, momentum=0.1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            c_in = c_out
        self.blocks = nn.Sequential(*blocks)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(c_in, classes)

    def forward(self, x):
        h = self.gap(self.blocks(x)).flatten(1)
        return self.head(self.drop(h))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder written by bench_train --export")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    meta = json.load(open(os.path.join(a.data, "meta.json")))
    n, c, p = meta["samples"], len(meta["channels"]), meta["patch"]
    raw = np.fromfile(os.path.join(a.data, "x.f32"), dtype="<f4").reshape(n, c, p, p)
    y = torch.from_numpy(np.fromfile(os.path.join(a.data, "y.i64"), dtype="<i8").copy())
    mean = torch.tensor(meta["mean"], dtype=torch.float64).view(1, c, 1, 1)
    std = torch.tensor([s if s > 0 else 1.0 for s in meta["std"]], dtype=torch.float64)
    std = std.view(1, c, 1, 1)
    raw = torch.from_numpy(raw.copy())
    # Normalised once before training, as Albedo's loader does (in f64, stored as f32).
    x = ((raw.double() - mean) / std).float().contiguous()

    batch = meta["batch"]
    net = Net(c, len(meta["classes"]), meta["width"], meta["depth"], meta["dropout"])
    opt = torch.optim.Adam(net.parameters(), lr=meta["lr"], betas=(0.9, 0.999), eps=1e-5)
    loss_fn = nn.CrossEntropyLoss()
    print(
        f"torch={torch.__version__} threads={torch.get_num_threads()} "
        f"params={sum(q.numel() for q in net.parameters())}",
        flush=True,
    )

    def steps(count: int) -> int:
        """Trains `count` batches of shuffled epochs; returns the images seen."""
        seen = 0
        done = 0
        while done < count:
            order = torch.randperm(n)
            for b in range(0, n, batch):
                if done == count:
                    break
                ids = order[b : b + batch]
                xb, yb = x[ids], y[ids]
                logits = net(xb)
                loss = loss_fn(logits, yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                _ = loss.item()
                _ = logits.detach().argmax(1).eq(yb).sum().item()
                seen += len(ids)
                done += 1
        return seen

    net.train()
    steps(meta["warmup"])
    t = time.perf_counter()
    seen = steps(meta["batches"])
    train_rate = seen / (time.perf_counter() - t)

    net.eval()
    batches = [raw[i : i + batch] for i in range(0, n - batch + 1, batch)]

    def predict(rb):
        xb = ((rb.double() - mean) / std).float()
        return torch.softmax(net(xb), 1).numpy()

    with torch.inference_mode():
        for rb in batches[:2]:
            predict(rb)
        t = time.perf_counter()
        for i in range(meta["infer_batches"]):
            predict(batches[i % len(batches)])
        infer_rate = meta["infer_batches"] * batch / (time.perf_counter() - t)

    print(f"pytorch_images_per_sec={train_rate:.1f}")
    print(f"pytorch_infer_images_per_sec={infer_rate:.1f}")


if __name__ == "__main__":
    main()
