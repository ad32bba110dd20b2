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

`write` and `read` print one JSON line per tensor, sorted by name,
{"name", "dtype", "shape", "sha256"}, where sha256 is over the tensor's
little-endian bytes in row-major order, then one line {"metadata": {...}}.
`write` prints what it wrote, computed from the tensors in memory, so that a
reader in another language can check what it loads.

`predict` builds a torch.nn.Sequential from SPEC (default: the checkpoint's
"spec" metadata), a model spec in the canonical form of Go's
host.FormatSpec, e.g. conv8x5x5,relu,maxpool2,conv16x5x5,relu,maxpool2,
flatten,dense10; loads its weights from CKPT, where layer i (1-based) has
"layer<i>.weight" (K,C,R,S) or (Out,In) and "layer<i>.bias"; runs it in
float32 on the tensor "x" (N,C,H,W) of the safetensors file INPUTS; and
prints {"logits": [[...], ...], "pred": [...]}.

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


def build(spec, c, h, w):
    """A torch.nn.Sequential for a canonical convtrain spec on c×h×w inputs."""
    nn, layers = torch.nn, []
    pair = lambda a, b, default: (int(a), int(b or a)) if a else default
    for i, item in enumerate(spec.split(",")):
        if m := re.fullmatch(r"conv(\d+)x(\d+)x(\d+)(?:s(\d+)(?:x(\d+))?)?(?:p(\d+)(?:x(\d+))?)?", item):
            cin = nn.Sequential(*layers)(torch.zeros(1, c, h, w)).shape[1] if layers else c
            k, r, s_ = map(int, m.group(1, 2, 3))
            layers.append(nn.Conv2d(cin, k, (r, s_), stride=pair(m[4], m[5], (1, 1)), padding=pair(m[6], m[7], (0, 0))))
        elif m := re.fullmatch(r"maxpool(\d+)(?:x(\d+))?(?:s(\d+)(?:x(\d+))?)?", item):
            window = pair(m[1], m[2], None)
            layers.append(nn.MaxPool2d(window, stride=pair(m[3], m[4], window)))
        elif item == "relu":
            layers.append(nn.ReLU())
        elif item == "flatten":
            layers.append(nn.Flatten())
        elif m := re.fullmatch(r"dense(\d+)", item):
            out = nn.Sequential(*layers)(torch.zeros(1, c, h, w))
            if out.dim() != 2:
                raise ValueError(f"layer {i + 1} {item!r}: needs a flatten before it, as in the canonical form")
            n_in = out.shape[1]
            layers.append(nn.Linear(n_in, int(m[1])))
        else:
            raise ValueError(f"layer {i + 1} {item!r}: not a canonical convtrain layer")
    return nn.Sequential(*layers)


def predict(ckpt, inputs, spec=None):
    params, meta = load(ckpt)
    x = load(inputs)[0]["x"]
    model = build(spec or meta["spec"], *x.shape[1:])
    state = {f"{int(k[len('layer'):].split('.')[0]) - 1}.{k.split('.')[1]}": v for k, v in params.items() if k.startswith("layer")}
    model.load_state_dict(state, strict=True)
    with torch.no_grad():
        logits = model.eval()(x)
    print(json.dumps({"logits": logits.tolist(), "pred": logits.argmax(1).tolist()}))


def main(argv):
    if len(argv) in (4, 5) and argv[1] == "predict":
        predict(*argv[2:])
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
