#!/usr/bin/python3
"""Write cpuref/testdata/optim_torch.json: optimiser trajectories computed by
an independent implementation, PyTorch's torch.optim.SGD (nesterov=True),
torch.optim.Adam and torch.optim.AdamW on the CPU, for the cpuref optimiser
tests (cpuref/adam_test.go).

Run from the repository root with Debian's python3-torch (not a pyenv or
virtualenv python):

    /usr/bin/python3 scripts/gen-optim-golden.py

Each case starts from a parameter vector p0 with zero optimiser state and
applies `steps` updates; the gradient of step t is given (grads[t], drawn
once, not computed from p), so the file tests the update rule alone. After
every step the file records the parameter p, the first moment m (SGD's
momentum buffer, Adam's exp_avg) and the second moment v (Adam's
exp_avg_sq; absent for SGD). Every case is run in float64 and in float32;
the hyperparameters are float32 values (so float32 and float64 runs see the
same numbers), and every float is written with Python's repr of the
float64 value, which round-trips exactly (a float32 value is written as
the float64 it converts to).

Inputs come from a fixed seed, so two runs with the same torch give the
same file except for the date in the header. The single-tensor (for-loop)
implementations are used (foreach=False), PyTorch's default on the CPU.
"""

import datetime
import json
import platform

import numpy as np
import torch

SEED = 20261125
N = 24  # elements per case
STEPS = 12


def f32(x):
    """x rounded to float32, as a Python float."""
    return float(np.float32(x))


def inputs(rng):
    p0 = rng.standard_normal(N)
    grads = rng.standard_normal((STEPS, N))
    # Zero, tiny and large gradients, and a sign flip half way.
    grads[:, 0] = 0.0
    grads[:, 1] *= 1e-6
    grads[:, 2] *= 1e3
    grads[STEPS // 2:, 3] *= -1
    return p0, grads


CASES = [
    # name, optimiser, hyperparameters (float32 values)
    ("sgd-nesterov", "sgd", dict(lr=f32(0.1), momentum=f32(0.9), weight_decay=0.0, nesterov=True)),
    ("sgd-nesterov-wd", "sgd", dict(lr=f32(0.05), momentum=f32(0.8), weight_decay=f32(0.01), nesterov=True)),
    ("adam", "adam", dict(lr=f32(0.01), betas=(f32(0.9), f32(0.999)), eps=f32(1e-8), weight_decay=0.0)),
    ("adam-l2", "adam", dict(lr=f32(0.003), betas=(f32(0.8), f32(0.99)), eps=f32(1e-6), weight_decay=f32(0.1))),
    ("adam-eps", "adam", dict(lr=f32(0.1), betas=(f32(0.5), f32(0.75)), eps=f32(0.25), weight_decay=0.0)),
    ("adamw", "adamw", dict(lr=f32(0.01), betas=(f32(0.9), f32(0.999)), eps=f32(1e-8), weight_decay=f32(0.01))),
    ("adamw-strong", "adamw", dict(lr=f32(0.05), betas=(f32(0.95), f32(0.9)), eps=f32(1e-7), weight_decay=f32(0.5))),
]


def run(kind, hyper, p0, grads, dtype):
    p = torch.tensor(p0, dtype=dtype, requires_grad=True)
    if kind == "sgd":
        opt = torch.optim.SGD([p], foreach=False, **hyper)
    elif kind == "adam":
        opt = torch.optim.Adam([p], foreach=False, **hyper)
    else:
        opt = torch.optim.AdamW([p], foreach=False, **hyper)
    traj = []
    for t in range(STEPS):
        p.grad = torch.tensor(grads[t], dtype=dtype)
        opt.step()
        st = opt.state[p]
        rec = {"p": [float(x) for x in p.detach().tolist()]}
        if kind == "sgd":
            rec["m"] = [float(x) for x in st["momentum_buffer"].tolist()]
        else:
            rec["m"] = [float(x) for x in st["exp_avg"].tolist()]
            rec["v"] = [float(x) for x in st["exp_avg_sq"].tolist()]
        traj.append(rec)
    return traj


def main():
    rng = np.random.default_rng(SEED)
    cases = []
    for name, kind, hyper in CASES:
        p0, grads = inputs(rng)
        for dtype, dname in ((torch.float64, "float64"), (torch.float32, "float32")):
            if dname == "float32":
                p0d, gd = p0.astype(np.float32).astype(np.float64), grads.astype(np.float32).astype(np.float64)
            else:
                p0d, gd = p0, grads
            h = dict(hyper)
            out = {"name": name, "optimizer": kind, "dtype": dname, "lr": h["lr"],
                   "weight_decay": h["weight_decay"]}
            if kind == "sgd":
                out["momentum"] = h["momentum"]
                out["nesterov"] = h["nesterov"]
            else:
                out["beta1"], out["beta2"] = h["betas"]
                out["eps"] = h["eps"]
            out["p0"] = [float(x) for x in p0d]
            out["grads"] = [[float(x) for x in g] for g in gd]
            out["steps"] = run(kind, h, p0d, gd, dtype)
            cases.append(out)
    header = {
        "description": "Optimiser trajectories for cpuref, computed by PyTorch's torch.optim "
                       "(SGD nesterov, Adam, AdamW; foreach=False) on the CPU. Do not edit; "
                       "regenerate with the command below.",
        "command": "/usr/bin/python3 scripts/gen-optim-golden.py",
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": SEED,
    }
    with open("cpuref/testdata/optim_torch.json", "w") as f:
        json.dump({"header": header, "cases": cases}, f, separators=(",", ":"))
        f.write("\n")


if __name__ == "__main__":
    main()
