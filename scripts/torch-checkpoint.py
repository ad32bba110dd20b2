#!/usr/bin/python3
"""Read and write safetensors checkpoints with PyTorch, independently of Go.

Debian's python3-torch (1.13) has no safetensors package, so this parses
and writes the format itself (https://github.com/huggingface/safetensors):
an 8-byte little-endian header length N, N bytes of JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {}},
padded with spaces, then the little-endian tensor data.

    torch-checkpoint.py write FILE   write a small checkpoint from PyTorch tensors
    torch-checkpoint.py read FILE    load FILE into PyTorch tensors

Both print one JSON line per tensor, sorted by name,
{"name", "dtype", "shape", "sha256"}, where sha256 is over the tensor's
little-endian bytes in row-major order, then one line {"metadata": {...}}.
`write` prints what it wrote, computed from the tensors in memory, so that a
reader in another language can check what it loads. Host must be
little-endian (x86, arm64).
"""
import hashlib
import json
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


def main(argv):
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
