#!/usr/bin/python3
"""Train convtrain's default network (or resnet8) with PyTorch on the CPU:
the peer for convtrain's CPU training throughput (and, with --data, its
accuracy).

Run with Debian's python3-torch (/usr/bin/python3, not a pyenv python3):

    /usr/bin/python3 scripts/torch-cpu-train.py --threads 2 --steps 200
    /usr/bin/python3 scripts/torch-cpu-train.py --threads 2 --data DIR --epochs 3
    /usr/bin/python3 scripts/torch-cpu-train.py --model resnet8 --schedule cosine --data DIR --epochs 10
    /usr/bin/python3 scripts/torch-cpu-train.py --model resnet8 --schedule cosine --weight-decay 5e-4 --data DIR --epochs 10
    /usr/bin/python3 scripts/torch-cpu-train.py --model resnet8 --schedule cosine --weight-decay 5e-4 --lr 0.1 --data DIR --epochs 10

The network, optimiser and batch are those of `go run ./cmd/train`:
conv 1→8 5×5, ReLU, max-pool 2, conv 8→16 5×5, ReLU, max-pool 2, dense
256→10, softmax cross-entropy; SGD lr 0.05 (--lr), momentum 0.9, batch 64.
--model resnet8 is `train -model resnet8` (scripts/torch-presets.py's
network with a 1-channel first convolution). --schedule cosine is
convtrain's default schedule: lr·½(1 + cos(π·step/steps)) per step over
all epochs (the default here stays constant, as the figures recorded with
this script were). Weights are initialised as convtrain does
(Glorot-uniform, biases 0, BatchNorm γ = 1, β = 0), not by PyTorch's
defaults.

Without --data it times --steps training steps (after --warmup steps) on
random 28×28 inputs and prints one line:

    torch-cpu images/s=<float> threads=<int> batch=<int> steps=<int>

With --data DIR (a directory holding the four MNIST IDX files, .gz or raw)
it trains for --epochs on the real data, standardised with the training
set's mean and standard deviation like convtrain, and prints per-epoch test
accuracy.
"""

import argparse
import gzip
import os
import struct
import sys
import time

import importlib.util
import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def resnet8():
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch-presets.py")
    spec = importlib.util.spec_from_file_location("torch_presets", path)
    presets = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(presets)
    return presets.resnet(1, cin=1)


def glorot(model):
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def net():
    return nn.Sequential(
        nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(256, 10))


def read_idx(path):
    opener = gzip.open if open(path, "rb").read(2) == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, rank = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"{path}: not a u8 IDX file")
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return np.frombuffer(data[4 + 4 * rank:], dtype=np.uint8).reshape(dims)


def find(d, stem):
    for name in (stem, stem + ".gz"):
        if os.path.exists(os.path.join(d, name)):
            return os.path.join(d, name)
    sys.exit(f"{d}: no {stem}[.gz]")


def augment(x, spec, g):
    """train -augment's crop<P> and flip on a batch (N,C,H,W) of standardised
    images: each image shifted by (dy, dx) uniform in [−P, P] with zeros
    coming in (a crop of the zero-padded image), then mirrored with
    probability ½; drawn from g (convtrain draws from a counter-based
    generator: the same distribution, other draws)."""
    n, _, h, w = x.shape
    for item in filter(None, spec.split(",")):
        if item.startswith("crop"):
            p = int(item[4:])
            padded = F.pad(x, (p, p, p, p))
            d = torch.randint(0, 2 * p + 1, (n, 2), generator=g)
            x = torch.stack([padded[i, :, d[i, 0]:d[i, 0] + h, d[i, 1]:d[i, 1] + w] for i in range(n)])
        elif item == "flip":
            m = torch.rand(n, generator=g) < 0.5
            x = torch.where(m[:, None, None, None], x.flip(3), x)
        else:
            sys.exit(f"--augment: unknown item {item!r}")
    return x


def train_mnist(args, model, opt):
    xs = read_idx(find(args.data, "train-images-idx3-ubyte")).astype(np.float32)
    ys = read_idx(find(args.data, "train-labels-idx1-ubyte")).astype(np.int64)
    xt = read_idx(find(args.data, "t10k-images-idx3-ubyte")).astype(np.float32)
    yt = read_idx(find(args.data, "t10k-labels-idx1-ubyte")).astype(np.int64)
    mean, std = xs.mean(), xs.std()
    xs = torch.from_numpy((xs - mean) / std).unsqueeze(1)
    xt = torch.from_numpy((xt - mean) / std).unsqueeze(1)
    ys, yt = torch.from_numpy(ys), torch.from_numpy(yt)
    g = torch.Generator().manual_seed(args.seed)
    total = args.epochs * (len(xs) // args.batch)
    cosine = args.schedule == "cosine"
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)) if cosine else 1.0)
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        perm = torch.randperm(len(xs), generator=g)
        model.train()
        steps = len(xs) // args.batch  # the last partial batch is dropped, as in convtrain
        loss_sum = 0.0
        for s in range(steps):
            idx = perm[s * args.batch:(s + 1) * args.batch]
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(augment(xs[idx], args.augment, g)), ys[idx])
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item()
        dt = time.perf_counter() - t0
        model.eval()
        with torch.no_grad():
            correct = sum((model(xt[i:i + 1000]).argmax(1) == yt[i:i + 1000]).sum().item()
                          for i in range(0, len(xt), 1000))
        print(f"epoch {epoch}: loss {loss_sum / steps:.4f} test acc {100 * correct / len(xt):.2f}% "
              f"images/s={steps * args.batch / dt:.0f}", flush=True)


def bench(args, model, opt):
    g = torch.Generator().manual_seed(args.seed)
    x = torch.randn(args.batch, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (args.batch,), generator=g)

    def step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    dt = time.perf_counter() - t0
    print(f"torch-cpu images/s={args.steps * args.batch / dt:.1f} threads={args.threads} "
          f"batch={args.batch} steps={args.steps}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--data", default="")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--model", choices=("lenet", "resnet8"), default="lenet")
    p.add_argument("--schedule", choices=("constant", "cosine"), default="constant")
    p.add_argument("--weight-decay", type=float, default=0.0, help="L2 weight decay (train -weight-decay)")
    p.add_argument("--lr", type=float, default=0.05, help="learning rate (train -lr)")
    p.add_argument("--augment", default="", help="train -augment's LIST: crop<P> (random crop, P pixels of zero padding) and flip")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = net() if args.model == "lenet" else resnet8()
    glorot(model)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.weight_decay)
    if args.data:
        train_mnist(args, model, opt)
    else:
        bench(args, model, opt)


if __name__ == "__main__":
    main()
