#!/usr/bin/python3
"""Write cpuref/testdata/golden_torch.json and golden_layers_torch.json:
golden values for the cpuref tests, computed by an independent
implementation, PyTorch on the CPU in float64 with autograd (TF32 plays no
part on the CPU). golden_torch.json holds conv, max-pool, dense and the
losses; golden_layers_torch.json the layers of modern CNNs (batch norm in
training and evaluation, average pooling with padding, global average
pooling, activations), from its own seed so that either file's cases can
grow without changing the other's.

Run from the repository root with Debian's python3-torch (not a pyenv or
virtualenv python):

    /usr/bin/python3 scripts/gen-golden.py

Inputs are drawn from a fixed seed, so two runs with the same torch give the
same file except for the date in the header. Every float is written with
Python's repr, which round-trips float64 exactly.

Conventions, those of cpuref: tensors are row-major NCHW, conv weights KCRS;
"argmax" is the flat index into the whole input batch (PyTorch's per-plane
index plus (n*C + c)*H*W); the softmax cross-entropy is the mean over the
batch; MSE is (1/N) * sum 0.5*(t - y)^2. Each layer's backward pass is fed a
random "dy" (the gradient of sum(y * dy)).
"""

import datetime
import json
import os
import platform
import sys

import torch
import torch.nn.functional as F

OUT = os.path.join("cpuref", "testdata", "golden_torch.json")
OUT_LAYERS = os.path.join("cpuref", "testdata", "golden_layers_torch.json")
LAYERS_SEED = 20261207


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def uniform(gen, *shape):
    return (torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1)


def conv_case(gen, name, N, C, H, W, K, R, S, sh, sw, ph, pw, x=None, dy=None):
    x = uniform(gen, N, C, H, W) if x is None else x
    w = uniform(gen, K, C, R, S)
    b = uniform(gen, K)
    x.requires_grad_(True)
    w.requires_grad_(True)
    b.requires_grad_(True)
    y = F.conv2d(x, w, b, stride=(sh, sw), padding=(ph, pw))
    dy = uniform(gen, *y.shape) if dy is None else dy.reshape(y.shape)
    (y * dy).sum().backward()
    return {
        "name": name,
        "geom": dict(N=N, C=C, H=H, W=W, K=K, R=R, S=S, StrideH=sh, StrideW=sw, PadH=ph, PadW=pw),
        "x": flat(x), "w": flat(w), "b": flat(b), "dy": flat(dy),
        "y": flat(y), "dx": flat(x.grad), "dw": flat(w.grad), "db": flat(b.grad),
    }


def maxpool_case(gen, name, N, C, H, W, R, S, sh, sw):
    # A random permutation: no ties, so the first maximum is unambiguous.
    x = (torch.randperm(N * C * H * W, generator=gen).to(torch.float64) / (N * C * H * W) - 0.5)
    x = x.reshape(N, C, H, W).requires_grad_(True)
    y, idx = F.max_pool2d(x, (R, S), stride=(sh, sw), return_indices=True)
    dy = uniform(gen, *y.shape)
    (y * dy).sum().backward()
    plane = (torch.arange(N * C) * H * W).reshape(N, C, 1, 1)
    return {
        "name": name,
        "geom": dict(N=N, C=C, H=H, W=W, R=R, S=S, StrideH=sh, StrideW=sw),
        "x": flat(x), "dy": flat(dy), "y": flat(y),
        "argmax": [int(v) for v in (idx + plane).reshape(-1).tolist()],
        "dx": flat(x.grad),
    }


def dense_case(gen, name, n, fin, fout):
    x = uniform(gen, n, fin).requires_grad_(True)
    w = uniform(gen, fout, fin).requires_grad_(True)
    b = uniform(gen, fout).requires_grad_(True)
    y = F.linear(x, w, b)
    dy = uniform(gen, n, fout)
    (y * dy).sum().backward()
    return {"name": name, "n": n, "in": fin, "out": fout,
            "x": flat(x), "w": flat(w), "b": flat(b), "dy": flat(dy),
            "y": flat(y), "dx": flat(x.grad), "dw": flat(w.grad), "db": flat(b.grad)}


def softmax_ce_case(gen, name, n, classes, scale, offset):
    z = (uniform(gen, n, classes) * scale + offset).requires_grad_(True)
    labels = torch.randint(0, classes, (n,), generator=gen)
    loss = F.cross_entropy(z, labels, reduction="mean")
    loss.backward()
    return {"name": name, "n": n, "classes": classes, "logits": flat(z),
            "labels": [int(v) for v in labels.tolist()],
            "loss": float(loss), "dlogits": flat(z.grad)}


def mse_case(gen, name, n, dim):
    y = uniform(gen, n, dim).requires_grad_(True)
    t = uniform(gen, n, dim)
    loss = 0.5 * ((t - y) ** 2).sum() / n
    loss.backward()
    return {"name": name, "n": n, "dim": dim, "y": flat(y), "t": flat(t),
            "loss": float(loss), "dy": flat(y.grad)}


def batchnorm_case(gen, name, N, C, H, W, momentum=0.1, eps=1e-5):
    # Values with a per-channel offset and scale, so that the statistics
    # matter; running statistics start away from (0, 1).
    x = uniform(gen, N, C, H, W) * 2 + uniform(gen, 1, C, 1, 1) * 3
    gamma = uniform(gen, C).requires_grad_(True)
    beta = uniform(gen, C).requires_grad_(True)
    rm = uniform(gen, C)
    rv = uniform(gen, C).abs() + 0.5
    rm0, rv0 = rm.clone(), rv.clone()
    x.requires_grad_(True)
    y = F.batch_norm(x, rm, rv, gamma, beta, training=True, momentum=momentum, eps=eps)
    dy = uniform(gen, *y.shape)
    (y * dy).sum().backward()
    with torch.no_grad():
        mean = x.mean(dim=(0, 2, 3))
        invstd = 1 / torch.sqrt(x.var(dim=(0, 2, 3), unbiased=False) + eps)
        # Evaluation mode with the running statistics after the step.
        y_eval = F.batch_norm(x, rm, rv, gamma, beta, training=False, eps=eps)
    return {
        "name": name, "N": N, "C": C, "HW": H * W, "momentum": momentum, "eps": eps,
        "x": flat(x), "gamma": flat(gamma), "beta": flat(beta),
        "running_mean_before": flat(rm0), "running_var_before": flat(rv0),
        "y": flat(y), "mean": flat(mean), "invstd": flat(invstd),
        "running_mean_after": flat(rm), "running_var_after": flat(rv),
        "dy": flat(dy), "dx": flat(x.grad), "dgamma": flat(gamma.grad), "dbeta": flat(beta.grad),
        "y_eval": flat(y_eval),
    }


def avgpool_case(gen, name, N, C, H, W, R, S, sh, sw, ph, pw):
    x = uniform(gen, N, C, H, W).requires_grad_(True)
    y = F.avg_pool2d(x, (R, S), stride=(sh, sw), padding=(ph, pw), ceil_mode=False, count_include_pad=True)
    dy = uniform(gen, *y.shape)
    (y * dy).sum().backward()
    return {
        "name": name,
        "geom": dict(N=N, C=C, H=H, W=W, R=R, S=S, StrideH=sh, StrideW=sw, PadH=ph, PadW=pw),
        "x": flat(x), "dy": flat(dy), "y": flat(y), "dx": flat(x.grad),
    }


def global_avgpool_case(gen, name, N, C, H, W):
    x = uniform(gen, N, C, H, W).requires_grad_(True)
    y = F.adaptive_avg_pool2d(x, 1)
    dy = uniform(gen, *y.shape)
    (y * dy).sum().backward()
    return {"name": name, "N": N, "C": C, "HW": H * W,
            "x": flat(x), "dy": flat(dy), "y": flat(y), "dx": flat(x.grad)}


def activation_case(gen, name, fn):
    # 61 points on [-6, 6] (0 among them) plus 40 random ones in [-8, 8].
    x = torch.cat([torch.linspace(-6, 6, 61, dtype=torch.float64), uniform(gen, 40) * 8])
    x.requires_grad_(True)
    y = fn(x)
    dy = uniform(gen, *y.shape)
    (y * dy).sum().backward()
    return {"name": name, "x": flat(x), "dy": flat(dy), "y": flat(y), "dx": flat(x.grad)}


def layers_doc():
    gen = torch.Generator().manual_seed(LAYERS_SEED)
    batchnorm = [
        batchnorm_case(gen, "2x3x4x5", 2, 3, 4, 5),
        batchnorm_case(gen, "two-values-per-channel", 1, 2, 1, 2),
        batchnorm_case(gen, "batchnorm1d-like-hw1", 4, 3, 1, 1),
        batchnorm_case(gen, "N1-odd", 1, 4, 3, 3),
        batchnorm_case(gen, "C1-large-channel", 3, 1, 10, 11),
        batchnorm_case(gen, "momentum0.3-eps1e-3", 2, 2, 3, 3, momentum=0.3, eps=1e-3),
    ]
    avgpool = [
        avgpool_case(gen, "2x2-stride2", 2, 3, 4, 6, 2, 2, 2, 2, 0, 0),
        avgpool_case(gen, "2x2-stride2-odd", 1, 2, 5, 7, 2, 2, 2, 2, 0, 0),
        avgpool_case(gen, "3x3-stride1-pad1", 2, 2, 5, 4, 3, 3, 1, 1, 1, 1),
        avgpool_case(gen, "3x3-stride2-pad1", 1, 3, 7, 8, 3, 3, 2, 2, 1, 1),
        avgpool_case(gen, "2x2-stride2-pad1", 1, 1, 3, 3, 2, 2, 2, 2, 1, 1),
        avgpool_case(gen, "4x2-stride3x2-pad2x1", 2, 2, 9, 6, 4, 2, 3, 2, 2, 1),
        avgpool_case(gen, "window-larger-than-input", 1, 2, 1, 2, 3, 3, 1, 1, 1, 1),
    ]
    global_avgpool = [
        global_avgpool_case(gen, "1x1", 1, 1, 1, 1),
        global_avgpool_case(gen, "2x3x4x4", 2, 3, 4, 4),
        global_avgpool_case(gen, "3x5x7x7", 3, 5, 7, 7),
    ]
    activations = [
        activation_case(gen, "leaky-relu/slope=0.01", lambda x: F.leaky_relu(x, 0.01)),
        activation_case(gen, "leaky-relu/slope=0.2", lambda x: F.leaky_relu(x, 0.2)),
        activation_case(gen, "sigmoid", torch.sigmoid),
        activation_case(gen, "tanh", torch.tanh),
        activation_case(gen, "silu", F.silu),
        activation_case(gen, "gelu/approximate=none", lambda x: F.gelu(x, approximate="none")),
        activation_case(gen, "gelu/approximate=tanh", lambda x: F.gelu(x, approximate="tanh")),
    ]
    header = {
        "description": "Golden values for cpuref's modern-CNN layers, computed by PyTorch on the CPU in float64 "
                       "with autograd. Batch norm: F.batch_norm in training mode (running statistics updated "
                       "in place, *_after), then evaluation mode with the updated statistics (y_eval); mean and "
                       "invstd are the batch mean and 1/sqrt(biased variance + eps). Average pooling: "
                       "F.avg_pool2d with count_include_pad=True, ceil_mode=False. Global average pooling: "
                       "F.adaptive_avg_pool2d(x, 1). Each backward pass is fed a random dy (the gradient of "
                       "sum(y * dy)). Do not edit; regenerate with the command below.",
        "command": "/usr/bin/python3 scripts/gen-golden.py",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": LAYERS_SEED,
    }
    return {"header": header, "batchnorm": batchnorm, "avgpool": avgpool,
            "global_avgpool": global_avgpool, "activations": activations}


def write(path, doc):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(doc, f, indent=None, separators=(",", ":"))
        f.write("\n")
    print("wrote %s (%d bytes) with torch %s" % (path, os.path.getsize(path), torch.__version__), file=sys.stderr)


def main():
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(20261125)

    # The golden vector of DESIGN.md, fed through PyTorch: dw must be
    # [[0.044606, 0.094061], [0.011262, 0.068288]].
    o = torch.tensor([[0.51, 0.9, 0.88, 0.84, 0.05], [0.4, 0.62, 0.22, 0.59, 0.1],
                      [0.11, 0.2, 0.74, 0.33, 0.14], [0.47, 0.01, 0.85, 0.7, 0.09],
                      [0.76, 0.19, 0.72, 0.17, 0.57]], dtype=torch.float64).reshape(1, 1, 5, 5)
    delta = torch.tensor([[0, 0, 0.0686, 0], [0, 0.0364, 0, 0], [0, 0.0467, 0, 0],
                          [0, 0, 0, -0.0681]], dtype=torch.float64)

    conv = [
        conv_case(gen, "design-golden-vector", 1, 1, 5, 5, 1, 2, 2, 1, 1, 0, 0, x=o, dy=delta),
        conv_case(gen, "1x1", 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0),
        conv_case(gen, "3x3-pad1", 2, 3, 7, 6, 4, 3, 3, 1, 1, 1, 1),
        conv_case(gen, "3x2-stride2x3-pad0x1", 1, 2, 9, 8, 3, 3, 2, 2, 3, 0, 1),
        conv_case(gen, "5x5-pad2-kernel-as-large-as-input", 3, 1, 5, 5, 2, 5, 5, 1, 1, 2, 2),
        conv_case(gen, "2x4-stride3x2-pad2x0", 2, 4, 8, 10, 5, 2, 4, 3, 2, 2, 0),
        conv_case(gen, "mnist2-like", 1, 8, 12, 12, 4, 5, 5, 1, 1, 0, 0),
        conv_case(gen, "3x3-stride2-pad1-odd", 2, 5, 11, 9, 7, 3, 3, 2, 2, 1, 1),
    ]
    maxpool = [
        maxpool_case(gen, "2x2-stride2", 2, 3, 4, 6, 2, 2, 2, 2),
        maxpool_case(gen, "2x2-stride2-odd-size", 1, 2, 5, 7, 2, 2, 2, 2),
        maxpool_case(gen, "3x3-stride1-overlapping", 2, 2, 6, 5, 3, 3, 1, 1),
        maxpool_case(gen, "2x3-stride1x2", 1, 3, 7, 9, 2, 3, 1, 2),
    ]
    dense = [
        dense_case(gen, "1x1x1", 1, 1, 1),
        dense_case(gen, "3x5x4", 3, 5, 4),
        dense_case(gen, "7x13x10", 7, 13, 10),
    ]
    softmax_ce = [
        softmax_ce_case(gen, "1x1", 1, 1, 1.0, 0.0),
        softmax_ce_case(gen, "4x10", 4, 10, 3.0, 0.0),
        softmax_ce_case(gen, "5x7-large-offset", 5, 7, 20.0, 500.0),
    ]
    mse = [
        mse_case(gen, "1x1", 1, 1),
        mse_case(gen, "4x3", 4, 3),
        mse_case(gen, "6x10", 6, 10),
    ]

    header = {
        "description": "Golden values for cpuref, computed by PyTorch on the CPU in float64 with autograd. "
                       "Do not edit; regenerate with the command below.",
        "command": "/usr/bin/python3 scripts/gen-golden.py",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": 20261125,
    }
    doc = {"header": header, "conv": conv, "maxpool": maxpool, "dense": dense,
           "softmax_ce": softmax_ce, "mse": mse}
    write(OUT, doc)
    write(OUT_LAYERS, layers_doc())


if __name__ == "__main__":
    main()
