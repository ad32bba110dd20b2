package ptxsim

import (
	"fmt"
	"strings"
)

// Decoding of the floating-point instructions, comparisons (setp, set) and
// conversions (cvt).

// float unary sub-operations
const (
	uEx2 = iota
	uLg2
	uRsqrt
	uSin
	uCos
	uTanh
	uSqrtApprox
	uRcpApprox
)

// float slow-path sub-operations
const (
	fopAdd = iota
	fopSub
	fopMul
	fopFma
	fopDiv
	fopSqrt
	fopRcp
)

func (d *decoder) decodeFloat(in *inst, s *stmt, oi opInfo, t string) error {
	f64 := t == "f64"
	ftz := oi.has("ftz")
	sat := oi.has("sat")
	rnd := oi.rounding()
	if ftz {
		in.flags |= fFtz
	}
	if sat {
		in.flags |= fSat
	}
	in.rnd = rnd
	sel := func(a, b opcode) opcode {
		if f64 {
			return b
		}
		return a
	}
	arith := map[string]uint8{"add": fopAdd, "sub": fopSub, "mul": fopMul, "fma": fopFma, "mad": fopFma}
	if fop, ok := arith[oi.base]; ok {
		if err := oi.only("rn", "rz", "rm", "rp", "ftz", "sat"); err != nil {
			return err
		}
		n := 3
		if fop == fopFma {
			n = 4
		}
		if err := d.nops(s, n); err != nil {
			return err
		}
		ts := []string{t, t, t}[:n-1]
		if err := d.operands(in, s, t, ts...); err != nil {
			return err
		}
		fast := rnd == rnNone || rnd == rnRN
		if fast && !sat {
			switch {
			case f64:
				in.op = [...]opcode{opAddF64, opSubF64, opMulF64, opFmaF64}[fop]
			case ftz:
				in.op = [...]opcode{opAddF32Ftz, opSubF32Ftz, opMulF32Ftz, opFmaF32Ftz}[fop]
			default:
				in.op = [...]opcode{opAddF32, opSubF32, opMulF32, opFmaF32}[fop]
			}
			return nil
		}
		in.op = sel(opF32Slow, opF64Slow)
		in.sub = fop
		return nil
	}
	switch oi.base {
	case "div":
		if err := oi.only("rn", "rz", "rm", "rp", "ftz", "full", "approx"); err != nil {
			return err
		}
		if err := d.bin(in, s, t); err != nil {
			return err
		}
		switch {
		case oi.has("approx") || oi.has("full"):
			if f64 {
				return fmt.Errorf("unsupported %s", s.opcode)
			}
			in.op = opDivApproxF32
		case (rnd == rnRN) && !ftz:
			in.op = sel(opDivF32, opDivF64)
		case rnd == rnNone:
			return fmt.Errorf("div.%s needs a rounding modifier", t)
		default:
			in.op = sel(opF32Slow, opF64Slow)
			in.sub = fopDiv
		}
		return nil
	case "sqrt", "rcp":
		if err := oi.only("rn", "rz", "rm", "rp", "ftz", "approx"); err != nil {
			return err
		}
		if err := d.nops(s, 2); err != nil {
			return err
		}
		if err := d.operands(in, s, t, t); err != nil {
			return err
		}
		fop := uint8(fopSqrt)
		if oi.base == "rcp" {
			fop = fopRcp
		}
		switch {
		case oi.has("approx"):
			in.op = sel(opF32Unary, opF64Unary)
			in.sub = uSqrtApprox
			if fop == fopRcp {
				in.sub = uRcpApprox
			}
		case rnd == rnRN && !ftz:
			in.op = map[bool]opcode{false: sel(opSqrtF32, opSqrtF64), true: sel(opRcpF32, opRcpF64)}[fop == fopRcp]
		case rnd == rnNone:
			return fmt.Errorf("%s needs a rounding modifier", s.opcode)
		default:
			in.op = sel(opF32Slow, opF64Slow)
			in.sub = fop
		}
		return nil
	case "ex2", "lg2", "rsqrt", "sin", "cos", "tanh":
		if err := oi.only("approx", "ftz"); err != nil {
			return err
		}
		if !oi.has("approx") {
			return fmt.Errorf("%s without .approx", s.opcode)
		}
		if err := d.nops(s, 2); err != nil {
			return err
		}
		in.op = sel(opF32Unary, opF64Unary)
		in.sub = map[string]uint8{"ex2": uEx2, "lg2": uLg2, "rsqrt": uRsqrt, "sin": uSin, "cos": uCos, "tanh": uTanh}[oi.base]
		if f64 && in.sub != uRsqrt {
			return fmt.Errorf("unsupported %s", s.opcode)
		}
		return d.operands(in, s, t, t)
	case "min", "max":
		if err := oi.only("ftz", "NaN"); err != nil {
			return err
		}
		if oi.has("NaN") {
			in.flags |= fNaN
		}
		if err := d.bin(in, s, t); err != nil {
			return err
		}
		if oi.base == "min" {
			in.op = sel(opMinF32, opMinF64)
		} else {
			in.op = sel(opMaxF32, opMaxF64)
		}
		return nil
	case "abs", "neg":
		if err := oi.only("ftz"); err != nil {
			return err
		}
		if err := d.nops(s, 2); err != nil {
			return err
		}
		if oi.base == "abs" {
			in.op = sel(opAbsF32, opAbsF64)
		} else {
			in.op = sel(opNegF32, opNegF64)
		}
		return d.operands(in, s, t, t)
	case "copysign":
		if err := oi.only(); err != nil {
			return err
		}
		if err := d.bin(in, s, t); err != nil {
			return err
		}
		in.op = sel(opCopysignF32, opCopysignF64)
		return nil
	case "testp":
		if err := d.nops(s, 2); err != nil {
			return err
		}
		in.op = sel(opTestpF32, opTestpF64)
		modes := []string{"finite", "infinite", "number", "notanumber", "normal", "subnormal"}
		if err := oi.only(modes...); err != nil {
			return err
		}
		m, err := oi.need("a test", modes...)
		if err != nil {
			return err
		}
		in.sub = map[string]uint8{"finite": 0, "infinite": 1, "number": 2, "notanumber": 3, "normal": 4, "subnormal": 5}[m]
		return d.operands(in, s, "pred", t)
	}
	return fmt.Errorf("unsupported instruction %s", s.opcode)
}

// cmpOrder lists the comparison modifiers (for deterministic messages).
var cmpOrder = []string{"eq", "ne", "lt", "le", "gt", "ge", "lo", "ls", "hi", "hs",
	"equ", "neu", "ltu", "leu", "gtu", "geu", "num", "nan"}

// comparison decodes the CmpOp of setp or set comparing operands of type t:
// the PTX ISA admits eq and ne for bit types; eq, ne, lt, le, gt, ge for
// signed integers; these and lo, ls, hi, hs for unsigned integers; and eq,
// ne, lt, le, gt, ge, the unordered forms, num and nan for floats, where
// alone .ftz applies (to .f32).
func (oi opInfo) comparison(t string) (uint8, error) {
	c, err := oi.need("a comparison", cmpOrder...)
	if err != nil {
		return 0, err
	}
	var legal []string
	switch t {
	case "b16", "b32", "b64":
		legal = cmpOrder[:2]
	case "s16", "s32", "s64":
		legal = cmpOrder[:6]
	case "u16", "u32", "u64":
		legal = cmpOrder[:10]
	case "f32", "f64":
		legal = append(cmpOrder[:6:6], cmpOrder[10:]...)
	default:
		return 0, fmt.Errorf("unsupported type .%s of %s", t, oi.base)
	}
	ok := false
	for _, l := range legal {
		ok = ok || c == l
	}
	if !ok {
		return 0, fmt.Errorf("comparison .%s is not defined for .%s", c, t)
	}
	if oi.has("ftz") && t != "f32" {
		return 0, fmt.Errorf(".ftz of %s applies to .f32 only", oi.base)
	}
	return cmpNames[c], nil
}

func (d *decoder) decodeSetp(in *inst, s *stmt, oi opInfo) error {
	t, err := oi.typ()
	if err != nil {
		return err
	}
	if err := oi.only(append([]string{"ftz", "and", "or", "xor"}, cmpOrder...)...); err != nil {
		return err
	}
	if in.sub, err = oi.comparison(t); err != nil {
		return err
	}
	if oi.has("ftz") {
		in.flags |= fFtz
	}
	bop, err := oi.one("and", "or", "xor")
	if err != nil {
		return err
	}
	in.sub2 = map[string]uint8{"": 0, "and": 1, "or": 2, "xor": 3}[bop]
	switch {
	case isFloat(t):
		in.op = opSetpF32
		if t == "f64" {
			in.op = opSetpF64
		}
	case isSigned(t):
		in.op = opSetpS
	default:
		in.op = opSetpU
	}
	n := 3
	if in.sub2 != 0 {
		n = 4
	}
	if err := d.nops(s, n); err != nil {
		return err
	}
	dop := s.ops[0]
	in.e = -1
	if dop.kind == okVec && dop.name == "|" {
		if in.e, _, err = d.dst(dop.vec[1]); err != nil {
			return err
		}
		dop = dop.vec[0]
	}
	ops := append([]operand{dop}, s.ops[1:]...)
	s2 := *s
	s2.ops = ops
	if in.sub2 != 0 {
		c := s2.ops[3]
		if c.neg {
			in.flags |= fNegC
			c.neg = false
			s2.ops[3] = c
		}
		if err := d.operands(in, &s2, "pred", t, t, "pred"); err != nil {
			return err
		}
	} else if err := d.operands(in, &s2, "pred", t, t); err != nil {
		return err
	}
	in.sh = uint8(64 - typeSize(t)*8)
	in.mask = bitsMask(typeSize(t) * 8)
	return nil
}

func (d *decoder) decodeSet(in *inst, s *stmt, oi opInfo) error {
	if len(oi.types) != 2 {
		return fmt.Errorf("set needs two types")
	}
	// the .BoolOp form is not implemented
	if err := oi.only(append([]string{"ftz"}, cmpOrder...)...); err != nil {
		return err
	}
	switch oi.types[0] {
	case "u32", "s32", "f32":
	default:
		return fmt.Errorf("unsupported %s", s.opcode)
	}
	var err error
	if in.sub, err = oi.comparison(oi.types[1]); err != nil {
		return err
	}
	if oi.has("ftz") {
		in.flags |= fFtz
	}
	if err := d.nops(s, 3); err != nil {
		return err
	}
	in.op = opSetGeneric
	in.td = typeCode(oi.types[0])
	in.ta = typeCode(oi.types[1])
	if err := d.operands(in, s, oi.types[0], oi.types[1], oi.types[1]); err != nil {
		return err
	}
	in.sh = uint8(64 - typeSize(oi.types[1])*8)
	return nil
}

// cvt kinds (sub)
func (d *decoder) decodeCvt(in *inst, s *stmt, oi opInfo) error {
	if len(oi.types) != 2 {
		return fmt.Errorf("cvt needs two types")
	}
	if err := oi.only("rn", "rz", "rm", "rp", "rni", "rzi", "rmi", "rpi", "ftz", "sat", "relu", "satfinite", "rna"); err != nil {
		return err
	}
	if len(oi.types) == 2 && oi.types[0] == "tf32" && oi.types[1] == "f32" && oi.has("rna") && len(oi.mods) == 1 {
		if err := d.nops(s, 2); err != nil {
			return err
		}
		in.op = opCvtTF32
		return d.operands(in, s, "b32", "f32")
	}
	if (oi.types[0] == "bf16x2" || oi.types[0] == "f16x2") && oi.types[1] == "f32" {
		// cvt.rn{.relu}.{bf16x2,f16x2}.f32 d, a, b (sm_80): a rounded into the upper half of d, b into the lower.
		if err := oi.only("rn", "relu"); err != nil {
			return err
		}
		if !oi.has("rn") {
			return fmt.Errorf("%s needs .rn", s.opcode)
		}
		if err := d.nops(s, 3); err != nil {
			return err
		}
		in.op = opCvtPack
		in.td = typeCode(oi.types[0][:len(oi.types[0])-2])
		if oi.has("relu") {
			in.flags |= fSat // reused: .relu clamps negative results to +0 (NaN stays NaN)
		}
		return d.operands(in, s, "b32", "f32", "f32")
	}
	if oi.has("relu") || oi.has("satfinite") {
		return fmt.Errorf("unsupported %s", s.opcode)
	}
	if err := d.nops(s, 2); err != nil {
		return err
	}
	dt, st := oi.types[0], oi.types[1]
	if dt == "pred" || st == "pred" || strings.HasSuffix(dt, "x2") || strings.HasSuffix(st, "x2") || dt == "tf32" || st == "tf32" {
		return fmt.Errorf("unsupported %s", s.opcode)
	}
	if err := d.operands(in, s, dt, st); err != nil {
		return err
	}
	in.td, in.ta = typeCode(dt), typeCode(st)
	in.rnd = oi.rounding()
	if oi.has("ftz") {
		in.flags |= fFtz
	}
	if oi.has("sat") {
		in.flags |= fSat
	}
	dk, sk := in.td>>4, in.ta>>4
	dbits, sbits := typeSize(dt)*8, typeSize(st)*8
	intlike := func(k uint8) bool { return k == kU || k == kS || k == kB }
	if intlike(dk) && intlike(sk) && !oi.has("sat") {
		// pure integer conversion: extend by the source type, truncate to the destination
		in.mask = bitsMask(dbits)
		if sk == kS && sbits < dbits {
			in.op = opSext
			in.sh = uint8(64 - sbits)
			return nil
		}
		in.op = opMov
		if sbits < dbits {
			in.mask = bitsMask(sbits)
		}
		return nil
	}
	in.op = opCvt
	in.mask = bitsMask(dbits)
	in.sh = uint8(64 - sbits)
	if (dk == kF || dk == kBF) && intlike(sk) && in.rnd == rnNone {
		return fmt.Errorf("%s: integer to float conversion needs a rounding modifier", s.opcode)
	}
	if intlike(dk) && (sk == kF || sk == kBF) && in.rnd == rnNone {
		return fmt.Errorf("%s: float to integer conversion needs a rounding modifier", s.opcode)
	}
	return nil
}
