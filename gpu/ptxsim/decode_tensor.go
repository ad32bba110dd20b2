package ptxsim

import "fmt"

// Decoding of the tensor-core instructions: mma.sync and ldmatrix.

// mma shapes and input types
const (
	mmaTF32k8  = iota // m16n8k8 .tf32
	mmaF16k16         // m16n8k16 .f16
	mmaBF16k16        // m16n8k16 .bf16
	mmaF16k8          // m16n8k8 .f16
)

type mmaInfo struct {
	kind       int
	d, a, b, c []int32
}

type ldmInfo struct {
	num   int
	trans bool
	d     []int32
}

func (d *decoder) regList(o operand, n int, dst bool) ([]int32, error) {
	if o.kind != okVec || len(o.vec) != n {
		return nil, fmt.Errorf("expected a vector of %d registers", n)
	}
	var r []int32
	for _, e := range o.vec {
		var s int32
		var err error
		if dst {
			s, _, err = d.dst(e)
		} else {
			s, err = d.src(e, "b32")
		}
		if err != nil {
			return nil, err
		}
		r = append(r, s)
	}
	return r, nil
}

// decodeMma decodes mma.sync.aligned.{m16n8k8,m16n8k16}.row.col.f32.{tf32,f16,bf16}.{...}.f32.
func (d *decoder) decodeMma(in *inst, s *stmt, oi opInfo) error {
	if err := oi.only("sync", "aligned", "m16n8k8", "m16n8k16", "row", "col"); err != nil {
		return err
	}
	if !oi.has("sync") || !oi.has("aligned") || !oi.has("row") || !oi.has("col") || len(oi.types) != 4 ||
		oi.types[0] != "f32" || oi.types[3] != "f32" || oi.types[1] != oi.types[2] {
		return fmt.Errorf("unsupported %s (supported: mma.sync.aligned.{m16n8k8,m16n8k16}.row.col.f32.{tf32,f16,bf16}.*.f32)", s.opcode)
	}
	kind, na, nb := -1, 0, 0
	switch {
	case oi.has("m16n8k8") && oi.types[1] == "tf32":
		kind, na, nb = mmaTF32k8, 4, 2
	case oi.has("m16n8k16") && oi.types[1] == "f16":
		kind, na, nb = mmaF16k16, 4, 2
	case oi.has("m16n8k16") && oi.types[1] == "bf16":
		kind, na, nb = mmaBF16k16, 4, 2
	case oi.has("m16n8k8") && oi.types[1] == "f16":
		kind, na, nb = mmaF16k8, 2, 1
	default:
		return fmt.Errorf("unsupported %s", s.opcode)
	}
	if err := d.nops(s, 4); err != nil {
		return err
	}
	mi := mmaInfo{kind: kind}
	var err error
	if mi.d, err = d.regList(s.ops[0], 4, true); err != nil {
		return err
	}
	if mi.a, err = d.regList(s.ops[1], na, false); err != nil {
		return err
	}
	if mi.b, err = d.regList(s.ops[2], nb, false); err != nil {
		return err
	}
	if mi.c, err = d.regList(s.ops[3], 4, false); err != nil {
		return err
	}
	in.op = opColl
	in.sub = collMma
	in.v[0] = d.constSlot(0xffffffff)
	in.imm = int64(len(d.k.mmas))
	d.k.mmas = append(d.k.mmas, mi)
	return nil
}

// decodeLdmatrix decodes ldmatrix.sync.aligned.m8n8.{x1,x2,x4}{.trans}.shared{.b16}.
func (d *decoder) decodeLdmatrix(in *inst, s *stmt, oi opInfo) error {
	if err := oi.only("sync", "aligned", "m8n8", "x1", "x2", "x4", "trans", "shared"); err != nil {
		return err
	}
	if !oi.has("sync") || !oi.has("aligned") || !oi.has("m8n8") || !oi.has("shared") {
		return fmt.Errorf("unsupported %s", s.opcode)
	}
	li := ldmInfo{num: 1, trans: oi.has("trans")}
	if oi.has("x2") {
		li.num = 2
	}
	if oi.has("x4") {
		li.num = 4
	}
	if err := d.nops(s, 2); err != nil {
		return err
	}
	var err error
	dop := s.ops[0]
	if li.num == 1 && dop.kind != okVec {
		dop = operand{kind: okVec, vec: []operand{dop}}
	}
	if li.d, err = d.regList(dop, li.num, true); err != nil {
		return err
	}
	slot, off, sym, err := d.address(s.ops[1])
	if err != nil {
		return err
	}
	if sym != nil {
		if sym.kind != symShared {
			return fmt.Errorf("ldmatrix from %s, which is not shared", s.ops[1].name)
		}
		a, _ := d.symAddr(s.ops[1].name)
		off += a
	}
	in.op = opColl
	in.sub = collLdmatrix
	in.a, in.b = slot, d.constSlot(uint64(off))
	in.v[0] = d.constSlot(0xffffffff)
	in.imm = int64(len(d.k.ldms))
	d.k.ldms = append(d.k.ldms, li)
	return nil
}
