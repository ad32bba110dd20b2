#!/usr/bin/env python3
"""gpu-report.py turns what scripts/gpu-check.sh leaves under $OUT into
tables and one machine-readable summary, and records that summary in
BENCHMARKS.md. Standard library only (the GPU machine has no network).

    scripts/gpu-report.py conv-table DIR     markdown: our conv passes beside cuDNN's
    scripts/gpu-report.py net-table DIR      markdown: our MNIST epoch beside PyTorch eager's
    scripts/gpu-report.py summary DIR        writes DIR/gpu-summary.json (every figure so far)
    scripts/gpu-report.py record SUMMARY [--benchmarks FILE] [--dry-run] [--allow-mock]
                                             adds its dated rows to BENCHMARKS.md
    scripts/gpu-report.py model-suite LOG    markdown: the analytic model's suite figures
                                             from a model-only BenchmarkConvPeer run

DIR is gpu-check's output folder (gpu-report.md, gpu-summary.json and
gpu-report-logs/). gpu-check runs `summary` after every step, so a
summary cut short by a time-out still holds every step finished before
it ("complete": false).

record (on the machine with the repository, after a device session): adds
one row per session to the table after the `<!-- gpu-record: sessions -->`
line of BENCHMARKS.md, one row per conv pass to the table after
`<!-- gpu-record: conv -->` and one row per fused mode of step 6's
BenchmarkBatchNormKeep and BenchmarkConvBackwardShared beside its apart
mode (median GPU times and the speed-up) to the table after
`<!-- gpu-record: fusions -->`, newest first, each with the date, the GPU
and the commit (the session row also the driver, CUDA and the command). It
refuses a dry run's summary (mock: its figures are meaningless) unless
--allow-mock, and a session already recorded; --dry-run prints the rows
instead of writing.

Figures: a conv pass's GFLOP/s is 2·N·K·P·Q·C·R·S over the median time;
% of peak is over the FP32 FMA peak, SMs × FP32 lanes per SM (64 on
compute capability 7.x and 8.0, 128 on 8.6 and later) × 2 × the maximum SM
clock (nvidia-smi); "speed vs cuDNN" is cuDNN's median time over ours (> 1:
ours is faster) at the same precision (fp32pipe, FP32's packed-pipeline
kernels, against cuDNN's fp32), "ours/model" our time over the analytic
model's estimate (BenchmarkConvPeer's model-us), "speed vs PyTorch"
PyTorch's epoch time over ours. The targets (conv_targets in the summary,
a column of the sessions row) are over the ResNet-50 shapes: the FP32
suite's FLOPs over the sum of its passes' times as a % of the FP32 peak
(≥ 60 %), and per precision the median over shapes of cuDNN's time for
the shape's passes over ours (TF32 and BF16: ≥ 0.8), both over the passes
a training step runs (all but the stem's bwd-data).
"""

import argparse
import datetime
import json
import os
import re
import sys

SCHEMA = "convtrain-gpu-check/2"
STEP_NAMES = {1: "machine and conformance", 2: "train compare and one MNIST epoch",
              3: "conv passes vs cuDNN", 4: "MNIST epoch vs PyTorch eager",
              5: "compute-sanitizer", 6: "remaining benchmarks"}


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


def read_json(path):
    text = read(path)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


# Go benchmark lines: name-GOMAXPROCS, iterations, then value-unit pairs.
BENCH_RE = re.compile(r"^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$")


def bench_lines(text):
    out = []
    for line in (text or "").splitlines():
        m = BENCH_RE.match(line)
        if not m:
            continue
        fields = m.group(3).split()
        metrics = {fields[i + 1]: num(fields[i]) for i in range(0, len(fields) - 1, 2)}
        out.append({"name": m.group(1), "iterations": int(m.group(2)), "metrics": metrics})
    return out


def fp32_lanes(cc):
    """FP32 FMA lanes per SM of compute capability cc ("9.0")."""
    try:
        major, minor = (int(x) for x in cc.split("."))
    except (AttributeError, ValueError):
        return None
    if major < 7:
        return None
    if major == 7 or (major == 8 and minor == 0):
        return 64
    return 128


def machine(logs):
    """The GPU from nvidia-smi (machine.csv) and the device lines of the Go
    benchmark and of PyTorch."""
    m = {}
    csv = read(os.path.join(logs, "machine.csv"))
    if csv:
        row = [c.strip() for c in csv.strip().splitlines()[0].split(",")]
        keys = ["gpu", "driver", "memory", "sm_clock_max_mhz", "mem_clock_max_mhz", "power_limit"]
        m.update({k: v for k, v in zip(keys, row)})
        m["sm_clock_max_mhz"] = num(re.sub(r"[^0-9.]", "", m.get("sm_clock_max_mhz", "")))
    cuda = read(os.path.join(logs, "cuda-version.txt"))
    if cuda and cuda.strip():
        m["cuda"] = cuda.strip()
    # "device: NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)" from BenchmarkConvPeer.
    dm = re.search(r"device: (.+) \(sm_(\d+)(\d), (\d+) SMs\)", read(os.path.join(logs, "conv-ours.log")) or "")
    if dm:
        m.setdefault("gpu", dm.group(1))
        m["compute_capability"] = f"{dm.group(2)}.{dm.group(3)}"
        m["sms"] = int(dm.group(4))
    for name in ("conv-torch.json", "mnist-torch.json"):
        info = (read_json(os.path.join(logs, name)) or {}).get("info", {})
        if info.get("device_type") == "cuda":
            m.setdefault("compute_capability", info.get("compute_capability"))
            m.setdefault("sms", info.get("sms"))
            m.setdefault("gpu", info.get("name"))
            m["torch"], m["torch_cuda"], m["cudnn"] = info.get("torch"), info.get("cuda"), info.get("cudnn")
    lanes = fp32_lanes(m.get("compute_capability"))
    if lanes and m.get("sms") and m.get("sm_clock_max_mhz"):
        m["fp32_peak_gflops"] = m["sms"] * lanes * 2 * m["sm_clock_max_mhz"] / 1e3
    return m


def build(logs):
    b = {}
    for line in (read(os.path.join(logs, "buildinfo.txt")) or "").splitlines():
        k, _, v = line.partition(": ")
        if v:
            b[k.strip().replace(".", "_")] = v.strip()
    return b


def steps(logs):
    out = []
    for line in (read(os.path.join(logs, "steps.tsv")) or "").splitlines():
        f = line.split("\t")
        if len(f) >= 5 and f[0].isdigit():
            out.append({"n": int(f[0]), "name": f[1], "status": f[2], "seconds": num(f[3]),
                        "slice_s": num(f[4]), "note": f[5] if len(f) > 5 else ""})
    return out


def conformance(logs):
    out = []
    for name in sorted(os.listdir(logs)):
        if not (name.startswith("test-") and name.endswith(".log")):
            continue
        text = read(os.path.join(logs, name)) or ""
        top = re.findall(r"^--- (PASS|FAIL|SKIP): (Test\w+)", text, re.M)
        out.append({"binary": name[5:-4], "tests": sorted({t for _, t in top}),
                    "passed": len(re.findall(r"^\s*--- PASS", text, re.M)),
                    "failed": len(re.findall(r"^\s*--- FAIL", text, re.M)),
                    "skipped": len(re.findall(r"^\s*--- SKIP", text, re.M)),
                    "listed": re.findall(r"^(Test\w+)$", text, re.M)})
    return out


EPOCH_RE = re.compile(r"^epoch (\d+)/(\d+)\s+loss ([\d.]+|NaN)\s+train ([\d.]+)%\s+test ([\d.]+)%\s+"
                      r"(\d+) images/s\s+epoch (\S+)", re.M)
DURATION_UNITS = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def go_duration(text):
    """Seconds of a Go time.Duration's text ("1m2.5s", "100ms"), or None."""
    parts = re.findall(r"([\d.]+)(h|ms|m|s|us|µs|ns)", text or "")
    if not parts or "".join(v + u for v, u in parts) != text:
        return None
    return sum(float(v) * DURATION_UNITS[u] for v, u in parts)
DATA_RE = re.compile(r"^data\s+.*?(\d+) training", re.M)


def train(logs):
    t = {}
    for key in ("compare-fp32", "compare-tf32", "compare-bf16"):
        text = read(os.path.join(logs, f"train-{key}.log"))
        if text is None:
            continue
        r = {"status": "ok" if re.search(r"^result\s+ok", text, re.M) else "FAIL"}
        m = re.search(r"largest relative difference, ([0-9.eE+-]+) \((.*)\), is within -tol ([0-9.eE+-]+)", text) or \
            re.search(r"result\s+FAIL: (.*) differs by ([0-9.eE+-]+) relative, more than -tol ([0-9.eE+-]+)", text)
        if m and m.re.pattern.startswith("largest"):
            r.update(max_rel_diff=num(m.group(1)), worst=m.group(2), tol=num(m.group(3)))
        elif m:
            r.update(max_rel_diff=num(m.group(2)), worst=m.group(1), tol=num(m.group(3)))
        t[key.replace("-", "_")] = r
    for key in ("epoch", "epoch-bf16"):
        text = read(os.path.join(logs, f"train-{key}.log"))
        if text is None:
            continue
        m = EPOCH_RE.search(text)
        if m:
            ips = int(m.group(6))
            e = {"loss": num(m.group(3)), "train_accuracy": num(m.group(4)) / 100,
                 "test_accuracy": num(m.group(5)) / 100, "images_per_s": ips, "epoch_s": go_duration(m.group(7))}
            d = DATA_RE.search(text)
            if d and ips:
                n = int(d.group(1))
                e["train_images"] = n
                e["train_s"] = (n - n % 64) / ips
            t[key.replace("-", "_")] = e
    return t


def conv(logs, mach):
    """One row per (shape, precision, pass) of BenchmarkConvPeer: ours (the
    dispatcher's kernel; fp32pipe: FP32's packed-pipeline kernel, not
    dispatched), the model's estimate, cuDNN's time at the same precision
    (fp32's for fp32pipe)."""
    ours = {}
    for b in bench_lines(read(os.path.join(logs, "conv-ours.log"))):
        m = re.match(r"BenchmarkConvPeer/shape=([^/]+)/prec=([^/]+)/pass=([^/]+)/kernel=([^/]+)$", b["name"])
        if m and b["metrics"].get("gpu-ns/op"):
            model = b["metrics"].get("model-us")
            ours[(m.group(1), m.group(2), m.group(3))] = {
                "kernel": m.group(4), "ms": b["metrics"]["gpu-ns/op"] / 1e6, "gflops": b["metrics"].get("GFLOP/s"),
                "model_ms": model / 1e3 if model else None}
    theirs = {(r["shape"], r.get("precision", "fp32"), r["pass"]): r
              for r in (read_json(os.path.join(logs, "conv-torch.json")) or {}).get("conv", [])}
    peak = mach.get("fp32_peak_gflops")
    rows = []
    keys = list(ours) + [k for k in theirs if k not in ours]
    for k in keys:
        o, t = ours.get(k, {}), theirs.get((k[0], "fp32" if k[1] == "fp32pipe" else k[1], k[2]), {})
        r = {"shape": k[0], "precision": k[1], "pass": k[2], "kernel": o.get("kernel"), "ours_ms": o.get("ms"),
             "model_ms": o.get("model_ms"), "cudnn_ms": t.get("ms"), "gflops": o.get("gflops"),
             "cudnn_gflops": t.get("gflops")}
        r["flops"] = t.get("flops") or (r["gflops"] * r["ours_ms"] * 1e6 if r["gflops"] and r["ours_ms"] else None)
        r["speed_vs_cudnn"] = r["cudnn_ms"] / r["ours_ms"] if r["ours_ms"] and r["cudnn_ms"] else None
        r["vs_model"] = r["ours_ms"] / r["model_ms"] if r["ours_ms"] and r["model_ms"] else None
        r["peak_pct"] = 100 * r["gflops"] / peak if peak and r["gflops"] else None
        r["cudnn_peak_pct"] = 100 * r["cudnn_gflops"] / peak if peak and r["cudnn_gflops"] else None
        rows.append(r)
    return rows


def median(v):
    v = sorted(v)
    if not v:
        return None
    return v[len(v) // 2] if len(v) % 2 else (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2


# The targets of the tensor-core issue, over the ResNet-50 shapes of the
# suite (names resnet-*, N = 64) and the passes a training step runs: all
# but the stem's bwd-data (the gradient of the input images, which
# convtrain's first layer skips, as PyTorch does for an input that does
# not require grad; with C = 3 it would fill 3 of a 64-wide tile's
# columns). The FP32 suite's figure over every pass is reported beside.
FP32_SUITE_TARGET_PCT = 60.0  # of the FP32 FMA peak (H100 SXM: 67 TFLOP/s)
TENSOR_TARGET_SPEED = 0.8     # cuDNN's time over ours, median ResNet-50 shape
NOT_TRAINED = {("resnet-stem-7x7s2", "bwd-data")}
H100_FP32_PEAK_GFLOPS = 132 * 128 * 2 * 1.98  # the model's device (gpu/model_test.go)


def suite_gflops(rows, prec, ms_of, every_pass=False):
    """The ResNet-50 suite's FLOPs at precision prec over the sum of
    ms_of(row) of its passes (the trained ones unless every_pass), in
    GFLOP/s; None if a pass lacks a figure."""
    flops = total = 0.0
    for r in rows:
        if r["precision"] != prec or not r["shape"].startswith("resnet-") or (
                not every_pass and (r["shape"], r["pass"]) in NOT_TRAINED):
            continue
        ms = ms_of(r)
        if not ms or not r["flops"]:
            return None
        flops, total = flops + r["flops"], total + ms
    return flops / total / 1e6 if total else None


def targets(rows, mach):
    """The suite's figures against the targets, over the passes a training
    step runs (NOT_TRAINED): FP32, the ResNet-50 suite's FLOPs over the
    sum of its passes' median times, as a % of the FP32 peak, with the
    dispatched kernels, with the faster of the dispatched and the
    packed-pipeline kernel of each pass, and with the dispatched kernels
    over every pass; per precision the median over the ResNet-50 shapes of
    cuDNN's time for the shape's passes over ours (> 1: ours faster); and
    the median of our time over the model's estimate (≥ 1 where the model
    is the lower bound it claims)."""
    peak = mach.get("fp32_peak_gflops")
    res = [r for r in rows if r["shape"].startswith("resnet-")]
    by = {(r["shape"], r["precision"], r["pass"]): r for r in res}
    t = {"fp32_target_pct": FP32_SUITE_TARGET_PCT, "tensor_target_speed": TENSOR_TARGET_SPEED}

    def best(r):
        pipe = by.get((r["shape"], "fp32pipe", r["pass"]), {}).get("ours_ms")
        return min(r["ours_ms"], pipe) if r["ours_ms"] and pipe else r["ours_ms"]

    for key, ms_of, every in (("fp32_suite", lambda r: r["ours_ms"], False), ("fp32_suite_best", best, False),
                              ("fp32_suite_cudnn", lambda r: r["cudnn_ms"], False),
                              ("fp32_suite_every_pass", lambda r: r["ours_ms"], True)):
        g = suite_gflops(res, "fp32", ms_of, every)
        t[key] = {"gflops": g, "peak_pct": 100 * g / peak if g and peak else None}
    t["fp32_met"] = None if t["fp32_suite"]["peak_pct"] is None else t["fp32_suite"]["peak_pct"] >= FP32_SUITE_TARGET_PCT
    for prec in ("fp32", "fp32pipe", "tf32", "bf16"):
        ratios = []
        for shape in dict.fromkeys(r["shape"] for r in res if r["precision"] == prec):
            passes = [by.get((shape, prec, p)) for p in ("fwd", "bwd-data", "bwd-filter")
                      if (shape, p) not in NOT_TRAINED]
            if all(x and x["ours_ms"] and x["cudnn_ms"] for x in passes):
                ratios.append(sum(x["cudnn_ms"] for x in passes) / sum(x["ours_ms"] for x in passes))
        vs_model = [r["vs_model"] for r in rows if r["precision"] == prec and r["vs_model"]]
        t[prec] = {"shapes": len(ratios), "median_speed_vs_cudnn": median(ratios),
                   "median_vs_model": median(vs_model), "below_model": sum(1 for v in vs_model if v < 1)}
        if prec in ("tf32", "bf16"):
            m = t[prec]["median_speed_vs_cudnn"]
            t[prec]["met"] = None if m is None else m >= TENSOR_TARGET_SPEED
    return t


def targets_line(t):
    """One line of the targets for the sessions table and the report."""
    if not t:
        return "—"
    verdict = {True: "met", False: "not met", None: "?"}
    f = t["fp32_suite"]["peak_pct"]
    fb = t["fp32_suite_best"]["peak_pct"]
    fe = t["fp32_suite_every_pass"]["peak_pct"]
    fc = t["fp32_suite_cudnn"]["peak_pct"]
    parts = [f"FP32 suite {fmt(f, '.1f')} % of peak (with v11–v13: {fmt(fb, '.1f')} %; every pass, the stem's "
             f"bwd-data too: {fmt(fe, '.1f')} %; cuDNN {fmt(fc, '.1f')} %; ≥ {t['fp32_target_pct']:.0f} %: "
             f"{verdict[t['fp32_met']]})"]
    for prec in ("tf32", "bf16"):
        parts.append(f"{prec.upper()} median {fmt(t[prec]['median_speed_vs_cudnn'], '.2f')}× cuDNN "
                     f"(≥ {t['tensor_target_speed']}: {verdict[t[prec].get('met')]})")
    return "; ".join(parts)


def network(logs, tr):
    ours = tr.get("epoch")
    theirs = (read_json(os.path.join(logs, "mnist-torch.json")) or {}).get("mnist")
    if not ours and not theirs:
        return {}
    n = {"ours": ours, "pytorch": theirs}
    if ours and theirs and ours.get("train_s") and theirs.get("epoch_s"):
        n["speed_vs_pytorch"] = theirs["epoch_s"] / ours["train_s"]
    return n


def sanitizer(logs):
    out = []
    for tool in ("memcheck", "racecheck", "synccheck", "initcheck"):
        text = read(os.path.join(logs, f"sanitizer-{tool}.log"))
        if text is None:
            continue
        m = re.search(r"(?:ERROR|RACECHECK) SUMMARY: (\d+) (?:errors?|hazards?)", text)
        out.append({"tool": tool, "errors": int(m.group(1)) if m else None,
                    "passed": len(re.findall(r"^\s*--- PASS", text, re.M)),
                    "failed": len(re.findall(r"^\s*--- FAIL", text, re.M))})
    return out


def extra(logs):
    e = {"benchmarks": []}
    for name in sorted(os.listdir(logs)):
        if name.startswith("extra-") and name.endswith(".log"):
            e["benchmarks"] += bench_lines(read(os.path.join(logs, name)))
            for line in (read(os.path.join(logs, name)) or "").splitlines():
                if line.startswith("queued "):
                    e.setdefault("train_bench", {})[name[6:-4]] = line[len("queued"):].strip()
    net = (read_json(os.path.join(logs, "extra-torch-net.json")) or {}).get("net")
    if net:
        e["pytorch_random_data_steps"] = net
    return e


def summarize(out_dir):
    logs = os.path.join(out_dir, "gpu-report-logs")
    mach = machine(logs)
    st = steps(logs)
    tr = train(logs)
    s = {"schema": SCHEMA,
         "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
         "mock": os.path.exists(os.path.join(logs, "mock")),
         "command": (read(os.path.join(logs, "command.txt")) or "").strip(),
         "budget_s": num((read(os.path.join(logs, "budget.txt")) or "").strip()),
         "complete": {x["n"] for x in st} >= set(STEP_NAMES),
         "machine": mach, "build": build(logs), "steps": st,
         "conformance": conformance(logs), "train": tr, "conv": conv(logs, mach),
         "conv_targets": targets(conv(logs, mach), mach),
         "network": network(logs, tr), "sanitizer": sanitizer(logs), "extra": extra(logs)}
    return s


def fmt(v, spec, none="—"):
    return none if v is None else format(v, spec)


def conv_table(out_dir):
    logs = os.path.join(out_dir, "gpu-report-logs")
    mach = machine(logs)
    rows = conv(logs, mach)
    peak = mach.get("fp32_peak_gflops")
    lines = [f"FP32 peak: {fmt(peak, ',.0f')} GFLOP/s"
             + (f" ({mach['sms']} SMs × {fp32_lanes(mach['compute_capability'])} lanes × 2 × "
                f"{mach['sm_clock_max_mhz']:.0f} MHz)" if peak else " (unknown: needs nvidia-smi's max SM clock)"),
             "", "Precision fp32pipe: FP32's packed-pipeline kernels (v11–v13), not dispatched, beside cuDNN's fp32. "
             "model ms: the analytic model's estimate (a lower bound: ours/model ≥ 1 where it holds).",
             "", "| shape | precision | pass | our kernel | ours ms | model ms | cuDNN ms | speed vs cuDNN | ours/model "
             "| ours GFLOP/s | ours % peak | cuDNN GFLOP/s | cuDNN % FP32 peak |",
             "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['shape']} | {r['precision']} | {r['pass']} | {r['kernel'] or '—'} | "
                     f"{fmt(r['ours_ms'], '.4f')} | {fmt(r['model_ms'], '.4f')} | {fmt(r['cudnn_ms'], '.4f')} | "
                     f"{fmt(r['speed_vs_cudnn'], '.2f')} | {fmt(r['vs_model'], '.2f')} | {fmt(r['gflops'], '.0f')} | "
                     f"{fmt(r['peak_pct'], '.1f')} | {fmt(r['cudnn_gflops'], '.0f')} | {fmt(r['cudnn_peak_pct'], '.1f')} |")
    if not rows:
        lines.append("| (no figures) | | | | | | | | | | | | |")
    t = targets(rows, mach)
    lines += ["", "Targets over the ResNet-50 shapes (resnet-*, N = 64), the passes a training step runs (all but "
              "the stem's bwd-data): " + targets_line(t) + ".", "",
              "| precision | shapes | median speed vs cuDNN (3 passes) | median ours/model | passes below the model |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for prec in ("fp32", "fp32pipe", "tf32", "bf16"):
        x = t[prec]
        lines.append(f"| {prec} | {x['shapes']} | {fmt(x['median_speed_vs_cudnn'], '.2f')} | "
                     f"{fmt(x['median_vs_model'], '.2f')} | {x['below_model']} |")
    return "\n".join(lines)


def model_suite(path):
    """The analytic model's suite figures from a model-only run of
    BenchmarkConvPeer (no GPU: model-us, model-GFLOP/s), per precision:
    the ResNet-50 suite's FLOPs over the sum of the model's times, over
    the trained passes and over every pass, as GFLOP/s and as a % of the
    H100 SXM's FP32 peak; the share of the trained passes' time in passes
    bound by DRAM bandwidth (model-memory-bound); and the slowest trained
    pass."""
    rows = []
    for b in bench_lines(read(path)):
        m = re.match(r"BenchmarkConvPeer/shape=([^/]+)/prec=([^/]+)/pass=([^/]+)/kernel=([^/]+)$", b["name"])
        us, g = b["metrics"].get("model-us"), b["metrics"].get("model-GFLOP/s")
        if m and us and g:
            rows.append({"shape": m.group(1), "precision": m.group(2), "pass": m.group(3), "kernel": m.group(4),
                         "ms": us / 1e3, "flops": g * us * 1e3,
                         "memory_bound": b["metrics"].get("model-memory-bound") == 1})
    if not rows:
        raise SystemExit(f"gpu-report: {path}: no model-only BenchmarkConvPeer lines (model-us, model-GFLOP/s)")
    lines = ["| precision | suite GFLOP/s (trained passes) | % of FP32 peak | every pass | % of FP32 peak "
             "| memory-bound time | slowest pass (model GFLOP/s) |", "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for prec in dict.fromkeys(r["precision"] for r in rows):
        g, ge = (suite_gflops(rows, prec, lambda r: r["ms"], every) for every in (False, True))
        res = [r for r in rows if r["precision"] == prec and r["shape"].startswith("resnet-")
               and (r["shape"], r["pass"]) not in NOT_TRAINED]
        slow = min(res, key=lambda r: r["flops"] / r["ms"], default=None)
        total = sum(r["ms"] for r in res)
        mem = 100 * sum(r["ms"] for r in res if r["memory_bound"]) / total if total else None
        lines.append(f"| {prec} | {fmt(g, '.0f')} | {fmt(g and 100 * g / H100_FP32_PEAK_GFLOPS, '.1f')} | "
                     f"{fmt(ge, '.0f')} | {fmt(ge and 100 * ge / H100_FP32_PEAK_GFLOPS, '.1f')} | {fmt(mem, '.0f')} % | "
                     + (f"{slow['shape']} {slow['pass']} {slow['kernel']} ({slow['flops'] / slow['ms'] / 1e6:.0f})"
                        if slow else "—") + " |")
    return "\n".join(lines)


def net_table(out_dir):
    logs = os.path.join(out_dir, "gpu-report-logs")
    n = network(logs, train(logs))
    lines = ["| | images | train s | images/s | test accuracy |", "| --- | ---: | ---: | ---: | ---: |"]
    o, t = n.get("ours"), n.get("pytorch")
    if o:
        lines.append(f"| convtrain (`train -device gpu -epochs 1`) | {o.get('train_images', '—')} | "
                     f"{fmt(o.get('train_s'), '.3f')} | {o['images_per_s']} | {100 * o['test_accuracy']:.2f}% |")
    else:
        lines.append("| convtrain | — | — | — | — (step 2 gave no epoch line) |")
    if t:
        lines.append(f"| PyTorch eager (`torch-gpu-bench.py --part mnist`) | {t['train_images']} | "
                     f"{t['epoch_s']:.3f} | {t['images_per_s']:.0f} | {100 * t['test_accuracy']:.2f}% |")
    else:
        lines.append("| PyTorch eager | — | — | — | — (no figures) |")
    lines += ["", f"Speed vs PyTorch (PyTorch's train s / ours): {fmt(n.get('speed_vs_pytorch'), '.2f')}"]
    return "\n".join(lines)


def write_summary(out_dir):
    s = summarize(out_dir)
    path = os.path.join(out_dir, "gpu-summary.json")
    with open(path + ".tmp", "w") as f:
        json.dump(s, f, indent=1, sort_keys=False)
        f.write("\n")
    os.replace(path + ".tmp", path)
    return path


# record ---------------------------------------------------------------

SESSION_MARK = "<!-- gpu-record: sessions -->"
CONV_MARK = "<!-- gpu-record: conv -->"
FUSION_MARK = "<!-- gpu-record: fusions -->"

# The fused modes of step 6's BenchmarkBatchNormKeep and
# BenchmarkConvBackwardShared, each against the mode doing the same work
# apart: (apart, fused).
FUSION_PAIRS = [("fwd-apart", "fwd-fused"), ("fwd-apart", "fwd-copy"), ("bwd-apart", "bwd-fused"),
                ("bwd-apart", "bwd-copy"), ("relu-apart", "relu-fused"), ("add-apart", "add-fused"),
                ("tf32-apart", "tf32-fused"), ("bf16y-apart", "bf16y-fused"),
                ("bf16dx-apart", "bf16dx-fused"), ("bnadd-apart", "bnadd-fused"), ("apart", "shared")]
FUSION_RE = re.compile(r"^Benchmark(BatchNormKeep|ConvBackwardShared)/(.+)/mode=([\w-]+)$")


def session_row(s):
    m, b, st = s["machine"], s["build"], {x["n"]: x["status"] for x in s["steps"]}
    date = s["generated"][:16].replace("T", " ")
    commit = (b.get("commit") or "unknown")[:7] + (" (modified)" if "(modified)" in b.get("commit", "") else "")
    conf = s["conformance"]
    passed = sum(c["passed"] for c in conf)
    failed = sum(c["failed"] for c in conf)
    tr = s["train"]
    cmp_ = " / ".join(f"{tr[k]['status']} {fmt(tr[k].get('max_rel_diff'), '.2g')}" if k in tr else "—"
                      for k in ("compare_fp32", "compare_tf32", "compare_bf16"))
    n = s["network"]
    o, t = n.get("ours") or {}, n.get("pytorch") or {}
    ours = f"{fmt(o.get('train_s'), '.2f')} s, {fmt(o.get('test_accuracy') and 100 * o['test_accuracy'], '.2f')}%"
    b16 = tr.get("epoch_bf16") or {}
    ours_bf16 = f"{fmt(b16.get('train_s'), '.2f')} s, {fmt(b16.get('test_accuracy') and 100 * b16['test_accuracy'], '.2f')}%"
    theirs = f"{fmt(t.get('epoch_s'), '.2f')} s, {fmt(t.get('test_accuracy') and 100 * t['test_accuracy'], '.2f')}%"
    san = ", ".join(f"{x['tool']} {fmt(x['errors'], 'd', '?')}" for x in s["sanitizer"]) or "—"
    steps_ = " ".join(f"{k}:{st[k].split(':')[0].split(' ')[0]}" for k in sorted(st))
    cells = [date, m.get("gpu", "?"), m.get("driver", "?"), m.get("cuda", "?"), commit,
             f"`{s['command']}`", f"{st.get(1, '—').split(' (')[0]}: {passed} passed, {failed} failed",
             cmp_, ours, ours_bf16, theirs, fmt(n.get("speed_vs_pytorch"), ".2f"),
             targets_line(s.get("conv_targets")), san, steps_]
    return "| " + " | ".join(str(c) for c in cells) + " |"


def conv_rows(s):
    m, b = s["machine"], s["build"]
    date = s["generated"][:16].replace("T", " ")
    commit = (b.get("commit") or "unknown")[:7]
    return ["| " + " | ".join([date, m.get("gpu", "?"), commit, r["shape"], r.get("precision", "fp32"), r["pass"],
                               r["kernel"] or "—", fmt(r["ours_ms"], ".4f"), fmt(r.get("model_ms"), ".4f"),
                               fmt(r["cudnn_ms"], ".4f"), fmt(r["speed_vs_cudnn"], ".2f"),
                               fmt(r["gflops"], ".0f"), fmt(r["peak_pct"], ".1f")]) + " |"
            for r in s["conv"]]


def fusion_rows(s):
    """A row per fused mode measured with its apart mode: the median GPU
    times (gpu-ns/op) and the speed-up."""
    m, b = s["machine"], s["build"]
    date = s["generated"][:16].replace("T", " ")
    commit = (b.get("commit") or "unknown")[:7]
    times = {}
    for x in (s.get("extra") or {}).get("benchmarks", []):
        f = FUSION_RE.match(x["name"])
        if f:
            times.setdefault((f.group(1), f.group(2)), {})[f.group(3)] = x["metrics"].get("gpu-ns/op")
    rows = []
    for (bench, case), modes in sorted(times.items()):
        for apart, fused in FUSION_PAIRS:
            if apart not in modes or fused not in modes:
                continue
            ta, tf = modes[apart], modes[fused]
            rows.append("| " + " | ".join([date, m.get("gpu", "?"), commit, bench, case, f"{apart} → {fused}",
                                           fmt(ta and ta / 1e3, ".1f"), fmt(tf and tf / 1e3, ".1f"),
                                           fmt(ta / tf if ta and tf else None, ".2f")]) + " |")
    return rows


def insert_rows(text, mark, rows, path):
    """Inserts rows below the header of the table that follows mark."""
    lines = text.split("\n")
    try:
        i = lines.index(mark)
    except ValueError:
        raise SystemExit(f"gpu-report: {path}: no line {mark!r}; add it above the table to record into")
    j = i + 1
    while j < len(lines) and not lines[j].startswith("|"):
        j += 1
    if j + 1 >= len(lines) or not re.match(r"^\|[-| :]+\|$", lines[j + 1]):
        raise SystemExit(f"gpu-report: {path}: the table after {mark!r} has no header and separator line")
    return "\n".join(lines[:j + 2] + rows + lines[j + 2:])


def record(args):
    s = read_json(args.summary)
    if not s or s.get("schema") != SCHEMA:
        raise SystemExit(f"gpu-report: {args.summary}: not a gpu-check summary ({SCHEMA})")
    if s.get("mock") and not args.allow_mock:
        raise SystemExit(f"gpu-report: {args.summary} is a dry run on the mock libcuda: its figures are "
                         "meaningless (--allow-mock to record it anyway, for a test)")
    srow, crows, frows = session_row(s), conv_rows(s), fusion_rows(s)
    if args.dry_run:
        print(srow)
        print("\n".join(crows + frows))
        return 0
    text = read(args.benchmarks)
    if text is None:
        raise SystemExit(f"gpu-report: cannot read {args.benchmarks}")
    key = "| " + " | ".join(srow.split(" | ")[0:5]).lstrip("| ")
    if key in text:
        raise SystemExit(f"gpu-report: {args.benchmarks} already has this session ({key} ...)")
    text = insert_rows(text, SESSION_MARK, [srow], args.benchmarks)
    text = insert_rows(text, CONV_MARK, crows, args.benchmarks)
    text = insert_rows(text, FUSION_MARK, frows, args.benchmarks)
    with open(args.benchmarks + ".tmp", "w") as f:
        f.write(text)
    os.replace(args.benchmarks + ".tmp", args.benchmarks)
    print(f"gpu-report: {args.benchmarks}: 1 session row, {len(crows)} conv rows and {len(frows)} fusion rows added "
          f"({s['machine'].get('gpu', '?')}, {s['generated']})")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("conv-table", "net-table", "summary"):
        sub.add_parser(name).add_argument("dir", help="gpu-check's output folder")
    sub.add_parser("model-suite").add_argument("log", help="output of go test -run '^$' -bench ConvPeer "
                                                   "-benchtime 1x ./gpu on a machine without a GPU")
    r = sub.add_parser("record")
    r.add_argument("summary", help="gpu-summary.json of a GPU session")
    r.add_argument("--benchmarks", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "BENCHMARKS.md"))
    r.add_argument("--dry-run", action="store_true", help="print the rows, write nothing")
    r.add_argument("--allow-mock", action="store_true", help="record a dry run's summary (tests only)")
    args = ap.parse_args()
    if args.cmd == "record":
        return record(args)
    if args.cmd == "model-suite":
        print(model_suite(args.log))
        return 0
    if not os.path.isdir(os.path.join(args.dir, "gpu-report-logs")):
        raise SystemExit(f"gpu-report: {args.dir}/gpu-report-logs not found: run scripts/gpu-check.sh first")
    if args.cmd == "conv-table":
        print(conv_table(args.dir))
    elif args.cmd == "net-table":
        print(net_table(args.dir))
    else:
        print(write_summary(args.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
