// Package onnx writes ONNX models: a small graph builder (Graph, Node,
// Initializer, ValueInfo, and one helper per operator that a convtrain
// network needs) and a streaming writer of the ModelProto.
//
// What it writes: one graph of the default domain ("", opset 17 by
// default, up to 22; the IR version that goes with the opset, 8 for opset
// 17), float32 inputs and outputs with a symbolic batch dimension "N",
// float32 initializers stored as raw_data, producer "convtrain". The
// operators are Conv, MaxPool, AveragePool, GlobalAveragePool,
// BatchNormalization (inference), Relu, LeakyRelu, Sigmoid, Tanh, Erf,
// Gelu (opset 20 on; below it the Gelu helper builds it from Erf or Tanh,
// Mul and Add), Add, Sub, Mul, Div, Concat, Flatten, Gemm, Softmax,
// Identity and Constant; the helpers set the attributes as the ONNX
// operator schemas of opsets 17 to 22 define them. An exporter walks its
// layers, appends the helpers' nodes and one Initializer per parameter,
// whose Data is the layer's own slice, and calls Write.
//
// One pass: Write computes the size of every message first, then streams
// the bytes through a 64 KiB buffer, converting each initializer's float32
// values to little endian as they go out. It holds no second copy of the
// weights, and the file is byte for byte what protobuf serializes for the
// same ModelProto (fields in number order, repeated scalars unpacked, as
// onnx.proto is proto2). The encoding uses google.golang.org/protobuf's
// protowire; no generated code.
//
// Validate (called by Write) refuses, with an error wrapping ErrInvalid
// that names the node, initializer or value, what would not make a valid
// model: an operator outside the list above or newer than the model's
// opset, empty or duplicate names, an input defined by neither a graph
// input, an initializer nor an earlier node, an undefined graph output,
// unknown or mistyped attributes, initializer data that does not fill its
// shape. A model over 2 GiB (protobuf's limit; external data is not
// supported) is refused with ErrTooLarge.
//
// The tests check the files with the onnx package's full checker and run
// them in ONNX Runtime (scripts/onnx-check.py, with /usr/bin/python3 and
// the packages pinned in scripts/python-pins.txt; see ort_test.go).
package onnx
