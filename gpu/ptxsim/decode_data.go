package ptxsim

import "fmt"

// Decoding of mov and cvta.

func (d *decoder) decodeMov(in *inst, s *stmt, oi opInfo) error {
	if err := oi.only(); err != nil {
		return err
	}
	t, err := oi.typ()
	if err != nil {
		return err
	}
	if err := d.nops(s, 2); err != nil {
		return err
	}
	bits := typeSize(t) * 8
	if t == "pred" {
		bits = 1
	}
	in.mask = bitsMask(bits)
	dop, sop := s.ops[0], s.ops[1]
	switch {
	case dop.kind == okVec: // unpack
		in.op = opUnpack
		in.nv = uint8(len(dop.vec))
		if bits%len(dop.vec) != 0 || len(dop.vec) > 4 {
			return fmt.Errorf("bad unpack")
		}
		w := bits / len(dop.vec)
		in.sz = uint8(w)
		in.mask = bitsMask(w)
		for i, e := range dop.vec {
			if in.v[i], _, err = d.dst(e); err != nil {
				return err
			}
		}
		in.a, err = d.src(sop, t)
		return err
	case sop.kind == okVec: // pack
		in.op = opPack
		in.nv = uint8(len(sop.vec))
		if bits%len(sop.vec) != 0 || len(sop.vec) > 4 {
			return fmt.Errorf("bad pack")
		}
		w := bits / len(sop.vec)
		in.sz = uint8(w)
		in.mask = bitsMask(w)
		for i, e := range sop.vec {
			if in.v[i], err = d.src(e, fmt.Sprintf("b%d", w)); err != nil {
				return err
			}
		}
		in.d, _, err = d.dst(dop)
		return err
	}
	in.op = opMov
	if in.d, _, err = d.dst(dop); err != nil {
		return err
	}
	if sop.kind == okReg && (sop.name == "%clock" || sop.name == "%clock64" || sop.name == "%globaltimer") {
		in.op = opClock // deterministic: the thread's instruction count
		return nil
	}
	if sop.kind == okSym {
		if sym, ok := d.syms[sop.name]; ok && (sym.kind == symParam || sym.kind == symFrame) {
			return fmt.Errorf("taking the address of parameter %s is not supported", sop.name)
		}
	}
	in.a, err = d.src(sop, t)
	return err
}

func (d *decoder) decodeCvta(in *inst, s *stmt, oi opInfo) error {
	// cvta{.to}.space.u64 (.param and .shared::cluster are not implemented;
	// the windows of the generic address space need 64-bit addresses)
	if err := oi.only("to", "global", "shared", "local", "const"); err != nil {
		return err
	}
	space, err := oi.need("a state space", "global", "shared", "local", "const")
	if err != nil {
		return err
	}
	t, err := oi.wantType("u64")
	if err != nil {
		return err
	}
	if err := d.nops(s, 2); err != nil {
		return err
	}
	if err := d.operands(in, s, t, t); err != nil {
		return err
	}
	in.op = opAddImm
	to := oi.has("to")
	win := map[string]int64{"global": 0, "shared": sharedWindow, "local": localWindow, "const": constWindow}[space]
	if to {
		win = -win
	}
	in.imm = win
	return nil
}
