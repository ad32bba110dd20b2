package ptxsim

import "fmt"

// Decoding of call and the barrier reductions.

func (d *decoder) decodeCall(in *inst, s *stmt, oi opInfo) error {
	if err := oi.only("uni"); err != nil {
		return err
	}
	ops := s.ops
	var rets, args []operand
	if len(ops) > 0 && ops[0].kind == okVec && ops[0].name == "(" {
		rets = ops[0].vec
		ops = ops[1:]
	}
	if len(ops) == 0 || ops[0].kind != okSym {
		return fmt.Errorf("indirect calls are not supported")
	}
	name := ops[0].name
	ops = ops[1:]
	if len(ops) > 0 {
		if ops[0].kind != okVec || ops[0].name != "(" || len(ops) > 1 {
			return fmt.Errorf("bad call operands")
		}
		args = ops[0].vec
	}
	d.edges[d.cur] = append(d.edges[d.cur], name)
	ci, err := d.callee(name)
	if err != nil {
		return err
	}
	if len(args) != len(ci.paramOff) || len(rets) != len(ci.retOff) {
		return fmt.Errorf("call of %s with %d arguments and %d results, want %d and %d", name, len(args), len(rets), len(ci.paramOff), len(ci.retOff))
	}
	var cs callSite
	for i, a := range args {
		sy, ok := d.syms[a.name]
		if a.kind != okSym || !ok || sy.kind != symFrame {
			return fmt.Errorf("call argument %d is not a .param variable", i)
		}
		cs.in = append(cs.in, frameCopy{sy.off, ci.paramOff[i], min(sy.size, ci.paramSize[i])})
	}
	for i, r := range rets {
		sy, ok := d.syms[r.name]
		if r.kind != okSym || !ok || sy.kind != symFrame {
			return fmt.Errorf("call result %d is not a .param variable", i)
		}
		cs.out = append(cs.out, frameCopy{ci.retOff[i], sy.off, min(sy.size, ci.retSize[i])})
	}
	in.op = opCall
	in.b = int32(len(d.k.calls))
	d.k.calls = append(d.k.calls, cs)
	d.fixups = append(d.fixups, fixup{pc: len(d.k.code), fn: name})
	return nil
}

// barrier reductions (inst.sub of opBar)
const (
	barPlain = iota
	barPopc
	barAnd
	barOr
)

// decodeBarRed decodes bar.red.{popc.u32,and.pred,or.pred} d, a{, b}, {!}c.
func (d *decoder) decodeBarRed(in *inst, s *stmt, oi opInfo) error {
	if err := oi.only("red", "aligned", "popc", "and", "or"); err != nil {
		return err
	}
	o, err := oi.need("an operation", "popc", "and", "or")
	if err != nil {
		return err
	}
	want := "pred"
	if o == "popc" {
		want = "u32"
	}
	if _, err := oi.wantType(want); err != nil {
		return err
	}
	in.sub = map[string]uint8{"popc": barPopc, "and": barAnd, "or": barOr}[o]
	if err := d.nops(s, 3, 4); err != nil {
		return err
	}
	in.op = opBar
	if in.d, _, err = d.dst(s.ops[0]); err != nil {
		return err
	}
	if in.a, err = d.src(s.ops[1], "u32"); err != nil {
		return err
	}
	in.b = -1
	if len(s.ops) == 4 {
		if in.b, err = d.src(s.ops[2], "u32"); err != nil {
			return err
		}
	}
	c := s.ops[len(s.ops)-1]
	if c.neg {
		in.flags |= fNegC
		c.neg = false
	}
	in.c, err = d.src(c, "pred")
	return err
}
