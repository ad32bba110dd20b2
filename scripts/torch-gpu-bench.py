#!/usr/bin/env python3
"""PyTorch/cuDNN on the GPU: the peer of convtrain's GPU kernels, run by
scripts/gpu-check.sh on the same machine and printed as markdown.

    python3 scripts/torch-gpu-bench.py [--reps 50] [--warmup 10] [--quick]

Two parts:

1. The conv shape suite of issue 5, each pass timed alone through
   aten::convolution and aten::convolution_backward (cuDNN): forward,
   backward-data and backward-filter; the two convs of the default MNIST
   network at batch 64 and 512, ResNet-50's 3×3 convs at N=64 (C=K=64 at
   56×56, 128 at 28×28, 256 at 14×14, 512 at 7×7), its 1×1 and stride-2
   convs and its stem. GFLOP/s counts 2·N·K·P·Q·C·R·S per pass.
2. The default network (conv 1→8 5×5, ReLU, max-pool 2, conv 8→16 5×5,
   ReLU, max-pool 2, dense 256→10, softmax cross-entropy; SGD lr 0.05,
   momentum 0.9), as `train` builds it: the median training step at batch
   64 and 512, and one epoch of 60000 images (random inputs kept on the
   device, batches gathered on the device by a random permutation, as
   convtrain's GPU backend does; the last partial batch is left out).

FP32 only: TF32 is off for matmul and cuDNN, so this is the exact-FP32
comparison. cudnn.benchmark is on, so cuDNN runs its fastest algorithm for
each shape. Timing: CUDA events around each run after --warmup runs, the
median of --reps runs; inputs rotate among copies that together exceed
100 MB (twice an H100's L2), so the L2 does not hold them between runs.

--device cpu runs the same code on the CPU with wall-clock timing (a check
of this script on machines without a GPU; its numbers are not the peer).
"""

import argparse
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

QUICK = {"mnist-conv1-b64", "mnist-conv2-b64", "resnet-3x3-512x7"}
ROTATE_BYTES = 100 << 20


class Timer:
    """Times one callable: CUDA events on a GPU, perf_counter on the CPU."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def median_ms(self, fn, warmup, reps):
        for i in range(warmup):
            fn(i)
        if self.cuda:
            torch.cuda.synchronize()
        times = []
        for i in range(reps):
            if self.cuda:
                start = torch.cuda.Event(enable_timing=True)
                end = torch.cuda.Event(enable_timing=True)
                start.record()
                fn(warmup + i)
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                t0 = time.perf_counter()
                fn(warmup + i)
                times.append((time.perf_counter() - t0) * 1e3)
        return statistics.median(times)


def copies(nbytes):
    """How many input copies to rotate so they exceed ROTATE_BYTES (1..8)."""
    return max(1, min(8, -(-ROTATE_BYTES // max(nbytes, 1))))


def conv_suite(args, device, timer):
    shapes = [s for s in SHAPES if not args.quick or s[0] in QUICK]
    print("## Conv passes, PyTorch/cuDNN fp32 (TF32 off)")
    print()
    print("| shape | N,C,H,W → K,R×S, stride, pad | pass | median ms | GFLOP/s |")
    print("| --- | --- | --- | ---: | ---: |")
    aten = torch.ops.aten
    for name, n, c, h, w, k, r, s, stride, pad in shapes:
        p = (h + 2 * pad - r) // stride + 1
        q = (w + 2 * pad - s) // stride + 1
        flops = 2.0 * n * k * p * q * c * r * s
        nc = copies(4 * (n * c * h * w + n * k * p * q))
        g = torch.Generator(device="cpu").manual_seed(1)
        xs = [torch.randn(n, c, h, w, generator=g).to(device) for _ in range(nc)]
        dys = [torch.randn(n, k, p, q, generator=g).to(device) for _ in range(nc)]
        wt = (torch.randn(k, c, r, s, generator=g) * 0.1).to(device)
        st, pd, dl, op = [stride, stride], [pad, pad], [1, 1], [0, 0]

        def fwd(i):
            aten.convolution(xs[i % nc], wt, None, st, pd, dl, False, op, 1)

        def dgrad(i):
            aten.convolution_backward(dys[i % nc], xs[i % nc], wt, None, st, pd, dl, False, op, 1,
                                      [True, False, False])

        def wgrad(i):
            aten.convolution_backward(dys[i % nc], xs[i % nc], wt, None, st, pd, dl, False, op, 1,
                                      [False, True, False])

        geo = f"{n},{c},{h},{w} → {k},{r}×{s}, {stride}, {pad}"
        for pname, fn in (("fwd", fwd), ("bwd-data", dgrad), ("bwd-filter", wgrad)):
            ms = timer.median_ms(fn, args.warmup, args.reps)
            print(f"| {name} | {geo} | {pname} | {ms:.4f} | {flops / ms / 1e6:.1f} |")
        del xs, dys, wt
        if device.type == "cuda":
            torch.cuda.empty_cache()
    print()


def net():
    return nn.Sequential(
        nn.Conv2d(1, 8, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(256, 10))


def network(args, device, timer):
    print("## Default network, PyTorch eager fp32 (TF32 off)")
    print()
    print("| batch | median step ms | images/s (step) | epoch s (60000 images) | images/s (epoch) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    images = 60000 if not args.quick else 6000
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

        ms = timer.median_ms(step, args.warmup, args.reps)
        # One epoch, end to end, after the warm-up above.
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for i in range(steps):
            step(i)
        if device.type == "cuda":
            torch.cuda.synchronize()
        epoch = time.perf_counter() - t0
        scale = 60000 / images
        print(f"| {batch} | {ms:.4f} | {batch / ms * 1e3:.0f} | {epoch * scale:.3f} | {steps * batch / epoch:.0f} |")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=50, help="timed runs per measurement (median)")
    ap.add_argument("--warmup", type=int, default=10, help="untimed runs first")
    ap.add_argument("--quick", action="store_true", help="three conv shapes and a tenth of an epoch")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (script check only)")
    ap.add_argument("--skip-net", action="store_true", help="conv passes only")
    args = ap.parse_args()
    if args.reps < 1 or args.warmup < 0:
        ap.error("--reps must be ≥ 1 and --warmup ≥ 0")

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("torch-gpu-bench: torch has no usable CUDA device", file=sys.stderr)
        return 1
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True

    print("# PyTorch/cuDNN peer")
    print()
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        print(f"- device: {props.name}, {props.multi_processor_count} SMs, "
              f"{props.total_memory / 2**30:.1f} GiB, compute capability {props.major}.{props.minor}")
        print(f"- torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
    else:
        print(f"- device: CPU ({torch.get_num_threads()} threads), torch {torch.__version__}: "
              "a check of the script, not the GPU peer")
    print(f"- fp32, TF32 off (matmul and cuDNN), cudnn.benchmark on; median of {args.reps} runs "
          f"after {args.warmup} warm-up runs{', --quick' if args.quick else ''}")
    print()
    timer = Timer(device)
    conv_suite(args, device, timer)
    if not args.skip_net:
        network(args, device, timer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
