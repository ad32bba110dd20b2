package ptxsim

import (
	"fmt"
	"strings"
)

// Decoding of the memory instructions: ld, st, atom/red, cp.async.

// memory spaces
const (
	spGlobal = iota
	spShared
	spLocal
	spParam
	spGeneric
	spFrame
	spConst
)

// address decodes [base+off] into (slot, offset, space of a symbol base).
func (d *decoder) address(o operand) (slot int32, off int64, sym *symbol, err error) {
	if o.kind != okAddr {
		return 0, 0, nil, fmt.Errorf("expected an address, found %s", describe(o))
	}
	if o.name == "" {
		return 1, o.ival, nil, nil
	}
	if _, isReg := d.regs[o.name]; isReg || strings.HasPrefix(o.name, "%") {
		s, bits, err := d.reg(operand{kind: okReg, name: o.name})
		if err != nil {
			return 0, 0, nil, err
		}
		if bits != 64 && bits != 32 {
			return 0, 0, nil, fmt.Errorf("address register %s is not 32/64-bit", o.name)
		}
		return s, o.ival, nil, nil
	}
	sy, ok := d.syms[o.name]
	if !ok {
		return 0, 0, nil, fmt.Errorf("unknown symbol %s", o.name)
	}
	if sy.kind == symGlobal {
		return d.globalSlot(int(sy.off)), o.ival, nil, nil
	}
	return 1, o.ival, &sy, nil
}

func (d *decoder) decodeMem(in *inst, s *stmt, oi opInfo) error {
	ld := oi.base != "st"
	t, err := oi.typ()
	if err != nil {
		return err
	}
	if err := oi.onlyMem("global", "shared", "local", "param", "const", "v2", "v4",
		"nc", "volatile", "relaxed", "acquire", "release", "weak", "gpu", "cta", "sys", "ca", "cg", "cs", "lu", "cv", "wb", "wt"); err != nil {
		return err
	}
	sp, err := oi.one("global", "shared", "local", "param", "const")
	if err != nil {
		return err
	}
	space := map[string]int{"": spGeneric, "global": spGlobal, "shared": spShared, "local": spLocal, "param": spParam, "const": spConst}[sp]
	vec, err := oi.one("v2", "v4")
	if err != nil {
		return err
	}
	nv := map[string]int{"": 1, "v2": 2, "v4": 4}[vec]
	if err := d.nops(s, 2); err != nil {
		return err
	}
	size := typeSize(t)
	if t == "pred" {
		return fmt.Errorf("ld/st of .pred")
	}
	in.sz = uint8(size)
	in.nv = uint8(nv)
	in.td = typeCode(t)
	aop, vop := s.ops[1], s.ops[0]
	if !ld {
		aop, vop = s.ops[0], s.ops[1]
	}
	slot, off, sym, err := d.address(aop)
	if err != nil {
		return err
	}
	in.a, in.imm = slot, off
	if sym != nil {
		switch sym.kind {
		case symParam:
			if space != spParam {
				return fmt.Errorf("kernel parameter %s accessed outside .param", aop.name)
			}
			in.imm += sym.off
			if in.imm < 0 || in.imm+int64(size*nv) > sym.off+sym.size {
				return fmt.Errorf("access outside parameter %s", aop.name)
			}
		case symFrame:
			if space != spParam {
				return fmt.Errorf("parameter %s accessed outside .param", aop.name)
			}
			space = spFrame
			in.imm += sym.off
			if in.imm < sym.off || in.imm+int64(size*nv) > sym.off+sym.size {
				return fmt.Errorf("access outside parameter %s", aop.name)
			}
		case symShared:
			a, err := d.symAddr(aop.name)
			if err != nil {
				return err
			}
			if space == spGeneric {
				a += sharedWindow
			} else if space != spShared {
				return fmt.Errorf("shared variable %s accessed as another space", aop.name)
			}
			in.imm += a
		case symLocal:
			if space == spGeneric {
				in.imm += localWindow
			} else if space != spLocal {
				return fmt.Errorf("local variable %s accessed as another space", aop.name)
			}
			in.imm += sym.off
		case symConst:
			if space == spGeneric {
				in.imm += constWindow
			} else if space != spConst {
				return fmt.Errorf("constant %s accessed as another space", aop.name)
			}
			in.imm += sym.off
		default:
			return fmt.Errorf("cannot access %s", aop.name)
		}
	} else if space == spParam {
		return fmt.Errorf("register-addressed .param access is not supported")
	}
	if ld {
		in.op = [...]opcode{opLdGlobal, opLdShared, opLdLocal, opLdParam, opLdGeneric, opLdParam, opLdConst}[space]
	} else {
		if space == spConst {
			return fmt.Errorf("st.const")
		}
		in.op = [...]opcode{opStGlobal, opStShared, opStLocal, opStParam, opStGeneric, opStParam}[space]
		if space == spParam {
			return fmt.Errorf("st.param to a kernel parameter")
		}
	}
	if space == spFrame {
		in.sub = 1 // frame, not kernel params
	}
	// value registers
	vals := []operand{vop}
	if nv > 1 {
		if vop.kind != okVec || len(vop.vec) != nv {
			return fmt.Errorf("vector access needs %d registers", nv)
		}
		vals = vop.vec
	}
	for i, v := range vals {
		if ld {
			r, bits, err := d.dst(v)
			if err != nil {
				return err
			}
			in.v[i] = r
			if i == 0 {
				in.mask = bitsMask(bits)
				if bits < size*8 {
					in.mask = bitsMask(size * 8)
				}
			}
		} else {
			r, err := d.src(v, t)
			if err != nil {
				return err
			}
			in.v[i] = r
		}
	}
	if ld && isSigned(t) && size < 8 {
		in.flags |= fSigned
		in.sh = uint8(64 - size*8)
	}
	if ld && t[0] == 'f' {
		in.mask = bitsMask(size * 8)
	}
	return nil
}

// atomic operations
const (
	aNone = iota
	aAdd
	aMin
	aMax
	aAnd
	aOr
	aXor
	aExch
	aCas
	aInc
	aDec
)

func atomOpCode(s string) uint8 {
	return map[string]uint8{"add": aAdd, "min": aMin, "max": aMax, "and": aAnd, "or": aOr, "xor": aXor,
		"exch": aExch, "cas": aCas, "inc": aInc, "dec": aDec}[s]
}

func (d *decoder) decodeAtom(in *inst, s *stmt, oi opInfo) error {
	red := oi.base == "red"
	t, err := oi.typ()
	if err != nil {
		return err
	}
	atomOps := []string{"add", "min", "max", "and", "or", "xor", "exch", "cas", "inc", "dec"}
	if err := oi.onlyMem(append([]string{"global", "shared", "relaxed", "acquire", "release", "acq_rel",
		"gpu", "cta", "sys", "noftz"}, atomOps...)...); err != nil {
		return err
	}
	sp, err := oi.one("global", "shared")
	if err != nil {
		return err
	}
	space := map[string]int{"": spGeneric, "global": spGlobal, "shared": spShared}[sp]
	if _, err := oi.one("relaxed", "acquire", "release", "acq_rel"); err != nil {
		return err
	}
	if _, err := oi.one("gpu", "cta", "sys"); err != nil {
		return err
	}
	o, err := oi.one(atomOps...)
	if err != nil {
		return err
	}
	if o == "" {
		return fmt.Errorf("%s without an operation", oi.base)
	}
	in.sub = atomOpCode(o)
	if t == "f16" || t == "bf16" || t == "f16x2" || t == "bf16x2" || t == "b16" {
		return fmt.Errorf("unsupported %s", s.opcode)
	}
	in.op = opAtom
	in.sub2 = uint8(space)
	in.sz = uint8(typeSize(t))
	in.td = typeCode(t)
	if in.sz != 4 && in.sz != 8 {
		return fmt.Errorf("unsupported atomic size in %s", s.opcode)
	}
	ops := s.ops
	in.d = -1
	if !red {
		if len(ops) < 1 {
			return fmt.Errorf("missing operands")
		}
		if in.d, _, err = d.dst(ops[0]); err != nil {
			return err
		}
		ops = ops[1:]
	} else {
		in.d = d.newSlot()
	}
	want := 2
	if in.sub == aCas {
		want = 3
	}
	if len(ops) != want {
		return fmt.Errorf("wrong number of operands")
	}
	slot, off, sym, err := d.address(ops[0])
	if err != nil {
		return err
	}
	in.a, in.imm = slot, off
	if sym != nil {
		if sym.kind != symShared {
			return fmt.Errorf("atomic on %s is not supported", ops[0].name)
		}
		a, _ := d.symAddr(ops[0].name)
		if space == spGeneric {
			a += sharedWindow
		}
		in.imm += a
	}
	if in.b, err = d.src(ops[1], t); err != nil {
		return err
	}
	in.c = 1
	if in.sub == aCas {
		if in.c, err = d.src(ops[2], t); err != nil {
			return err
		}
	}
	in.mask = bitsMask(int(in.sz) * 8)
	return nil
}

// decodeCpAsync decodes cp.async (sm_80): cp.async.{ca,cg}.shared.global
// [dst], [src], size{, src-size}, cp.async.commit_group,
// cp.async.wait_group N and cp.async.wait_all. The copy reads its source
// at issue and lands in shared memory when a wait of the issuing thread
// covers its group (see worker.cpAsync).
func (d *decoder) decodeCpAsync(in *inst, s *stmt, oi opInfo) error {
	if !oi.has("async") {
		return fmt.Errorf("unsupported instruction %s", s.opcode)
	}
	switch {
	case oi.has("commit_group"), oi.has("wait_all"):
		if err := d.nops(s, 0); err != nil {
			return err
		}
		in.op = opCpAsyncWait
		in.sub = 0
		if oi.has("wait_all") {
			in.sub = 2
		}
		return nil
	case oi.has("wait_group"):
		if err := d.nops(s, 1); err != nil {
			return err
		}
		if s.ops[0].kind != okImm || s.ops[0].ival < 0 {
			return fmt.Errorf("cp.async.wait_group needs a non-negative integer constant")
		}
		in.op = opCpAsyncWait
		in.sub = 1
		in.imm = s.ops[0].ival
		return nil
	}
	if err := oi.onlyMem("async", "ca", "cg", "shared", "global"); err != nil {
		return err
	}
	if _, err := oi.need("a cache operator", "ca", "cg"); err != nil {
		return err
	}
	if !oi.has("shared") || !oi.has("global") {
		return fmt.Errorf("unsupported %s", s.opcode)
	}
	if err := d.nops(s, 3, 4); err != nil {
		return err
	}
	dslot, doff, dsym, err := d.address(s.ops[0])
	if err != nil {
		return err
	}
	if dsym != nil {
		if dsym.kind != symShared {
			return fmt.Errorf("cp.async destination %s is not shared", s.ops[0].name)
		}
		a, _ := d.symAddr(s.ops[0].name)
		doff += a
	}
	sslot, soff, ssym, err := d.address(s.ops[1])
	if err != nil {
		return err
	}
	if ssym != nil {
		return fmt.Errorf("cp.async source must be a register address")
	}
	if s.ops[2].kind != okImm || (s.ops[2].ival != 4 && s.ops[2].ival != 8 && s.ops[2].ival != 16) {
		return fmt.Errorf("cp.async size must be 4, 8 or 16")
	}
	in.op = opCpAsync
	in.a, in.imm = dslot, doff
	in.b = sslot
	in.c = d.constSlot(uint64(soff))
	in.sz = uint8(s.ops[2].ival)
	in.d = -1
	if len(s.ops) == 4 {
		if in.d, err = d.src(s.ops[3], "u32"); err != nil {
			return err
		}
	}
	return nil
}
