#!/usr/bin/python3
"""Read and write safetensors checkpoints with PyTorch, independently of Go.

Debian's python3-torch (1.13) has no safetensors package, so this parses
and writes the format itself (https://github.com/huggingface/safetensors):
an 8-byte little-endian header length N, N bytes of JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {}},
padded with spaces, then the little-endian tensor data.

    torch-checkpoint.py write FILE   write a small checkpoint from PyTorch tensors
    torch-checkpoint.py read FILE    load FILE into PyTorch tensors
    torch-checkpoint.py predict CKPT INPUTS [SPEC]
                                     run a convtrain model in PyTorch
    torch-checkpoint.py step CKPT INPUTS [GOLDEN]
                                     one training step's loss, gradients and
                                     running statistics, in float64; with
                                     GOLDEN, also written there as a
                                     safetensors file (float32, a header in
                                     its metadata)

`write` and `read` print one JSON line per tensor, sorted by name,
{"name", "dtype", "shape", "sha256"}, where sha256 is over the tensor's
little-endian bytes in row-major order, then one line {"metadata": {...}}.
`write` prints what it wrote, computed from the tensors in memory, so that a
reader in another language can check what it loads.

`predict` builds a torch.nn.Module from SPEC (default: the checkpoint's
"spec" metadata), a model spec in the canonical form of Go's
nn.FormatSpec, e.g. conv8x5x5,relu,maxpool2,conv16x5x5,relu,maxpool2,
flatten,dense10, or with residual and concatenation blocks, BatchNorm,
pools, activations and dropout (every layer kind of convtrain); loads its
weights from CKPT, where layer i (1-based, numbered depth-first) has
"layer<i>.weight" (K,C,R,S) or (Out,In), "layer<i>.bias" and, for
BatchNorm, "layer<i>.running_mean" and "layer<i>.running_var"; runs it in
evaluation mode in float32 on the tensor "x" (N,C,H,W) of the safetensors
file INPUTS; and prints {"logits": [[...], ...], "pred": [...]}.

The host must be little-endian (x86, arm64).
"""
import hashlib
import json
import re
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "I32": torch.int32, "F64": torch.float64, "I64": torch.int64}
NAMES = {v: k for k, v in DTYPES.items()}


def load(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError(f"{path}: header length {n} beyond the file")
    header = json.loads(data[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    buf = memoryview(data)[8 + n :]
    tensors, end = {}, 0
    for name, e in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"]):
        b, en = e["data_offsets"]
        if b != end:
            raise ValueError(f"{path}: tensor {name} begins at {b}, want {end}")
        dtype = DTYPES[e["dtype"]]
        count = len(buf[b:en]) // torch.empty(0, dtype=dtype).element_size()
        flat = torch.frombuffer(bytearray(buf[b:en]), dtype=dtype) if count else torch.empty(0, dtype=dtype)
        tensors[name], end = flat.reshape(e["shape"]), en
    if end != len(buf):
        raise ValueError(f"{path}: tensors end at {end}, buffer has {len(buf)} bytes")
    return tensors, meta


def save(path, tensors, meta):
    header, off, blobs = {}, 0, []
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        raw = t.numpy().tobytes()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        blobs.append(raw)
    if meta:
        header["__metadata__"] = meta
    h = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def example():
    """Tensors that exercise the format: exact and random floats, the
    special values, int32 extremes, a scalar and an empty tensor."""
    g = torch.Generator().manual_seed(2)
    i = torch.arange(8 * 1 * 5 * 5, dtype=torch.int64)
    tensors = {
        # (i·37 mod 101 − 50)/16 is exact in float32; the Go test recomputes it.
        "conv1.w": ((i * 37 % 101 - 50).to(torch.float32) / 16).reshape(8, 1, 5, 5),
        "conv1.b": torch.randn(8, generator=g),
        "dense.w": torch.randn(10, 256, generator=g),
        "special": torch.tensor([0.0, -0.0, 1e-45, float("inf"), float("-inf"), float("nan"), 3.4028235e38]),
        "labels": torch.tensor([-(2**31), -1, 0, 1, 7, 2**31 - 1], dtype=torch.int32),
        "scalar": torch.tensor(3.25),
        "empty": torch.zeros(0, 3),
    }
    return tensors, {"format": "pt", "source": "scripts/torch-checkpoint.py"}


def report(tensors, meta):
    for name in sorted(tensors):
        t = tensors[name]
        digest = hashlib.sha256(t.contiguous().numpy().tobytes()).hexdigest()
        print(json.dumps({"name": name, "dtype": NAMES[t.dtype], "shape": list(t.shape), "sha256": digest}))
    print(json.dumps({"metadata": meta}, sort_keys=True))


def split_top(text, seps):
    """Splits text at the characters of seps outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and ch in seps:
            parts.append(text[start:i])
            start = i + 1
    return parts + [text[start:]]


class Graph(torch.nn.Module):
    """A convtrain model: its layers registered as "<i-1>" for layer i of the
    canonical spec (numbered depth-first, a block before its layers, as
    convtrain numbers them), so that "layer<i>.<name>" tensors load as
    "<i-1>.<name>"; residual blocks add their branches, cat blocks
    concatenate theirs along the channels."""

    def __init__(self, spec, c, h, w):
        super().__init__()
        self.n = 0
        self.run, _ = self.seq(spec, (c, h, w))

    def add(self, module):
        self.add_module(str(self.n - 1), module)
        return module

    def seq(self, text, shape):
        ops = []
        for item in split_top(text, ","):
            if item:
                op, shape = self.layer(item, shape)
                ops.append(op)

        def run(x):
            for op in ops:
                x = op(x)
            return x
        return run, shape

    def layer(self, item, shape):
        nn = torch.nn
        self.n += 1
        i = self.n
        pair = lambda a, b, default: (int(a), int(b or a)) if a else default
        c, h, w = shape if len(shape) == 3 else (shape[0], 1, 1)
        if m := re.fullmatch(r"(res|cat)\((.*)\)", item):
            kind, branches = m[1], split_top(m[2], "|")
            runs, shapes = zip(*(self.seq(br, shape) if br else (lambda x: x, shape) for br in branches))
            if kind == "res":
                if len(runs) == 1:
                    return (lambda x, f=runs[0]: f(x) + x), shapes[0]
                return (lambda x, f=runs[0], g=runs[1]: f(x) + g(x)), shapes[0]
            return (lambda x, fs=runs: torch.cat([f(x) for f in fs], 1)), (sum(s[0] for s in shapes), h, w)
        if m := re.fullmatch(r"conv(\d+)x(\d+)x(\d+)(?:s(\d+)(?:x(\d+))?)?(?:p(\d+)(?:x(\d+))?)?(nobias)?", item):
            k, r, s_ = map(int, m.group(1, 2, 3))
            (sh, sw), (ph, pw) = pair(m[4], m[5], (1, 1)), pair(m[6], m[7], (0, 0))
            mod = self.add(nn.Conv2d(c, k, (r, s_), stride=(sh, sw), padding=(ph, pw), bias=not m[8]))
            return mod, (k, (h + 2 * ph - r) // sh + 1, (w + 2 * pw - s_) // sw + 1)
        if m := re.fullmatch(r"(max|avg)pool(\d+)(?:x(\d+))?(?:s(\d+)(?:x(\d+))?)?(?:p(\d+)(?:x(\d+))?)?", item):
            win = pair(m[2], m[3], None)
            st, pd = pair(m[4], m[5], win), pair(m[6], m[7], (0, 0))
            mod = nn.MaxPool2d(win, st) if m[1] == "max" else nn.AvgPool2d(win, st, pd, count_include_pad=True)
            return self.add(mod), (c, (h + 2 * pd[0] - win[0]) // st[0] + 1, (w + 2 * pd[1] - win[1]) // st[1] + 1)
        if m := re.fullmatch(r"dense(\d+)(nobias)?", item):
            if len(shape) != 1:
                raise ValueError(f"layer {i} {item!r}: needs a flatten before it, as in the canonical form")
            return self.add(nn.Linear(shape[0], int(m[1]), bias=not m[2])), (int(m[1]),)
        if m := re.fullmatch(r"leakyrelu(\d+)?", item):
            return self.add(nn.LeakyReLU(int(m[1]) / 100 if m[1] else 0.01)), shape
        if m := re.fullmatch(r"dropout(\d+)", item):
            return self.add(nn.Dropout(int(m[1]) / 100)), shape
        simple = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "silu": nn.SiLU, "gelu": nn.GELU,
                  "gelutanh": lambda: nn.GELU(approximate="tanh"), "flatten": nn.Flatten,
                  "gap": lambda: nn.AdaptiveAvgPool2d(1), "bn": lambda: nn.BatchNorm2d(c, eps=1e-5, momentum=0.1)}
        if item in simple:
            out = {"flatten": (c * h * w,), "gap": (c, 1, 1)}.get(item, shape)
            return self.add(simple[item]()), out
        raise ValueError(f"layer {i} {item!r}: not a canonical convtrain layer")

    def forward(self, x):
        return self.run(x)


def build(spec, c, h, w):
    """The torch.nn.Module of a canonical convtrain spec on c×h×w inputs."""
    return Graph(spec, c, h, w)


def loaded(ckpt, inputs, spec=None):
    """The model of CKPT with its weights, and the tensors of INPUTS."""
    params, meta = load(ckpt)
    tensors = load(inputs)[0]
    model = build(spec or meta["spec"], *tensors["x"].shape[1:])
    state = {f"{int(k[len('layer'):].split('.')[0]) - 1}.{k.split('.')[1]}": v for k, v in params.items() if k.startswith("layer")}
    for name, mod in model.named_modules():
        if isinstance(mod, torch.nn.BatchNorm2d):  # PyTorch counts batches; convtrain does not
            state[f"{name}.num_batches_tracked"] = torch.tensor(0)
    model.load_state_dict(state, strict=True)
    return model, tensors


def predict(ckpt, inputs, spec=None):
    model, tensors = loaded(ckpt, inputs, spec)
    with torch.no_grad():
        logits = model.eval()(tensors["x"])
    print(json.dumps({"logits": logits.tolist(), "pred": logits.argmax(1).tolist()}))


def step(ckpt, inputs, golden=None):
    """One training step's forward and backward pass in float64 (training
    mode: BatchNorm with the batch's statistics, updating its running ones):
    prints {"loss", "grads": {"layer<i>.<name>": [...]}, "buffers": {...}}.
    With golden, writes the same values, rounded to float32, to that
    safetensors file: "loss" (1), "grad.<name>" and "buffer.<name>"."""
    model, tensors = loaded(ckpt, inputs)
    model = model.double().train()
    x, labels = tensors["x"].double(), tensors["labels"].long()
    loss = torch.nn.functional.cross_entropy(model(x), labels)
    loss.backward()
    name = lambda k: f"layer{int(k.split('.')[0]) + 1}.{k.split('.')[1]}"
    grads = {name(k): p.grad.reshape(-1).tolist() for k, p in model.named_parameters()}
    buffers = {name(k): b.reshape(-1).tolist() for k, b in model.named_buffers() if "running" in k}
    print(json.dumps({"loss": loss.item(), "grads": grads, "buffers": buffers}))
    if golden:
        out = {"loss": torch.tensor([loss.item()], dtype=torch.float32)}
        out.update({"grad." + k: torch.tensor(v, dtype=torch.float32) for k, v in grads.items()})
        out.update({"buffer." + k: torch.tensor(v, dtype=torch.float32) for k, v in buffers.items()})
        save(golden, out, {
            "generator": "scripts/torch-checkpoint.py step CKPT INPUTS GOLDEN",
            "torch": torch.__version__,
            "what": "one training step of the checkpoint's model on INPUTS in PyTorch float64 "
                    "(training mode), rounded to float32: the loss, every gradient, the running "
                    "statistics after the step",
        })


def main(argv):
    if len(argv) in (4, 5) and argv[1] == "predict":
        predict(*argv[2:])
        return 0
    if len(argv) in (4, 5) and argv[1] == "step":
        step(*argv[2:])
        return 0
    if len(argv) != 3 or argv[1] not in ("read", "write"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[1] == "write":
        tensors, meta = example()
        save(argv[2], tensors, meta)
    else:
        tensors, meta = load(argv[2])
    report(tensors, meta)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
