package onnx

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// Field numbers of onnx.proto (ONNX's proto2 schema) used by the writer.
const (
	modelIRVersion       = 1
	modelProducerName    = 2
	modelProducerVersion = 3
	modelDocString       = 6
	modelGraph           = 7
	modelOpsetImport     = 8

	opsetDomain  = 1
	opsetVersion = 2

	graphNode        = 1
	graphName        = 2
	graphInitializer = 5
	graphDocString   = 10
	graphInput       = 11
	graphOutput      = 12

	nodeInput     = 1
	nodeOutput    = 2
	nodeName      = 3
	nodeOpType    = 4
	nodeAttribute = 5
	nodeDocString = 6

	attrName = 1
	attrF    = 2
	attrI    = 3
	attrS    = 4
	attrInts = 8
	attrType = 20

	tensorDims     = 1
	tensorDataType = 2
	tensorName     = 8
	tensorRawData  = 9

	valueName = 1
	valueType = 2

	typeTensor      = 1 // TypeProto.tensor_type
	tensorElemType  = 1 // TypeProto.Tensor.elem_type
	tensorShape     = 2 // TypeProto.Tensor.shape
	shapeDim        = 1 // TensorShapeProto.dim
	dimValue        = 1 // TensorShapeProto.Dimension.dim_value
	dimParam        = 2 // TensorShapeProto.Dimension.dim_param
	dataTypeFloat32 = 1 // TensorProto.DataType FLOAT
)

// maxSize is the largest message that protobuf parsers accept: 2 GiB − 1
// (a variable so that a test can lower it).
var maxSize int64 = math.MaxInt32

// bufSize is the writer's buffer: the only memory Write needs beyond the
// model's own (plus the longest single string, should one be longer).
const bufSize = 64 << 10

// Size returns the number of bytes that Write writes for m, after checking
// m as Validate does. The error wraps ErrInvalid, or ErrTooLarge when the
// model exceeds the 2 GiB that a protobuf message may hold.
func Size(m Model) (int64, error) {
	if err := m.Validate(); err != nil {
		return 0, err
	}
	n := sizeModel(&m)
	if n > maxSize {
		return 0, fmt.Errorf("onnx: model %q is %d bytes, over the %d bytes a protobuf message may hold (external data is not supported): %w",
			m.Graph.Name, n, maxSize, ErrTooLarge)
	}
	return n, nil
}

// Write writes m to w as an ONNX model file (a serialized ModelProto) in
// one pass: every message's size is computed first, then the bytes are
// streamed out through a buffer of 64 KiB, each initializer's raw_data
// converted from its float32 slice to little endian on the way. No second
// copy of the weights is made. The fields are written in field-number
// order, repeated scalars unpacked, as protobuf itself serializes
// onnx.proto, so the file is byte for byte what the onnx package writes for
// the same ModelProto.
//
// The model is checked first (see Validate and Size); nothing is written
// when it is invalid. An error of w is returned wrapped, with the offset.
func Write(w io.Writer, m Model) error {
	size, err := Size(m)
	if err != nil {
		return err
	}
	e := &encoder{w: w, buf: make([]byte, 0, bufSize)}
	e.model(&m)
	e.flush()
	if e.err != nil {
		return fmt.Errorf("onnx: write model %q at byte %d of %d: %w", m.Graph.Name, e.n, size, e.err)
	}
	if e.n != size {
		return fmt.Errorf("onnx: wrote %d bytes for model %q, computed %d: internal error, please report it", e.n, m.Graph.Name, size)
	}
	return nil
}

// Sizes, in int64 so that no sum overflows before the 2 GiB check.

func sizeTag(num protowire.Number) int64 { return int64(protowire.SizeTag(num)) }

func sizeLen(num protowire.Number, n int64) int64 {
	return sizeTag(num) + int64(protowire.SizeVarint(uint64(n))) + n
}

func sizeString(num protowire.Number, s string) int64 { return sizeLen(num, int64(len(s))) }

func sizeVarint(num protowire.Number, v uint64) int64 {
	return sizeTag(num) + int64(protowire.SizeVarint(v))
}

func sizeModel(m *Model) int64 {
	n := sizeVarint(modelIRVersion, uint64(IRVersion(m.opset()))) + sizeString(modelProducerName, m.producer())
	if m.ProducerVersion != "" {
		n += sizeString(modelProducerVersion, m.ProducerVersion)
	}
	if m.Doc != "" {
		n += sizeString(modelDocString, m.Doc)
	}
	n += sizeLen(modelGraph, sizeGraph(&m.Graph))
	return n + sizeLen(modelOpsetImport, sizeOpset(m.opset()))
}

func (m *Model) producer() string {
	if m.ProducerName == "" {
		return DefaultProducer
	}
	return m.ProducerName
}

func sizeOpset(v int64) int64 {
	return sizeString(opsetDomain, "") + sizeVarint(opsetVersion, uint64(v))
}

func sizeGraph(g *Graph) int64 {
	var n int64
	for i := range g.Nodes {
		n += sizeLen(graphNode, sizeNode(&g.Nodes[i]))
	}
	n += sizeString(graphName, g.Name)
	for i := range g.Initializers {
		n += sizeLen(graphInitializer, sizeTensor(&g.Initializers[i]))
	}
	if g.Doc != "" {
		n += sizeString(graphDocString, g.Doc)
	}
	for i := range g.Inputs {
		n += sizeLen(graphInput, sizeValueInfo(&g.Inputs[i]))
	}
	for i := range g.Outputs {
		n += sizeLen(graphOutput, sizeValueInfo(&g.Outputs[i]))
	}
	return n
}

func sizeNode(nd *Node) int64 {
	var n int64
	for _, s := range nd.Inputs {
		n += sizeString(nodeInput, s)
	}
	for _, s := range nd.Outputs {
		n += sizeString(nodeOutput, s)
	}
	n += sizeString(nodeName, nd.Name) + sizeString(nodeOpType, nd.Op)
	for i := range nd.Attrs {
		n += sizeLen(nodeAttribute, sizeAttr(&nd.Attrs[i]))
	}
	if nd.Doc != "" {
		n += sizeString(nodeDocString, nd.Doc)
	}
	return n
}

func sizeAttr(a *Attr) int64 {
	n := sizeString(attrName, a.Name)
	switch a.Type {
	case AttrFloat:
		n += sizeTag(attrF) + int64(protowire.SizeFixed32())
	case AttrInt:
		n += sizeVarint(attrI, uint64(a.I))
	case AttrString:
		n += sizeString(attrS, a.S)
	case AttrInts:
		for _, v := range a.Ints {
			n += sizeVarint(attrInts, uint64(v))
		}
	}
	return n + sizeVarint(attrType, uint64(a.Type))
}

func sizeTensor(t *Initializer) int64 {
	var n int64
	for _, d := range t.Dims {
		n += sizeVarint(tensorDims, uint64(d))
	}
	n += sizeVarint(tensorDataType, dataTypeFloat32) + sizeString(tensorName, t.Name)
	return n + sizeLen(tensorRawData, 4*int64(len(t.Data)))
}

func sizeValueInfo(v *ValueInfo) int64 {
	return sizeString(valueName, v.Name) + sizeLen(valueType, sizeType(v))
}

// sizeType is the size of the TypeProto of v, a float32 tensor.
func sizeType(v *ValueInfo) int64 { return sizeLen(typeTensor, sizeTensorType(v)) }

func sizeTensorType(v *ValueInfo) int64 {
	return sizeVarint(tensorElemType, dataTypeFloat32) + sizeLen(tensorShape, sizeShape(v))
}

func sizeShape(v *ValueInfo) int64 {
	var n int64
	for i := range v.Dims {
		n += sizeLen(shapeDim, sizeDim(&v.Dims[i]))
	}
	return n
}

func sizeDim(d *Dim) int64 {
	if d.Param != "" {
		return sizeString(dimParam, d.Param)
	}
	return sizeVarint(dimValue, uint64(d.Value))
}

// encoder appends to buf and hands it to w whenever it holds bufSize bytes
// or more; n counts the bytes w took, err keeps w's first error (after
// which nothing more is written).
type encoder struct {
	w   io.Writer
	buf []byte
	n   int64
	err error
}

func (e *encoder) flush() {
	if e.err == nil && len(e.buf) > 0 {
		k, err := e.w.Write(e.buf)
		e.n += int64(k)
		if err == nil && k < len(e.buf) {
			err = io.ErrShortWrite
		}
		e.err = err
	}
	e.buf = e.buf[:0]
}

func (e *encoder) spill() {
	if len(e.buf) >= bufSize {
		e.flush()
	}
}

// message starts a length-delimited field of n bytes; its content follows.
func (e *encoder) message(num protowire.Number, n int64) {
	e.buf = protowire.AppendTag(e.buf, num, protowire.BytesType)
	e.buf = protowire.AppendVarint(e.buf, uint64(n))
	e.spill()
}

func (e *encoder) string(num protowire.Number, s string) {
	e.buf = protowire.AppendTag(e.buf, num, protowire.BytesType)
	e.buf = protowire.AppendString(e.buf, s)
	e.spill()
}

func (e *encoder) varint(num protowire.Number, v uint64) {
	e.buf = protowire.AppendTag(e.buf, num, protowire.VarintType)
	e.buf = protowire.AppendVarint(e.buf, v)
	e.spill()
}

func (e *encoder) fixed32(num protowire.Number, v uint32) {
	e.buf = protowire.AppendTag(e.buf, num, protowire.Fixed32Type)
	e.buf = protowire.AppendFixed32(e.buf, v)
	e.spill()
}

// float32s streams data as IEEE 754 little-endian bytes, at most bufSize
// bytes at a time.
func (e *encoder) float32s(data []float32) {
	for len(data) > 0 && e.err == nil {
		room := (bufSize - len(e.buf)) / 4
		if room <= 0 {
			e.flush()
			continue
		}
		k := min(room, len(data))
		for _, v := range data[:k] {
			e.buf = binary.LittleEndian.AppendUint32(e.buf, math.Float32bits(v))
		}
		data = data[k:]
	}
	e.spill()
}

func (e *encoder) model(m *Model) {
	e.varint(modelIRVersion, uint64(IRVersion(m.opset())))
	e.string(modelProducerName, m.producer())
	if m.ProducerVersion != "" {
		e.string(modelProducerVersion, m.ProducerVersion)
	}
	if m.Doc != "" {
		e.string(modelDocString, m.Doc)
	}
	e.message(modelGraph, sizeGraph(&m.Graph))
	e.graph(&m.Graph)
	e.message(modelOpsetImport, sizeOpset(m.opset()))
	e.string(opsetDomain, "")
	e.varint(opsetVersion, uint64(m.opset()))
}

func (e *encoder) graph(g *Graph) {
	for i := range g.Nodes {
		nd := &g.Nodes[i]
		e.message(graphNode, sizeNode(nd))
		e.node(nd)
	}
	e.string(graphName, g.Name)
	for i := range g.Initializers {
		t := &g.Initializers[i]
		e.message(graphInitializer, sizeTensor(t))
		e.tensor(t)
	}
	if g.Doc != "" {
		e.string(graphDocString, g.Doc)
	}
	for i := range g.Inputs {
		e.valueInfo(graphInput, &g.Inputs[i])
	}
	for i := range g.Outputs {
		e.valueInfo(graphOutput, &g.Outputs[i])
	}
}

func (e *encoder) node(nd *Node) {
	for _, s := range nd.Inputs {
		e.string(nodeInput, s)
	}
	for _, s := range nd.Outputs {
		e.string(nodeOutput, s)
	}
	e.string(nodeName, nd.Name)
	e.string(nodeOpType, nd.Op)
	for i := range nd.Attrs {
		a := &nd.Attrs[i]
		e.message(nodeAttribute, sizeAttr(a))
		e.attr(a)
	}
	if nd.Doc != "" {
		e.string(nodeDocString, nd.Doc)
	}
}

func (e *encoder) attr(a *Attr) {
	e.string(attrName, a.Name)
	switch a.Type {
	case AttrFloat:
		e.fixed32(attrF, math.Float32bits(a.F))
	case AttrInt:
		e.varint(attrI, uint64(a.I))
	case AttrString:
		e.string(attrS, a.S)
	case AttrInts:
		for _, v := range a.Ints {
			e.varint(attrInts, uint64(v))
		}
	}
	e.varint(attrType, uint64(a.Type))
}

func (e *encoder) tensor(t *Initializer) {
	for _, d := range t.Dims {
		e.varint(tensorDims, uint64(d))
	}
	e.varint(tensorDataType, dataTypeFloat32)
	e.string(tensorName, t.Name)
	e.message(tensorRawData, 4*int64(len(t.Data)))
	e.float32s(t.Data)
}

func (e *encoder) valueInfo(num protowire.Number, v *ValueInfo) {
	e.message(num, sizeValueInfo(v))
	e.string(valueName, v.Name)
	e.message(valueType, sizeType(v))
	e.message(typeTensor, sizeTensorType(v))
	e.varint(tensorElemType, dataTypeFloat32)
	e.message(tensorShape, sizeShape(v))
	for i := range v.Dims {
		d := &v.Dims[i]
		e.message(shapeDim, sizeDim(d))
		if d.Param != "" {
			e.string(dimParam, d.Param)
		} else {
			e.varint(dimValue, uint64(d.Value))
		}
	}
}
