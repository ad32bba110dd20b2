package ptxsim

import (
	"fmt"
	"math"
	"strings"
)

// reg returns the slot of a register operand.
func (d *decoder) reg(o operand) (int32, int, error) {
	if o.kind != okReg {
		return 0, 0, fmt.Errorf("expected a register, found %s", describe(o))
	}
	if s, ok := d.regs[o.name]; ok {
		return s, d.regBits[o.name], nil
	}
	if sp, ok := specialNames[o.name]; ok {
		s, ok := d.specials[sp]
		if !ok {
			s = d.newSlot()
			d.specials[sp] = s
		}
		return s, 32, nil
	}
	if strings.HasPrefix(o.name, "%") {
		if _, ok := specialNames[o.name]; !ok && (strings.HasPrefix(o.name, "%clock") || strings.HasPrefix(o.name, "%globaltimer") ||
			strings.HasPrefix(o.name, "%envreg") || strings.HasPrefix(o.name, "%pm")) {
			return 0, 0, fmt.Errorf("unsupported special register %s", o.name)
		}
	}
	return 0, 0, fmt.Errorf("undeclared register %s", o.name)
}

func describe(o operand) string {
	switch o.kind {
	case okReg:
		return "register " + o.name
	case okImm:
		return "immediate"
	case okAddr:
		return "address"
	case okVec:
		return "vector"
	case okSym:
		return "symbol " + o.name
	}
	return "_"
}

func bitsMask(bits int) uint64 {
	if bits >= 64 {
		return ^uint64(0)
	}
	return 1<<uint(bits) - 1
}

// src returns a slot holding the operand's value read as type t.
func (d *decoder) src(o operand, t string) (int32, error) {
	if o.neg {
		return 0, fmt.Errorf("negated operand not supported here")
	}
	switch o.kind {
	case okReg:
		s, _, err := d.reg(o)
		return s, err
	case okImm:
		return d.constSlot(d.immValue(o, t)), nil
	case okSym:
		if sy, ok := d.syms[o.name]; ok && sy.kind == symGlobal {
			if o.ival != 0 {
				return 0, fmt.Errorf("offset from global variable %s in an operand", o.name)
			}
			return d.globalSlot(int(sy.off)), nil
		}
		v, err := d.symAddr(o.name)
		if err != nil {
			return 0, err
		}
		return d.constSlot(uint64(v + o.ival)), nil
	}
	return 0, fmt.Errorf("unsupported operand %s", describe(o))
}

func (d *decoder) immValue(o operand, t string) uint64 {
	bits := typeSize(t) * 8
	if t == "pred" {
		bits = 1
	}
	v := uint64(o.ival)
	switch {
	case o.fkind == 'F' && t == "f32":
		v = uint64(math.Float32bits(float32(math.Float64frombits(v))))
	case o.fkind == 'F' && t == "f64":
	case o.fkind == 0 && t == "f32":
		v = uint64(math.Float32bits(float32(o.ival)))
	case o.fkind == 0 && t == "f64":
		v = math.Float64bits(float64(o.ival))
	}
	return v & bitsMask(bits)
}

// symAddr is the state-space address of a variable (shared or local).
func (d *decoder) symAddr(name string) (int64, error) {
	s, ok := d.syms[name]
	if !ok {
		return 0, fmt.Errorf("unknown symbol %s", name)
	}
	switch s.kind {
	case symShared:
		if s.off < 0 {
			return int64(d.dynBase()), nil
		}
		return s.off, nil
	case symLocal, symConst:
		return s.off, nil
	}
	return 0, fmt.Errorf("the address of %s is not supported", name)
}

func (d *decoder) dynBase() int { return d.k.dynBase }

func (d *decoder) dst(o operand) (int32, int, error) {
	if o.kind == okSink {
		return d.newSlot(), 64, nil
	}
	s, bits, err := d.reg(o)
	if err != nil {
		return 0, 0, err
	}
	if _, ok := d.regs[o.name]; !ok {
		return 0, 0, fmt.Errorf("cannot write %s", o.name)
	}
	return s, bits, nil
}

type opInfo struct {
	base  string
	mods  map[string]bool
	types []string
	parts []string
}

func splitOpcode(s string) opInfo {
	parts := strings.Split(s, ".")
	oi := opInfo{base: parts[0], mods: map[string]bool{}, parts: parts}
	for _, p := range parts[1:] {
		if p == "" {
			continue
		}
		if typeSize(p) != 0 && p != "b128" || p == "pred" {
			oi.types = append(oi.types, p)
		} else {
			oi.mods[canonMod(p)] = true
		}
	}
	return oi
}

// canonMod maps a modifier to its canonical spelling: .shared::cta is
// .shared (the PTX default sub-qualifier of the state space).
func canonMod(m string) string {
	if m == "shared::cta" {
		return "shared"
	}
	return m
}

// cacheHint reports whether m is a cache eviction-priority or prefetch-size
// qualifier: a performance hint without effect on any result, which the
// memory instructions may carry. .L2::cache_hint is not one: it takes a
// cache-policy operand.
func cacheHint(m string) bool {
	switch m {
	case "L1::evict_normal", "L1::evict_unchanged", "L1::evict_first", "L1::evict_last", "L1::no_allocate",
		"L2::evict_normal", "L2::evict_first", "L2::evict_last", "L2::64B", "L2::128B", "L2::256B":
		return true
	}
	return false
}

func (oi opInfo) has(m string) bool { return oi.mods[m] }

// only reports an error naming the first modifier (in source order) of the
// opcode that is not in allowed.
func (oi opInfo) only(allowed ...string) error {
	return oi.check(false, allowed)
}

// onlyMem is only for memory instructions: it also admits cache hints.
func (oi opInfo) onlyMem(allowed ...string) error {
	return oi.check(true, allowed)
}

func (oi opInfo) check(hints bool, allowed []string) error {
	for _, p := range oi.parts[1:] {
		m := canonMod(p)
		if !oi.mods[m] || hints && cacheHint(m) {
			continue // a type, or an admitted hint
		}
		ok := false
		for _, a := range allowed {
			if m == a {
				ok = true
			}
		}
		if !ok {
			return fmt.Errorf("unsupported modifier .%s of %s", p, oi.base)
		}
	}
	return nil
}

// one returns which of the mutually exclusive modifiers choices the opcode
// has ("" for none); more than one is an error.
func (oi opInfo) one(choices ...string) (string, error) {
	found := ""
	for _, c := range choices {
		if !oi.mods[c] {
			continue
		}
		if found != "" {
			return "", fmt.Errorf("conflicting modifiers .%s and .%s of %s", found, c, oi.base)
		}
		found = c
	}
	return found, nil
}

// need is one with a modifier required: what names the choice in the error.
func (oi opInfo) need(what string, choices ...string) (string, error) {
	c, err := oi.one(choices...)
	if err == nil && c == "" {
		err = fmt.Errorf("%s needs %s (.%s)", strings.Join(oi.parts, "."), what, strings.Join(choices, ", ."))
	}
	return c, err
}

// wantType reports an error unless the opcode's single type is one of ts.
func (oi opInfo) wantType(ts ...string) (string, error) {
	t, err := oi.typ()
	if err != nil {
		return "", err
	}
	for _, x := range ts {
		if t == x {
			return t, nil
		}
	}
	return "", fmt.Errorf("unsupported type .%s of %s", t, oi.base)
}

func (oi opInfo) typ() (string, error) {
	if len(oi.types) != 1 {
		return "", fmt.Errorf("%s: expected one type", strings.Join(oi.parts, "."))
	}
	return oi.types[0], nil
}

func (oi opInfo) rounding() uint8 {
	for _, r := range []struct {
		n string
		v uint8
	}{{"rna", rnRNA}, {"rn", rnRN}, {"rz", rnRZ}, {"rm", rnRM}, {"rp", rnRP}, {"rni", rnRNI}, {"rzi", rnRZI}, {"rmi", rnRMI}, {"rpi", rnRPI}} {
		if oi.mods[r.n] {
			return r.v
		}
	}
	return rnNone
}

func (d *decoder) nops(s *stmt, n ...int) error {
	for _, c := range n {
		if len(s.ops) == c {
			return nil
		}
	}
	return fmt.Errorf("wrong number of operands (%d)", len(s.ops))
}

func isFloat(t string) bool  { return t == "f32" || t == "f64" }
func isSigned(t string) bool { return t[0] == 's' }

func (d *decoder) decodeStmt(s *stmt, f *function, entry bool) (inst, error) {
	in := inst{p: 0, pv: 1}
	if s.guard != "" {
		r, bits, err := d.reg(operand{kind: okReg, name: s.guard})
		if err != nil {
			return in, err
		}
		if bits != 1 {
			return in, fmt.Errorf("guard %s is not a predicate", s.guard)
		}
		in.p = r
		if s.gneg {
			in.pv = 0
		}
	}
	for i := range s.ops {
		d.markRegs(&s.ops[i])
	}
	oi := splitOpcode(s.opcode)
	err := d.decodeOp(&in, s, oi, entry)
	return in, err
}

// setBin decodes "op.type d, a, b".
func (d *decoder) bin(in *inst, s *stmt, t string) error {
	if err := d.nops(s, 3); err != nil {
		return err
	}
	return d.operands(in, s, t, t, t)
}

// operands decodes d, a, b[, c] with the given types.
func (d *decoder) operands(in *inst, s *stmt, td string, ts ...string) error {
	var err error
	var bits int
	in.d, bits, err = d.dst(s.ops[0])
	if err != nil {
		return err
	}
	_ = bits
	ptrs := []*int32{&in.a, &in.b, &in.c, &in.e}
	for i, t := range ts {
		if i+1 >= len(s.ops) {
			return fmt.Errorf("missing operand")
		}
		*ptrs[i], err = d.src(s.ops[i+1], t)
		if err != nil {
			return err
		}
	}
	w := typeSize(td) * 8
	if td == "pred" {
		w = 1
	}
	in.mask = bitsMask(w)
	if len(ts) > 0 {
		in.sh = uint8(64 - typeSize(ts[0])*8)
		if ts[0] == "pred" {
			in.sh = 63
		}
	}
	return nil
}

// roundingMods are the rounding modifiers: an instruction has at most one.
var roundingMods = []string{"rn", "rz", "rm", "rp", "rni", "rzi", "rmi", "rpi", "rna"}

func (d *decoder) decodeOp(in *inst, s *stmt, oi opInfo, entry bool) error {
	if _, err := oi.one(roundingMods...); err != nil {
		return err
	}
	switch oi.base {
	case "bra":
		if err := oi.only("uni"); err != nil {
			return err
		}
		if len(s.ops) != 1 || s.ops[0].kind != okSym {
			return fmt.Errorf("bra needs a label")
		}
		if _, ok := d.labels[s.ops[0].name]; !ok {
			return fmt.Errorf("unknown label %s", s.ops[0].name)
		}
		in.op = opBra
		d.fixups = append(d.fixups, fixup{pc: len(d.k.code), label: s.ops[0].name, base: d.base, lbls: d.labels})
		return nil
	case "ret":
		if err := oi.only("uni"); err != nil {
			return err
		}
		if err := d.nops(s, 0); err != nil {
			return err
		}
		if entry {
			in.op = opExit
		} else {
			in.op = opRet
		}
		return nil
	case "exit", "trap", "nop":
		if err := oi.only(); err != nil {
			return err
		}
		if len(oi.types) != 0 {
			return fmt.Errorf("unsupported %s", s.opcode)
		}
		if err := d.nops(s, 0); err != nil {
			return err
		}
		in.op = map[string]opcode{"exit": opExit, "trap": opTrap, "nop": opNop}[oi.base]
		return nil
	case "membar", "fence":
		// Every access of the simulator is sequentially consistent, so a
		// memory fence of any scope is a no-op; the proxy and
		// mbarrier-init fences are not implemented.
		if oi.base == "membar" {
			if err := oi.only("cta", "gl", "sys"); err != nil {
				return err
			}
			if _, err := oi.need("a level", "cta", "gl", "sys"); err != nil {
				return err
			}
		} else {
			if err := oi.only("sc", "acq_rel", "cta", "cluster", "gpu", "sys"); err != nil {
				return err
			}
			if _, err := oi.one("sc", "acq_rel"); err != nil {
				return err
			}
			if _, err := oi.need("a scope", "cta", "cluster", "gpu", "sys"); err != nil {
				return err
			}
		}
		if len(oi.types) != 0 {
			return fmt.Errorf("unsupported %s", s.opcode)
		}
		if err := d.nops(s, 0); err != nil {
			return err
		}
		in.op = opNop
		in.sub = 1 // sync class
		return nil
	case "bar", "barrier":
		if oi.has("arrive") {
			return fmt.Errorf("unsupported %s", s.opcode)
		}
		if oi.has("red") {
			return d.decodeBarRed(in, s, oi)
		}
		if oi.has("warp") {
			if err := oi.only("warp", "sync"); err != nil {
				return err
			}
			if s.opcode != "bar.warp.sync" {
				return fmt.Errorf("unsupported %s", s.opcode)
			}
			if err := d.nops(s, 1); err != nil {
				return err
			}
			in.op = opColl
			in.sub = collSyncwarp
			var err error
			in.v[0], err = d.src(s.ops[0], "b32")
			return err
		}
		if err := oi.only("sync", "aligned"); err != nil {
			return err
		}
		if s.opcode != "bar.sync" && s.opcode != "barrier.sync" && s.opcode != "barrier.sync.aligned" && s.opcode != "bar.sync.aligned" {
			return fmt.Errorf("unsupported %s", s.opcode)
		}
		if err := d.nops(s, 1, 2); err != nil {
			return err
		}
		in.op = opBar
		var err error
		if in.a, err = d.src(s.ops[0], "u32"); err != nil {
			return err
		}
		in.b = -1
		if len(s.ops) == 2 {
			if in.b, err = d.src(s.ops[1], "u32"); err != nil {
				return err
			}
		}
		return nil
	case "shfl":
		if !oi.has("sync") {
			return fmt.Errorf("only shfl.sync is supported")
		}
		if err := oi.only("sync", "up", "down", "bfly", "idx"); err != nil {
			return err
		}
		if _, err := oi.need("a mode", "up", "down", "bfly", "idx"); err != nil {
			return err
		}
		if _, err := oi.wantType("b32"); err != nil {
			return err
		}
		if err := d.nops(s, 5); err != nil {
			return err
		}
		in.op = opColl
		switch {
		case oi.has("up"):
			in.sub = collShflUp
		case oi.has("down"):
			in.sub = collShflDown
		case oi.has("bfly"):
			in.sub = collShflBfly
		case oi.has("idx"):
			in.sub = collShflIdx
		default:
			return fmt.Errorf("shfl mode missing")
		}
		dop := s.ops[0]
		in.e = -1
		if dop.kind == okVec && len(dop.vec) == 2 && dop.name == "|" {
			var err error
			if in.e, _, err = d.dst(dop.vec[1]); err != nil {
				return err
			}
			dop = dop.vec[0]
		}
		var err error
		if in.d, _, err = d.dst(dop); err != nil {
			return err
		}
		in.mask = 0xffffffff
		if in.a, err = d.src(s.ops[1], "b32"); err != nil {
			return err
		}
		if in.b, err = d.src(s.ops[2], "b32"); err != nil {
			return err
		}
		if in.c, err = d.src(s.ops[3], "b32"); err != nil {
			return err
		}
		in.v[0], err = d.src(s.ops[4], "b32")
		return err
	case "vote":
		if !oi.has("sync") {
			return fmt.Errorf("only vote.sync is supported")
		}
		if err := oi.only("sync", "any", "all", "uni", "ballot"); err != nil {
			return err
		}
		mode, err := oi.need("a mode", "any", "all", "uni", "ballot")
		if err != nil {
			return err
		}
		want := "pred"
		if mode == "ballot" {
			want = "b32"
		}
		if _, err := oi.wantType(want); err != nil {
			return err
		}
		if err := d.nops(s, 3); err != nil {
			return err
		}
		in.op = opColl
		switch {
		case oi.has("any"):
			in.sub = collVoteAny
		case oi.has("all"):
			in.sub = collVoteAll
		case oi.has("uni"):
			in.sub = collVoteUni
		case oi.has("ballot"):
			in.sub = collVoteBallot
		default:
			return fmt.Errorf("unsupported %s", s.opcode)
		}
		if in.d, _, err = d.dst(s.ops[0]); err != nil {
			return err
		}
		a := s.ops[1]
		if a.neg {
			in.flags |= fNegA
			a.neg = false
		}
		if in.a, err = d.src(a, "pred"); err != nil {
			return err
		}
		in.v[0], err = d.src(s.ops[2], "b32")
		return err
	case "redux":
		if !oi.has("sync") {
			return fmt.Errorf("only redux.sync is supported")
		}
		if err := d.nops(s, 3); err != nil {
			return err
		}
		if err := oi.only("sync", "add", "min", "max", "and", "or", "xor"); err != nil {
			return err
		}
		o, err := oi.need("an operation", "add", "min", "max", "and", "or", "xor")
		if err != nil {
			return err
		}
		var t string
		if o == "add" || o == "min" || o == "max" {
			t, err = oi.wantType("u32", "s32")
		} else {
			t, err = oi.wantType("b32")
		}
		if err != nil {
			return err
		}
		in.op = opColl
		in.sub = collRedux
		in.sub2 = atomOpCode(o)
		if isSigned(t) {
			in.flags |= fSigned
		}
		if in.d, _, err = d.dst(s.ops[0]); err != nil {
			return err
		}
		if in.a, err = d.src(s.ops[1], t); err != nil {
			return err
		}
		in.v[0], err = d.src(s.ops[2], "b32")
		return err
	case "activemask":
		if err := oi.only(); err != nil {
			return err
		}
		if _, err := oi.wantType("b32"); err != nil {
			return err
		}
		if err := d.nops(s, 1); err != nil {
			return err
		}
		in.op = opActivemask
		var err error
		in.d, _, err = d.dst(s.ops[0])
		return err
	case "mov":
		return d.decodeMov(in, s, oi)
	case "cvta":
		return d.decodeCvta(in, s, oi)
	case "isspacep":
		if err := oi.only("global", "shared", "local"); err != nil {
			return err
		}
		if _, err := oi.need("a state space", "global", "shared", "local"); err != nil {
			return err
		}
		if len(oi.types) != 0 {
			return fmt.Errorf("unsupported %s", s.opcode)
		}
		if err := d.nops(s, 2); err != nil {
			return err
		}
		in.op = opIsspacep
		switch {
		case oi.has("global"):
			in.sub = 0
		case oi.has("shared"):
			in.sub = 1
		case oi.has("local"):
			in.sub = 2
		default:
			return fmt.Errorf("unsupported %s", s.opcode)
		}
		var err error
		if in.d, _, err = d.dst(s.ops[0]); err != nil {
			return err
		}
		in.a, err = d.src(s.ops[1], "u64")
		return err
	case "ld", "st", "ldu":
		return d.decodeMem(in, s, oi)
	case "atom", "red":
		return d.decodeAtom(in, s, oi)
	case "call":
		return d.decodeCall(in, s, oi)
	case "cp":
		return d.decodeCpAsync(in, s, oi)
	case "mma":
		return d.decodeMma(in, s, oi)
	case "ldmatrix":
		return d.decodeLdmatrix(in, s, oi)
	case "setp":
		return d.decodeSetp(in, s, oi)
	case "set":
		return d.decodeSet(in, s, oi)
	case "selp":
		if err := oi.only(); err != nil {
			return err
		}
		t, err := oi.wantType("b16", "b32", "b64", "u16", "u32", "u64", "s16", "s32", "s64", "f32", "f64")
		if err != nil {
			return err
		}
		if err := d.nops(s, 4); err != nil {
			return err
		}
		in.op = opSelp
		return d.operands(in, s, t, t, t, "pred")
	case "slct":
		if len(oi.types) != 2 {
			return fmt.Errorf("slct needs two types")
		}
		switch oi.types[1] {
		case "s32":
			if err := oi.only(); err != nil {
				return err
			}
		case "f32":
			if err := oi.only("ftz"); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unsupported %s", s.opcode)
		}
		if err := d.nops(s, 4); err != nil {
			return err
		}
		in.op = opSlctS
		if oi.types[1] == "f32" {
			in.op = opSlctF
			if oi.has("ftz") {
				in.flags |= fFtz
			}
		}
		return d.operands(in, s, oi.types[0], oi.types[0], oi.types[0], oi.types[1])
	case "cvt":
		return d.decodeCvt(in, s, oi)
	case "prmt":
		if err := oi.only("f4e", "b4e", "rc8", "ecl", "ecr", "rc16"); err != nil {
			return err
		}
		if _, err := oi.one("f4e", "b4e", "rc8", "ecl", "ecr", "rc16"); err != nil {
			return err
		}
		if _, err := oi.wantType("b32"); err != nil {
			return err
		}
		for i, m := range []string{"f4e", "b4e", "rc8", "ecl", "ecr", "rc16"} {
			if oi.has(m) {
				in.sub = uint8(i + 1)
			}
		}
		in.op = opPrmt
		if err := d.nops(s, 4); err != nil {
			return err
		}
		return d.operands(in, s, "b32", "b32", "b32", "b32")
	case "lop3":
		if err := oi.only(); err != nil { // the .BoolOp form (predicate result) is not implemented
			return err
		}
		if _, err := oi.wantType("b32"); err != nil {
			return err
		}
		if err := d.nops(s, 5); err != nil {
			return err
		}
		in.op = opLop3
		if s.ops[4].kind != okImm {
			return fmt.Errorf("lop3 needs an immediate LUT")
		}
		in.imm = s.ops[4].ival
		return d.operands(in, s, "b32", "b32", "b32", "b32")
	case "shf":
		if err := oi.only("l", "r", "clamp", "wrap"); err != nil {
			return err
		}
		dir, err := oi.need("a direction", "l", "r")
		if err != nil {
			return err
		}
		mode, err := oi.need("a mode", "clamp", "wrap")
		if err != nil {
			return err
		}
		if _, err := oi.wantType("b32"); err != nil {
			return err
		}
		if err := d.nops(s, 4); err != nil {
			return err
		}
		in.op = opShfL
		if dir == "r" {
			in.op = opShfR
		}
		if mode == "clamp" {
			in.sub = 1
		}
		return d.operands(in, s, "b32", "b32", "b32", "u32")
	case "bfi":
		if err := oi.only(); err != nil {
			return err
		}
		t, err := oi.wantType("b32", "b64")
		if err != nil {
			return err
		}
		if err := d.nops(s, 5); err != nil {
			return err
		}
		in.op = opBfi
		in.sz = uint8(typeSize(t))
		return d.operands(in, s, t, t, t, "u32", "u32")
	case "bfe":
		if err := oi.only(); err != nil {
			return err
		}
		t, err := oi.wantType("u32", "u64", "s32", "s64")
		if err != nil {
			return err
		}
		if err := d.nops(s, 4); err != nil {
			return err
		}
		in.op = opBfeU
		if isSigned(t) {
			in.op = opBfeS
		}
		in.sz = uint8(typeSize(t))
		return d.operands(in, s, t, t, "u32", "u32")
	}
	t, err := oi.typ()
	if err != nil {
		return fmt.Errorf("unsupported instruction %s", s.opcode)
	}
	if isFloat(t) {
		return d.decodeFloat(in, s, oi, t)
	}
	if t == "f16" || t == "bf16" || t == "f16x2" || t == "bf16x2" {
		return fmt.Errorf("unsupported instruction %s (half precision arithmetic)", s.opcode)
	}
	return d.decodeInt(in, s, oi, t)
}

// markRegs turns symbols that name registers (declared without a leading
// %, as inline assembly may do) into register operands.
func (d *decoder) markRegs(o *operand) {
	if o.kind == okSym {
		if _, ok := d.regs[o.name]; ok {
			o.kind = okReg
		}
	}
	for i := range o.vec {
		d.markRegs(&o.vec[i])
	}
}
