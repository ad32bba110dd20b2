package ptxsim

import "fmt"

// Decoding of the integer instructions.

func (d *decoder) decodeInt(in *inst, s *stmt, oi opInfo, t string) error {
	signed := isSigned(t)
	bits := typeSize(t) * 8
	if t == "pred" {
		bits = 1
		switch oi.base {
		case "and", "or", "xor", "not":
		default:
			return fmt.Errorf("unsupported instruction %s", s.opcode)
		}
	}
	simple := map[string]opcode{"add": opAdd, "sub": opSub, "and": opAnd, "or": opOr, "xor": opXor}
	if op, ok := simple[oi.base]; ok {
		if oi.has("sat") && t == "s32" && (oi.base == "add" || oi.base == "sub") {
			in.op = opAddSatS32
			if oi.base == "sub" {
				in.op = opSubSatS32
			}
			return d.bin(in, s, t)
		}
		if err := oi.only(); err != nil {
			return err
		}
		in.op = op
		return d.bin(in, s, t)
	}
	un := func(op opcode) error {
		if err := oi.only(); err != nil {
			return err
		}
		if err := d.nops(s, 2); err != nil {
			return err
		}
		in.op = op
		return d.operands(in, s, t, t)
	}
	switch oi.base {
	case "not":
		return un(opNot)
	case "cnot":
		return un(opCnot)
	case "neg":
		return un(opNeg)
	case "abs":
		if _, err := oi.wantType("s16", "s32", "s64"); err != nil {
			return err
		}
		return un(opAbsS)
	case "popc", "clz", "brev", "bfind":
		op := map[string]opcode{"popc": opPopc, "clz": opClz, "brev": opBrev, "bfind": opBfind}[oi.base]
		if op == opBfind {
			if err := oi.only("shiftamt"); err != nil {
				return err
			}
			if _, err := oi.wantType("u32", "u64", "s32", "s64"); err != nil {
				return err
			}
		} else {
			if err := oi.only(); err != nil {
				return err
			}
			if _, err := oi.wantType("b32", "b64"); err != nil {
				return err
			}
		}
		if err := d.nops(s, 2); err != nil {
			return err
		}
		in.op = op
		in.sz = uint8(bits / 8)
		dt := t
		if op != opBrev {
			dt = "u32"
		}
		if op == opBfind {
			if oi.has("shiftamt") {
				in.sub = 1
			}
			if signed {
				in.flags |= fSigned
			}
		}
		return d.operands(in, s, dt, t)
	case "shl":
		if err := oi.only(); err != nil {
			return err
		}
		if _, err := oi.wantType("b16", "b32", "b64"); err != nil {
			return err
		}
		in.op = opShl
		if err := d.nops(s, 3); err != nil {
			return err
		}
		return d.operands(in, s, t, t, "u32")
	case "shr":
		if err := oi.only(); err != nil {
			return err
		}
		if _, err := oi.wantType("b16", "b32", "b64", "u16", "u32", "u64", "s16", "s32", "s64"); err != nil {
			return err
		}
		in.op = opShrU
		if signed {
			in.op = opShrS
		}
		if err := d.nops(s, 3); err != nil {
			return err
		}
		return d.operands(in, s, t, t, "u32")
	case "min", "max":
		if err := oi.only(); err != nil {
			return err
		}
		ops := map[string][2]opcode{"min": {opMinU, opMinS}, "max": {opMaxU, opMaxS}}[oi.base]
		in.op = ops[0]
		if signed {
			in.op = ops[1]
		}
		return d.bin(in, s, t)
	case "div", "rem":
		if err := oi.only(); err != nil {
			return err
		}
		ops := map[string][2]opcode{"div": {opDivU, opDivS}, "rem": {opRemU, opRemS}}[oi.base]
		in.op = ops[0]
		if signed {
			in.op = ops[1]
		}
		return d.bin(in, s, t)
	case "mul", "mad":
		mad := oi.base == "mad"
		// mul.mode.type, mad.mode.type and mad.hi.sat.s32 (PTX ISA);
		// the carry forms (mad.cc, madc) are not implemented.
		sat := mad && oi.has("sat")
		if sat {
			if !oi.has("hi") || t != "s32" {
				return fmt.Errorf("%s: .sat is only defined for mad.hi.s32", s.opcode)
			}
			if err := oi.only("hi", "sat"); err != nil {
				return err
			}
		} else if err := oi.only("hi", "lo", "wide"); err != nil {
			return err
		}
		mode, err := oi.need("a mode", "hi", "lo", "wide")
		if err != nil {
			return err
		}
		if _, err := oi.wantType("u16", "u32", "u64", "s16", "s32", "s64"); err != nil {
			return err
		}
		n := 3
		if mad {
			n = 4
		}
		if err := d.nops(s, n); err != nil {
			return err
		}
		srcs := []string{t, t}
		dt := t
		switch {
		case mode == "wide":
			if bits > 32 {
				return fmt.Errorf("%s.wide on 64-bit operands", oi.base)
			}
			dt = fmt.Sprintf("%c%d", t[0], bits*2)
			if dt[0] == 'b' {
				dt = "u" + dt[1:]
			}
			in.op = opMulWideU
			if signed {
				in.op = opMulWideS
			}
			if mad {
				in.op = opMadWideU
				if signed {
					in.op = opMadWideS
				}
			}
		case mode == "hi":
			switch {
			case sat:
				in.op = opMadHiSatS32
			case mad && signed:
				in.op = opMadHiS
			case mad:
				in.op = opMadHiU
			case bits == 64 && signed:
				in.op = opMulHiS64
			case bits == 64:
				in.op = opMulHiU64
			case signed:
				in.op = opMulHiS
			default:
				in.op = opMulHiU
			}
			if mad && bits == 64 {
				return fmt.Errorf("unsupported %s", s.opcode)
			}
		default:
			in.op = opMulLo
			if mad {
				in.op = opMadLo
			}
		}
		if mad {
			srcs = append(srcs, dt)
		}
		if err := d.operands(in, s, dt, srcs...); err != nil {
			return err
		}
		in.sh = uint8(64 - bits)
		in.sz = uint8(bits / 8)
		return nil
	}
	return fmt.Errorf("unsupported instruction %s", s.opcode)
}
