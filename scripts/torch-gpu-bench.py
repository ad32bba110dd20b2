#!/usr/bin/env python3
"""PyTorch/cuDNN on the GPU: the peer of convtrain's GPU kernels, run by
scripts/gpu-check.sh on the same machine, printed as markdown (and as JSON
with --json FILE, which scripts/gpu-report.py reads).

    python3 scripts/torch-gpu-bench.py [--part conv,net,mnist] [--reps 50] [--warmup 10]
                                       [--shapes REGEX] [--precisions fp32,tf32,bf16]
                                       [--mnist DIR] [--json FILE]

Parts (--part, comma-separated; default conv,net):

conv   The conv shape suite (SHAPES; gpu/bench_suite_test.go's peerShapes
       is the same list, and TestPeerShapes holds them equal), each pass
       timed alone through aten::convolution and aten::convolution_backward
       (cuDNN): forward, backward-data and backward-filter; the two convs
       of the default MNIST network at batch 64 and 512, ResNet-50's 3×3
       convs at N=64 (C=K=64 at 56×56, 128 at 28×28, 256 at 14×14, 512 at
       7×7), its 1×1 and stride-2 convs and its stem. GFLOP/s counts
       2·N·K·P·Q·C·R·S per pass. --shapes REGEX keeps the matching names;
       each shape at each precision of --precisions (see Precision).
net    The default network (conv 1→8 5×5, ReLU, max-pool 2, conv 8→16 5×5,
       ReLU, max-pool 2, dense 256→10, softmax cross-entropy; SGD lr 0.05,
       momentum 0.9) on random data kept on the device: the median
       training step at batch 64 and 512 and one epoch of 60000 images.
mnist  One epoch of that network on MNIST (--mnist DIR: the four IDX
       files, raw or gzip), as `train -epochs 1` runs it: inputs
       standardised with the training set's mean and deviation, Glorot
       uniform weights and zero biases, batch 64 in a random order drawn
       on the device (the last partial batch left out), SGD lr 0.05 with
       momentum 0.9 decayed to 0 along a half cosine step by step, data
       gathered on the device; after five warm-up steps of a throwaway
       model. Reports the epoch's training time and images/s (evaluation
       excluded) and the test accuracy. --limit N trains on the first N
       images only (a check of the script).

Precision: net and mnist are fp32 with TF32 off for matmul and cuDNN, the
exact-FP32 comparison. conv times each shape at every precision of
--precisions (default fp32,tf32,bf16), the peers of BenchmarkConvPeer's
prec=fp32, tf32 and bf16: fp32 with TF32 off; tf32 with
cudnn.allow_tf32 on (float32 tensors, TF32 tensor cores); bf16 on
bfloat16 tensors (cuDNN accumulates in float32 and writes bfloat16), as a
bf16 network holds its activations, where ours reads float32 and packs
(the packing is in our time). cudnn.benchmark is on, so cuDNN runs its
fastest algorithm for each shape and precision.

Timing of a conv pass, the same as convtrain's benchGPU (gpu/bench_test.go):
random inputs uniform in [-1, 1) rotated among copies that together exceed
128 MiB (more than twice an H100's 50 MB L2); --warmup untimed runs; then
--reps runs queued in chunks of at most 256 with a CUDA event after each
and no synchronisation in between, each chunk behind enough fills of a
64 MiB scratch tensor to keep the GPU busy while the host queues it (from
the host's measured queueing time and the fill's measured time), so the
interval between two events is the kernel's time, not the launch cost;
the median interval. The outputs come from PyTorch's caching allocator
(the same block run after run); convtrain's rotate with the inputs.

--device cpu runs the same code on the CPU with wall-clock timing (a check
of this script on machines without a GPU; its numbers are not the peer).
"""

import argparse
import gzip
import json
import math
import os
import re
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


# (name, N, C, H, W, K, R, S, stride, pad)
SHAPES = [
    ("mnist-conv1-b64", 64, 1, 28, 28, 8, 5, 5, 1, 0),
    ("mnist-conv2-b64", 64, 8, 12, 12, 16, 5, 5, 1, 0),
    ("mnist-conv1-b512", 512, 1, 28, 28, 8, 5, 5, 1, 0),
    ("mnist-conv2-b512", 512, 8, 12, 12, 16, 5, 5, 1, 0),
    ("resnet-3x3-64x56", 64, 64, 56, 56, 64, 3, 3, 1, 1),
    ("resnet-3x3-128x28", 64, 128, 28, 28, 128, 3, 3, 1, 1),
    ("resnet-3x3-256x14", 64, 256, 14, 14, 256, 3, 3, 1, 1),
    ("resnet-3x3-512x7", 64, 512, 7, 7, 512, 3, 3, 1, 1),
    ("resnet-1x1-64to256x56", 64, 64, 56, 56, 256, 1, 1, 1, 0),
    ("resnet-1x1-256to64x56", 64, 256, 56, 56, 64, 1, 1, 1, 0),
    ("resnet-1x1-512to128x28", 64, 512, 28, 28, 128, 1, 1, 1, 0),
    ("resnet-1x1-1024to256x14", 64, 1024, 14, 14, 256, 1, 1, 1, 0),
    ("resnet-1x1-2048to512x7", 64, 2048, 7, 7, 512, 1, 1, 1, 0),
    ("resnet-3x3s2-128x56", 64, 128, 56, 56, 128, 3, 3, 2, 1),
    ("resnet-3x3s2-256x28", 64, 256, 28, 28, 256, 3, 3, 2, 1),
    ("resnet-3x3s2-512x14", 64, 512, 14, 14, 512, 3, 3, 2, 1),
    ("resnet-1x1s2-256to512x56", 64, 256, 56, 56, 512, 1, 1, 2, 0),
    ("resnet-1x1s2-512to1024x28", 64, 512, 28, 28, 1024, 1, 1, 2, 0),
    ("resnet-1x1s2-1024to2048x14", 64, 1024, 14, 14, 2048, 1, 1, 2, 0),
    ("resnet-stem-7x7s2", 64, 3, 224, 224, 64, 7, 7, 2, 3),
]

ROTATE_BYTES = 128 << 20  # gpu/bench_test.go's benchRotateBytes
CHUNK = 256               # benchChunk
SCRATCH = 1 << 24         # benchScratch: floats of the blocker's tensor


class Timer:
    """Times fn(i), i counting the runs: CUDA events between runs queued
    back to back behind a blocker on a GPU (see the module doc), the wall
    clock per run on the CPU."""

    def __init__(self, device, warmup, reps):
        self.device = device
        self.cuda = device.type == "cuda"
        self.warmup = warmup
        self.reps = reps
        if self.cuda:
            self.scratch = torch.empty(SCRATCH, device=device)
            self.events = [torch.cuda.Event(enable_timing=True) for _ in range(CHUNK + 1)]

    def median_ms(self, fn):
        """The median time of one fn(i) in ms and the host's queueing time
        per run in µs."""
        if not self.cuda:
            for i in range(self.warmup):
                fn(i)
            times = []
            for i in range(self.reps):
                t0 = time.perf_counter()
                fn(self.warmup + i)
                times.append((time.perf_counter() - t0) * 1e3)
            return statistics.median(times), float("nan")
        ev = self.events
        count = [0]

        def queue(n):
            ev[0].record()
            for k in range(n):
                fn(count[0])
                count[0] += 1
                ev[k + 1].record()

        queue(self.warmup)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        queue(max(self.warmup, 1))
        host_ms = (time.perf_counter() - t0) * 1e3 / max(self.warmup, 1)
        torch.cuda.synchronize()
        ev[0].record()
        for _ in range(4):
            self.scratch.fill_(0)
        ev[1].record()
        torch.cuda.synchronize()
        fill_ms = max(ev[0].elapsed_time(ev[1]) / 4, 1e-3)
        times = []
        done = 0
        while done < self.reps:
            n = min(CHUNK, self.reps - done)
            fills = min(4096, max(1, math.ceil(1.5 * n * host_ms / fill_ms)))
            for _ in range(fills):
                self.scratch.fill_(0)
            queue(n)
            torch.cuda.synchronize()
            times += [ev[k].elapsed_time(ev[k + 1]) for k in range(n)]
            done += n
        return statistics.median(times), host_ms * 1e3


def uniform(shape, gen, device):
    return torch.rand(shape, generator=gen, device=device) * 2 - 1


PRECISIONS = ("fp32", "tf32", "bf16")


def conv_suite(args, device, timer, out):
    shapes = [s for s in SHAPES if re.search(args.shapes, s[0])]
    precs = args.precisions.split(",")
    print(f"## Conv passes, PyTorch/cuDNN: {', '.join(PRECISION_DOC[p] for p in precs)}")
    print()
    print("| shape | N,C,H,W → K,R×S, stride, pad | precision | pass | median ms | GFLOP/s |")
    print("| --- | --- | --- | --- | ---: | ---: |")
    aten = torch.ops.aten
    gen = torch.Generator(device=device)
    gen.manual_seed(1)
    for name, n, c, h, w, k, r, s, stride, pad in shapes:
        p = (h + 2 * pad - r) // stride + 1
        q = (w + 2 * pad - s) // stride + 1
        flops = 2.0 * n * k * p * q * c * r * s
        xlen, ylen = n * c * h * w, n * k * p * q
        nc = 1 if not timer.cuda else max(1, -(-ROTATE_BYTES // (4 * (xlen + ylen))))
        x32 = uniform((nc, n, c, h, w), gen, device)
        dy32 = uniform((nc, n, k, p, q), gen, device)
        w32 = uniform((k, c, r, s), gen, device)
        st, pd, dl, op = [stride, stride], [pad, pad], [1, 1], [0, 0]
        geo = f"{n},{c},{h},{w} → {k},{r}×{s}, {stride}, {pad}"
        for prec in precs:
            # bf16: the operands in bfloat16, as a bf16 network (autocast)
            # holds its activations; cuDNN accumulates in float32 and
            # writes bfloat16. tf32: float32 operands, TF32 tensor cores.
            xall, dyall, wt = (x32, dy32, w32) if prec != "bf16" else (
                x32.bfloat16(), dy32.bfloat16(), w32.bfloat16())
            torch.backends.cudnn.allow_tf32 = prec == "tf32"

            def fwd(i):
                aten.convolution(xall[i % nc], wt, None, st, pd, dl, False, op, 1)

            def dgrad(i):
                aten.convolution_backward(dyall[i % nc], xall[i % nc], wt, None, st, pd, dl, False, op, 1,
                                          [True, False, False])

            def wgrad(i):
                aten.convolution_backward(dyall[i % nc], xall[i % nc], wt, None, st, pd, dl, False, op, 1,
                                          [False, True, False])

            for pname, fn in (("fwd", fwd), ("bwd-data", dgrad), ("bwd-filter", wgrad)):
                ms, host_us = timer.median_ms(fn)
                print(f"| {name} | {geo} | {prec} | {pname} | {ms:.4f} | {flops / ms / 1e6:.1f} |")
                out.append({"shape": name, "precision": prec, "pass": pname, "n": n, "c": c, "h": h, "w": w,
                            "k": k, "r": r, "s": s, "stride": stride, "pad": pad, "flops": flops, "ms": ms,
                            "gflops": flops / ms / 1e6, "host_us": None if math.isnan(host_us) else host_us,
                            "copies": nc})
            del xall, dyall, wt
        torch.backends.cudnn.allow_tf32 = False
        del x32, dy32, w32
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print()


PRECISION_DOC = {"fp32": "fp32 (TF32 off)", "tf32": "tf32 (cudnn.allow_tf32)",
                 "bf16": "bf16 (bfloat16 tensors, float32 accumulation)"}


def net():
    return nn.Sequential(
        nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(256, 10))


def glorot(model):
    """Glorot-uniform weights and zero biases, as convtrain initialises."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def network(args, device, timer, out):
    print("## Default network on random data, PyTorch eager fp32 (TF32 off)")
    print()
    print("| batch | median step ms | images/s (step) | epoch s (60000 images) | images/s (epoch) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    images = args.limit or 60000
    g = torch.Generator(device="cpu").manual_seed(1)
    xall = torch.randn(images, 1, 28, 28, generator=g).to(device)
    yall = torch.randint(0, 10, (images,), generator=g).to(device)
    for batch in (64, 512):
        torch.manual_seed(1)
        model = net().to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        perm = torch.randperm(images, generator=g).to(device)
        steps = images // batch

        def step(i):
            idx = perm[(i % steps) * batch:(i % steps + 1) * batch]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(xall[idx]), yall[idx]).backward()
            opt.step()

        ms, _ = timer.median_ms(step)
        # One epoch, end to end, after the runs above.
        sync(device)
        t0 = time.perf_counter()
        for i in range(steps):
            step(i)
        sync(device)
        epoch = time.perf_counter() - t0
        scale = 60000 / images
        print(f"| {batch} | {ms:.4f} | {batch / ms * 1e3:.0f} | {epoch * scale:.3f} | {steps * batch / epoch:.0f} |")
        out.append({"batch": batch, "step_ms": ms, "images_per_s_step": batch / ms * 1e3,
                    "epoch_s": epoch * scale, "images_per_s_epoch": steps * batch / epoch})
    print()


def read_idx(folder, stem):
    """The array of an IDX file stem (raw, .gz, or gzip without suffix)."""
    for name in (stem, stem + ".gz"):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                data = f.read()
            if data[:2] == b"\x1f\x8b":
                data = gzip.decompress(data)
            if data[:2] != b"\0\0" or data[2] != 8:
                raise ValueError(f"{path}: not an IDX file of unsigned bytes")
            dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(data[3])]
            body = data[4 + 4 * len(dims):]
            if len(body) != math.prod(dims):
                raise ValueError(f"{path}: {len(body)} bytes of data, want {math.prod(dims)} for {dims}")
            return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(dims)
    raise FileNotFoundError(f"{folder}: no {stem} or {stem}.gz")


def mnist_epoch(args, device, out):
    print("## One MNIST epoch of the default network, PyTorch eager fp32 (TF32 off)")
    print()
    xtr = read_idx(args.mnist, "train-images-idx3-ubyte")
    ytr = read_idx(args.mnist, "train-labels-idx1-ubyte")
    xte = read_idx(args.mnist, "t10k-images-idx3-ubyte")
    yte = read_idx(args.mnist, "t10k-labels-idx1-ubyte")
    if args.limit:
        xtr, ytr = xtr[:args.limit], ytr[:args.limit]
    xf = xtr.to(torch.float64)
    mean, std = xf.mean().item(), xf.std(unbiased=False).item()

    def prep(x):
        return ((x.to(torch.float32) - mean) / std).unsqueeze(1).to(device)

    xtr, xte = prep(xtr), prep(xte)
    ytr, yte = ytr.to(torch.int64).to(device), yte.to(torch.int64).to(device)
    batch, lr, momentum = 64, 0.05, 0.9
    steps = len(xtr) // batch
    gen = torch.Generator(device=device)
    gen.manual_seed(1)

    def make():
        torch.manual_seed(1)
        model = glorot(net()).to(device)
        return model, torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)

    def step(model, opt, idx, rate):
        for group in opt.param_groups:
            group["lr"] = rate
        opt.zero_grad(set_to_none=True)
        logits = model(xtr[idx])
        loss = F.cross_entropy(logits, ytr[idx])
        loss.backward()
        opt.step()
        return loss.detach(), (logits.detach().argmax(1) == ytr[idx]).sum()

    model, opt = make()  # warm-up: cuDNN's algorithm search, the allocator
    for s in range(min(5, steps)):
        step(model, opt, torch.arange(s * batch, (s + 1) * batch, device=device), lr)
    model, opt = make()
    sync(device)
    t0 = time.perf_counter()
    perm = torch.randperm(len(xtr), generator=gen, device=device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    for s in range(steps):
        rate = lr * 0.5 * (1 + math.cos(math.pi * s / steps))
        loss, right = step(model, opt, perm[s * batch:(s + 1) * batch], rate)
        loss_sum += loss
        correct += right
    sync(device)
    epoch = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():
        hits = sum((model(xte[i:i + 1000]).argmax(1) == yte[i:i + 1000]).sum().item()
                   for i in range(0, len(xte), 1000))
    r = {"batch": batch, "train_images": len(xtr), "steps": steps, "epoch_s": epoch,
         "images_per_s": steps * batch / epoch, "loss": loss_sum.item() / steps,
         "train_accuracy": correct.item() / (steps * batch), "test_accuracy": hits / len(xte)}
    out.update(r)
    print("| images | steps of 64 | train s | images/s | mean loss | train acc | test acc |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {r['train_images']} | {steps} | {epoch:.3f} | {r['images_per_s']:.0f} | {r['loss']:.4f} | "
          f"{100 * r['train_accuracy']:.2f}% | {100 * r['test_accuracy']:.2f}% |")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", default="conv,net", help="comma-separated: conv, net, mnist (default conv,net)")
    ap.add_argument("--reps", type=int, default=50, help="timed runs per measurement (median)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed runs first")
    ap.add_argument("--shapes", default="", help="conv: only the shapes whose name matches this regex")
    ap.add_argument("--precisions", default="fp32,tf32,bf16",
                    help="conv: comma-separated fp32, tf32, bf16 (default all three)")
    ap.add_argument("--mnist", default="", help="mnist: folder of the four MNIST IDX files")
    ap.add_argument("--limit", type=int, default=0, help="net and mnist: use only this many training images")
    ap.add_argument("--json", default="", help="also write the figures to this JSON file")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (script check only)")
    args = ap.parse_args()
    parts = args.part.split(",")
    if args.reps < 1 or not 0 <= args.warmup <= CHUNK or args.limit < 0:
        ap.error(f"--reps must be ≥ 1, --warmup 0 to {CHUNK}, --limit ≥ 0")
    if not set(parts) <= {"conv", "net", "mnist"}:
        ap.error(f"--part {args.part}: want conv, net and/or mnist")
    if "mnist" in parts and not args.mnist:
        ap.error("--part mnist needs --mnist DIR")
    if not args.precisions or not set(args.precisions.split(",")) <= set(PRECISIONS):
        ap.error(f"--precisions {args.precisions}: want fp32, tf32 and/or bf16")
    try:
        re.compile(args.shapes)
    except re.error as e:
        ap.error(f"--shapes {args.shapes!r}: {e}")

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("torch-gpu-bench: torch has no usable CUDA device", file=sys.stderr)
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True

    info = {"torch": torch.__version__, "device_type": device.type, "reps": args.reps,
            "warmup": args.warmup, "rotate_bytes": ROTATE_BYTES}
    print("# PyTorch/cuDNN peer")
    print()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(name=props.name, sms=props.multi_processor_count, memory_bytes=props.total_memory,
                    compute_capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
        print(f"- device: {props.name}, {props.multi_processor_count} SMs, "
              f"{props.total_memory / 2**30:.1f} GiB, compute capability {props.major}.{props.minor}")
        print(f"- torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    else:
        info.update(name=f"CPU ({torch.get_num_threads()} threads)")
        print(f"- device: CPU ({torch.get_num_threads()} threads), torch {torch.__version__}: "
              "a check of the script, not the GPU peer")
    print(f"- fp32, TF32 off (matmul and cuDNN) unless a conv pass's precision is tf32, cudnn.benchmark on; "
          f"median of {args.reps} runs after {args.warmup} warm-up runs")
    print()
    result = {"info": info}
    timer = Timer(device, args.warmup, args.reps)
    if "conv" in parts:
        result["conv"] = []
        conv_suite(args, device, timer, result["conv"])
    if "net" in parts:
        result["net"] = []
        network(args, device, timer, result["net"])
    if "mnist" in parts:
        result["mnist"] = {}
        mnist_epoch(args, device, result["mnist"])
    if args.json:
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(result, f, indent=1)
        os.replace(tmp, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
