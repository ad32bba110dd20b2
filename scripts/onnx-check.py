#!/usr/bin/env python3
"""Checks ONNX files written by host/ckpt/onnx in onnx and ONNX Runtime.

usage: scripts/onnx-check.py MANIFEST.json

Run by the Go tests (host/ckpt/onnx/ort_test.go) with /usr/bin/python3 and
onnx, onnxruntime and numpy from scripts/python-pins.txt on PYTHONPATH.

MANIFEST lists cases: {"cases": [{"name", "model", "inputs": [{"name",
"shape", "file"}]}]}, each input a file of raw little-endian float32. For
each case this script loads the model with the onnx package, runs
onnx.checker.check_model(full_check=True), compares the file with the
onnx package's own serialization of what it parsed, dumps the model's
fields, and runs it in ONNX Runtime (CPU) on the inputs. It prints one JSON
object: {"versions": {...}, "cases": {name: {"error", "reserialized_equal",
"model", "outputs"}}}; a failure of one case is its "error" (a traceback),
the others still run. Floats are written as Python floats (doubles), so
float32 values come back exactly; NaN and infinities, which JSON lacks, as
the strings "nan", "inf" and "-inf".
"""
import json
import math
import sys
import traceback

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper


def floats(arr):
    return [v if math.isfinite(v) else str(v) for v in arr.astype(np.float64).ravel().tolist()]


def attr_value(a):
    t = onnx.AttributeProto
    if a.type == t.FLOAT:
        return a.f
    if a.type == t.INT:
        return a.i
    if a.type == t.STRING:
        return a.s.decode()
    if a.type == t.INTS:
        return list(a.ints)
    raise ValueError("unexpected attribute type %d in %s" % (a.type, a.name))


def value_info(v):
    tt = v.type.tensor_type
    dims = []
    for d in tt.shape.dim:
        dims.append(d.dim_param if d.HasField("dim_param") else d.dim_value)
    return {"name": v.name, "elem_type": tt.elem_type, "dims": dims}


def dump(m):
    g = m.graph
    return {
        "ir_version": m.ir_version,
        "producer_name": m.producer_name,
        "producer_version": m.producer_version,
        "doc_string": m.doc_string,
        "opset_import": [{"domain": o.domain, "version": o.version} for o in m.opset_import],
        "graph": {
            "name": g.name,
            "doc_string": g.doc_string,
            "nodes": [{
                "name": n.name, "op_type": n.op_type, "domain": n.domain,
                "input": list(n.input), "output": list(n.output), "doc_string": n.doc_string,
                "attribute": [{"name": a.name, "type": onnx.AttributeProto.AttributeType.Name(a.type),
                               "value": attr_value(a)} for a in n.attribute],
            } for n in g.node],
            "initializer": [{
                "name": t.name, "dims": list(t.dims), "data_type": t.data_type,
                "raw_data_len": len(t.raw_data),
                "data": floats(numpy_helper.to_array(t)),
            } for t in g.initializer],
            "input": [value_info(v) for v in g.input],
            "output": [value_info(v) for v in g.output],
        },
    }


def run_case(c):
    with open(c["model"], "rb") as f:
        raw = f.read()
    m = onnx.load_from_string(raw)
    onnx.checker.check_model(m, full_check=True)
    res = {"reserialized_equal": m.SerializeToString() == raw, "model": dump(m)}
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(c["model"], sess_options=so, providers=["CPUExecutionProvider"])
    feed = {}
    for i in c["inputs"]:
        feed[i["name"]] = np.fromfile(i["file"], dtype="<f4").reshape(i["shape"])
    names = [o.name for o in sess.get_outputs()]
    outs = sess.run(names, feed)
    res["outputs"] = [{"name": n, "shape": list(o.shape), "data": floats(o)}
                      for n, o in zip(names, outs)]
    return res


def main():
    with open(sys.argv[1]) as f:
        manifest = json.load(f)
    out = {"versions": {"onnx": onnx.__version__, "onnxruntime": ort.__version__, "numpy": np.__version__},
           "cases": {}}
    for c in manifest["cases"]:
        try:
            out["cases"][c["name"]] = run_case(c)
        except Exception:
            out["cases"][c["name"]] = {"error": traceback.format_exc()}
    json.dump(out, sys.stdout, allow_nan=False)


if __name__ == "__main__":
    main()
