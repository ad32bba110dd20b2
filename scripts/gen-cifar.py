#!/usr/bin/env python3
"""Write a small CIFAR-10 or CIFAR-100 binary data set with known content.

An independent writer of the CIFAR binary layout, for host/data's tests
(TestCIFARPythonWriter): the Go reader must find in these files exactly the
pixels and labels that the formulas below give.

    scripts/gen-cifar.py --variant 10 --out DIR [--train 7 --batches 2 --test 3]
    scripts/gen-cifar.py --variant 100 --out DIR [--train 7 --test 3]

Layout (https://www.cs.toronto.edu/~kriz/cifar.html): each record is
<label> (CIFAR-10) or <coarse label><fine label> (CIFAR-100), one byte
each, then 3072 bytes: the red, then green, then blue 32x32 plane, each
row-major. CIFAR-10 splits the training set into data_batch_1.bin ...
data_batch_<batches>.bin (the first batches get one image more when the
count does not divide) and writes test_batch.bin and batches.meta.txt;
CIFAR-100 writes train.bin, test.bin, fine_label_names.txt and
coarse_label_names.txt.

Content of image i of the set s (s = 0 for training, 1 for test):
    pixel(c, y, x) = (i*131 + c*71 + y*37 + x*11 + s*29) mod 256
    CIFAR-10 label = (i*7 + s*3) mod 10
    CIFAR-100 fine = (i*13 + s*5) mod 100, coarse = (i*3 + s) mod 20
Class names: "class<k>" (CIFAR-10), "fine<k>", "coarse<k>" (CIFAR-100).

Uses numpy when it can be imported, else the struct module; both give the
same bytes.
"""
import argparse
import os
import struct

try:
    import numpy as np
except ImportError:  # the struct module writes the same bytes
    np = None

SIDE = 32


def image(i, s):
    """The 3072 bytes of image i of set s, channel planes row-major."""
    if np is not None:
        c, y, x = np.meshgrid(np.arange(3), np.arange(SIDE), np.arange(SIDE), indexing="ij")
        return ((i * 131 + c * 71 + y * 37 + x * 11 + s * 29) % 256).astype(np.uint8).tobytes()
    vals = [(i * 131 + c * 71 + y * 37 + x * 11 + s * 29) % 256
            for c in range(3) for y in range(SIDE) for x in range(SIDE)]
    return struct.pack("%dB" % len(vals), *vals)


def labels(variant, i, s):
    if variant == 10:
        return [(i * 7 + s * 3) % 10]
    return [(i * 3 + s) % 20, (i * 13 + s * 5) % 100]


def write(path, variant, s, first, count):
    with open(path, "wb") as f:
        for i in range(first, first + count):
            f.write(struct.pack("%dB" % len(labels(variant, i, s)), *labels(variant, i, s)))
            f.write(image(i, s))


def names(path, prefix, n):
    with open(path, "w") as f:
        f.write("".join("%s%d\n" % (prefix, k) for k in range(n)))
        f.write("\n")  # a trailing blank line, as batches.meta.txt has


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", type=int, choices=(10, 100), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--train", type=int, default=7)
    ap.add_argument("--test", type=int, default=3)
    ap.add_argument("--batches", type=int, default=2, help="CIFAR-10 training batch files")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.variant == 10:
        first = 0
        for b in range(a.batches):
            count = a.train // a.batches + (1 if b < a.train % a.batches else 0)
            write(os.path.join(a.out, "data_batch_%d.bin" % (b + 1)), 10, 0, first, count)
            first += count
        write(os.path.join(a.out, "test_batch.bin"), 10, 1, 0, a.test)
        names(os.path.join(a.out, "batches.meta.txt"), "class", 10)
    else:
        write(os.path.join(a.out, "train.bin"), 100, 0, 0, a.train)
        write(os.path.join(a.out, "test.bin"), 100, 1, 0, a.test)
        names(os.path.join(a.out, "fine_label_names.txt"), "fine", 100)
        names(os.path.join(a.out, "coarse_label_names.txt"), "coarse", 20)


if __name__ == "__main__":
    main()
