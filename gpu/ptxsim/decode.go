package ptxsim

import (
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

type opcode uint16

const (
	opNop opcode = iota
	opBra
	opExit
	opTrap
	opBar
	opColl
	opActivemask

	opMov    // d = a & mask
	opPack   // d = v[0] | v[1]<<w | ...
	opUnpack // v[i] = a >> (i*w) & mask
	opSext   // d = sext(a, sh) & mask
	opAddImm // d = (a + imm) & mask
	opSelp   // d = c ? a : b
	opSlctS  // d = int(c) >= 0 ? a : b
	opSlctF  // d = float32(c) >= 0 ? a : b

	// integer, result & mask, signed operands sign-extended by sh
	opAdd
	opSub
	opMulLo
	opMadLo
	opAnd
	opOr
	opXor
	opNot
	opNeg
	opShl
	opShrU
	opShrS
	opMulHiS
	opMulHiU
	opMulHiS64
	opMulHiU64
	opMulWideS
	opMulWideU
	opMadWideS
	opMadWideU
	opMadHiS
	opMadHiU
	opDivS
	opDivU
	opRemS
	opRemU
	opMinS
	opMinU
	opMaxS
	opMaxU
	opAbsS
	opPopc
	opClz
	opBrev
	opBfind
	opBfeS
	opBfeU
	opBfi
	opPrmt
	opLop3
	opShfL
	opShfR
	opCnot
	opAddSatS32
	opSubSatS32
	opMadHiSatS32 // d = sat32((a*b)>>32 + c), signed

	opSetpS // cmp in sub
	opSetpU
	opSetpF32
	opSetpF64
	opSetGeneric

	// float32
	opAddF32
	opSubF32
	opMulF32
	opFmaF32
	opAddF32Ftz
	opSubF32Ftz
	opMulF32Ftz
	opFmaF32Ftz
	opF32Slow // add/sub/mul/fma/div/sqrt/rcp with rounding/ftz/sat modifiers: sub = fop
	opDivF32
	opDivApproxF32
	opSqrtF32
	opRcpF32
	opMinF32
	opMaxF32
	opAbsF32
	opNegF32
	opF32Unary // approximate unary: sub = uop
	opCopysignF32
	opTestpF32

	// float64
	opAddF64
	opSubF64
	opMulF64
	opFmaF64
	opF64Slow
	opDivF64
	opSqrtF64
	opRcpF64
	opMinF64
	opMaxF64
	opAbsF64
	opNegF64
	opF64Unary
	opCopysignF64
	opTestpF64

	opCvt // generic conversion

	opLdGlobal
	opLdShared
	opLdLocal
	opLdParam
	opLdGeneric
	opStGlobal
	opStShared
	opStLocal
	opStGeneric
	opStParam
	opAtom
	opCall
	opRet
	opIsspacep
	opCpAsync
	opLdConst
	opClock
	opCvtTF32

	numOps
)

// instruction classes for Stats.Instructions.
const (
	clsInt = iota
	clsFP32
	clsFP64
	clsMov
	clsConvert
	clsMemGlobal
	clsMemShared
	clsMemLocal
	clsMemParam
	clsAtomic
	clsControl
	clsSync
	clsWarp
	clsSpecial
	clsMemConst
	numClasses
)

var className = [numClasses]string{"int", "fp32", "fp64", "mov", "convert", "mem.global", "mem.shared",
	"mem.local", "mem.param", "atomic", "control", "sync", "warp", "special", "mem.const"}

// type codes: kind<<4 | log2(bytes)
const (
	kU    = 1
	kS    = 2
	kF    = 3
	kPred = 4
	kB    = 5
	kBF   = 6
)

func typeCode(t string) uint8 {
	n := typeSize(t)
	l := uint8(0)
	for 1<<l < n {
		l++
	}
	switch t[0] {
	case 'u':
		return kU<<4 | l
	case 's':
		return kS<<4 | l
	case 'f':
		return kF<<4 | l
	case 'b':
		if strings.HasPrefix(t, "bf") {
			return kBF<<4 | l
		}
		return kB<<4 | l
	case 'p':
		return kPred << 4
	}
	return 0
}

// inst is a pre-decoded instruction.
type inst struct {
	op    opcode
	sz    uint8 // bytes of an access or operand
	nv    uint8 // vector elements
	sub   uint8 // comparison, sub-operation, mode
	sub2  uint8
	sh    uint8 // 64 - operand bits, for sign extension
	rnd   uint8
	ta    uint8 // source type code
	td    uint8 // destination type code
	flags uint8
	p     int32 // guard register
	d     int32
	a     int32
	b     int32
	c     int32
	e     int32
	pv    uint64 // execute when regs[p] == pv
	mask  uint64
	imm   int64
	v     [4]int32
}

// flags
const (
	fFtz = 1 << iota
	fSat
	fNegC // negated predicate source c
	fNaN  // min/max .NaN
	fSigned
	fNegA
)

// rounding modes
const (
	rnNone = iota
	rnRN
	rnRZ
	rnRM
	rnRP
	rnRNI
	rnRZI
	rnRMI
	rnRPI
	rnRNA
)

// comparison operators
const (
	cmpEq = iota
	cmpNe
	cmpLt
	cmpLe
	cmpGt
	cmpGe
	cmpEqu
	cmpNeu
	cmpLtu
	cmpLeu
	cmpGtu
	cmpGeu
	cmpNum
	cmpNan
)

var cmpNames = map[string]uint8{"eq": cmpEq, "ne": cmpNe, "lt": cmpLt, "le": cmpLe, "gt": cmpGt, "ge": cmpGe,
	"lo": cmpLt, "ls": cmpLe, "hi": cmpGt, "hs": cmpGe,
	"equ": cmpEqu, "neu": cmpNeu, "ltu": cmpLtu, "leu": cmpLeu, "gtu": cmpGtu, "geu": cmpGeu, "num": cmpNum, "nan": cmpNan}

// special registers
const (
	spTidX = iota
	spTidY
	spTidZ
	spNtidX
	spNtidY
	spNtidZ
	spCtaidX
	spCtaidY
	spCtaidZ
	spNctaidX
	spNctaidY
	spNctaidZ
	spLaneid
	spWarpid
	spNwarpid
	spLanemaskEq
	spLanemaskLt
	spLanemaskLe
	spLanemaskGt
	spLanemaskGe
	spSmid
	spNsmid
	spGridid
)

var specialNames = map[string]int{"%tid.x": spTidX, "%tid.y": spTidY, "%tid.z": spTidZ,
	"%ntid.x": spNtidX, "%ntid.y": spNtidY, "%ntid.z": spNtidZ,
	"%ctaid.x": spCtaidX, "%ctaid.y": spCtaidY, "%ctaid.z": spCtaidZ,
	"%nctaid.x": spNctaidX, "%nctaid.y": spNctaidY, "%nctaid.z": spNctaidZ,
	"%laneid": spLaneid, "%warpid": spWarpid, "%nwarpid": spNwarpid,
	"%lanemask_eq": spLanemaskEq, "%lanemask_lt": spLanemaskLt, "%lanemask_le": spLanemaskLe,
	"%lanemask_gt": spLanemaskGt, "%lanemask_ge": spLanemaskGe, "%smid": spSmid, "%nsmid": spNsmid, "%gridid": spGridid}

type special struct {
	slot int32
	kind int
}

// Module is a loaded PTX module.
type Module struct {
	kernels map[string]*Kernel
	names   []string
}

// Kernel is an entry point of a Module, decoded and ready to launch.
type Kernel struct {
	name      string
	params    []Param
	paramOff  []int
	paramSize int

	code  []inst
	line  []int32
	text  []string
	src   []string // CUDA source position from .loc, "" when unknown
	class []uint8

	nregs     int // register file size per thread
	constBase int
	consts    []uint64
	specials  []special

	sharedStatic int
	dynBase      int // offset of extern (dynamic) shared memory
	constData    []byte
	globals      *globalVarSet
	mmas         []mmaInfo
	ldms         []ldmInfo
	localSize    int
	frameSize    int // per-thread scratch for call parameters
	calls        []callSite
	usesColl     bool
}

// Name is the kernel's entry name.
func (k *Kernel) Name() string { return k.name }

// StaticSharedBytes is the shared memory the kernel declares; dynamic
// shared memory starts at DynamicSharedOffset.
func (k *Kernel) StaticSharedBytes() int { return k.sharedStatic }

// DynamicSharedOffset is the shared-space address of extern (dynamic)
// shared memory.
func (k *Kernel) DynamicSharedOffset() int { return k.dynBase }

// LocalBytes is the local memory (stack) per thread.
func (k *Kernel) LocalBytes() int { return k.localSize }

// Instructions is the number of decoded instructions, called functions
// included.
func (k *Kernel) Instructions() int { return len(k.code) }

// Params lists the kernel's parameters in order.
func (k *Kernel) Params() []Param { return append([]Param(nil), k.params...) }

// Kernel returns the entry point called name.
func (mod *Module) Kernel(name string) (*Kernel, error) {
	k, ok := mod.kernels[name]
	if !ok {
		return nil, fmt.Errorf("ptxsim: no kernel %q in module (have %v)", name, mod.names)
	}
	return k, nil
}

// Kernels lists the entry points of the module in the order of the PTX text.
func (mod *Module) Kernels() []string { return append([]string(nil), mod.names...) }

// Load parses PTX text and pre-decodes every entry point. An unsupported
// directive or instruction is an error naming it and its line.
func Load(ptx string) (mod *Module, err error) {
	defer func() {
		if r := recover(); r != nil {
			mod, err = nil, fmt.Errorf("ptxsim: load: internal error: %v", r)
		}
	}()
	m, err := parseModule(ptx)
	if err != nil {
		return nil, fmt.Errorf("ptxsim: load: %w", err)
	}
	mod = &Module{kernels: map[string]*Kernel{}}
	gv, err := globalVars(m)
	if err != nil {
		return nil, fmt.Errorf("ptxsim: load: %w", err)
	}
	funcs := map[string]*function{}
	for _, f := range m.funcs {
		if !f.proto || funcs[f.name] == nil {
			funcs[f.name] = f
		}
	}
	for _, f := range m.funcs {
		if !f.entry || f.proto {
			continue
		}
		k, err := decodeKernel(m, f, funcs, gv)
		if err != nil {
			return nil, fmt.Errorf("ptxsim: load: kernel %s: %w", f.name, err)
		}
		mod.kernels[k.name] = k
		mod.names = append(mod.names, k.name)
	}
	return mod, nil
}

// symbol kinds
const (
	symShared = iota
	symLocal
	symParam // byte offset in the kernel parameter buffer
	symFrame // byte offset in the per-thread call frame
	symFunc
	symConst
	symGlobal // module .global variable: off is its index in Kernel.globals
)

type symbol struct {
	kind int
	off  int64
	size int64
}

type decoder struct {
	mod   *module
	funcs map[string]*function
	k     *Kernel

	nslots   int32
	consts   map[uint64]int32
	specials map[int]int32
	syms     map[string]symbol // per function being decoded
	regs     map[string]int32  // per function
	regBits  map[string]int    // per function
	labels   map[string]int    // per function, pc relative to function start
	base     int               // pc of the function's first instruction

	fixups   []fixup
	funcPC   map[string]int
	pending  []*function
	frameTop int64
	consts0  map[string]int64 // module const vars
	shared   map[string]int64 // module shared vars
	fshared  map[string]map[string]int64
	calls    map[string]callInfo
	edges    map[string][]string
	cur      string
}

type fixup struct {
	pc    int
	label string
	fn    string // resolves to a function entry pc when non-empty
	base  int
	lbls  map[string]int
}

type callInfo struct {
	paramOff, paramSize []int64 // frame offsets of the callee's parameters
	retOff, retSize     []int64
}

func (d *decoder) frameAlloc(size int64) symbol {
	off := int64(alignUp(int(d.frameTop), 8))
	d.frameTop = off + size
	return symbol{kind: symFrame, off: off, size: size}
}

// callee returns the frame layout of function name, queueing it for decoding.
func (d *decoder) callee(name string) (callInfo, error) {
	if ci, ok := d.calls[name]; ok {
		return ci, nil
	}
	f, ok := d.funcs[name]
	if !ok || f.proto {
		return callInfo{}, fmt.Errorf("call of %s, which has no body in this module", name)
	}
	if f.entry {
		return callInfo{}, fmt.Errorf("call of entry %s", name)
	}
	ci := callInfo{}
	for _, p := range f.params {
		s := d.frameAlloc(int64(typeSize(p.typ) * max(p.count, 1)))
		ci.paramOff, ci.paramSize = append(ci.paramOff, s.off), append(ci.paramSize, s.size)
	}
	for _, p := range f.rets {
		s := d.frameAlloc(int64(typeSize(p.typ) * max(p.count, 1)))
		ci.retOff, ci.retSize = append(ci.retOff, s.off), append(ci.retSize, s.size)
	}
	d.calls[name] = ci
	d.pending = append(d.pending, f)
	return ci, nil
}

// callSite is a call: its target and the parameter copies in the frame.
type callSite struct {
	in, out []frameCopy
}

type frameCopy struct{ src, dst, n int64 }

func decodeKernel(m *module, f *function, funcs map[string]*function, gv *globalVarSet) (*Kernel, error) {
	k := &Kernel{name: f.name, globals: gv}
	d := &decoder{mod: m, funcs: funcs, k: k, consts: map[uint64]int32{}, specials: map[int]int32{},
		funcPC: map[string]int{}, shared: map[string]int64{}, consts0: map[string]int64{}, calls: map[string]callInfo{}, edges: map[string][]string{}}
	d.nslots = 2 // slot 0 = true (1), slot 1 = false (0)
	// parameters
	off := 0
	for _, p := range f.params {
		size := typeSize(p.typ) * max(p.count, 1)
		off = alignUp(off, max(p.align, 1))
		k.paramOff = append(k.paramOff, off)
		typ := p.typ
		if p.count > 1 || p.count == -1 {
			typ = fmt.Sprintf("%s[%d]", p.typ, p.count)
		}
		k.params = append(k.params, Param{Name: p.name, Type: typ, Size: size})
		off += size
	}
	k.paramSize = off
	// module-level static shared variables that the kernel (or a function it
	// calls) names, in declaration order
	used := referenced(reachable(f, funcs))
	soff := int64(0)
	maxAlign := 16
	// module-level .const variables: read-only data of the kernel
	for _, v := range m.vars {
		if v.space != "const" {
			continue
		}
		if v.count == -1 {
			return nil, fmt.Errorf("line %d: unsized .const arrays are not supported", v.line)
		}
		off := alignUp(len(k.constData), max(v.align, 1))
		size := typeSize(v.typ) * v.count
		data := make([]byte, off+size)
		copy(data, k.constData)
		es := typeSize(v.typ)
		if len(v.init) > v.count {
			return nil, fmt.Errorf("line %d: too many initialisers for %s", v.line, v.name)
		}
		for i, o := range v.init {
			val := d.immValue(o, v.typ)
			var b [8]byte
			le.PutUint64(b[:], val)
			copy(data[off+i*es:off+(i+1)*es], b[:es])
		}
		k.constData = data
		d.consts0[v.name] = int64(off)
	}
	if len(k.constData) > 64*1024 {
		return nil, fmt.Errorf("%d bytes of .const data exceed 64 KiB", len(k.constData))
	}
	for _, v := range m.vars {
		if v.space == "const" || v.space == "global" {
			continue
		}
		if v.space != "shared" {
			return nil, fmt.Errorf("line %d: module-level .%s variables are not supported", v.line, v.space)
		}
		if v.count == -1 {
			maxAlign = max(maxAlign, v.align)
			continue
		}
		if !used[v.name] {
			continue
		}
		soff = int64(alignUp(int(soff), max(v.align, 1)))
		d.shared[v.name] = soff
		soff += int64(typeSize(v.typ) * v.count)
	}
	// function-level shared variables of every function, then dynamic shared memory
	d.fshared = map[string]map[string]int64{}
	for _, fn := range reachable(f, funcs) {
		for _, v := range fn.vars {
			if v.space != "shared" {
				continue
			}
			if v.count == -1 {
				return nil, fmt.Errorf("line %d: extern .shared inside a function is not supported", v.line)
			}
			if d.fshared[fn.name] == nil {
				d.fshared[fn.name] = map[string]int64{}
			}
			soff = int64(alignUp(int(soff), max(v.align, 1)))
			d.fshared[fn.name][v.name] = soff
			soff += int64(typeSize(v.typ) * v.count)
		}
	}
	for _, v := range m.vars {
		if v.count == -1 {
			maxAlign = max(maxAlign, v.align)
		}
	}
	k.sharedStatic = int(soff)
	k.dynBase = alignUp(k.sharedStatic, maxAlign)
	d.pending = []*function{f}
	d.funcPC[f.name] = 0
	for len(d.pending) > 0 {
		fn := d.pending[0]
		d.pending = d.pending[1:]
		d.cur = fn.name
		if err := d.decodeFunc(fn, fn == f); err != nil {
			return nil, err
		}
	}
	if err := d.checkRecursion(f.name); err != nil {
		return nil, err
	}
	for _, fx := range d.fixups {
		if fx.fn != "" {
			k.code[fx.pc].imm = int64(d.funcPC[fx.fn])
			continue
		}
		t, ok := fx.lbls[fx.label]
		if !ok {
			return nil, fmt.Errorf("line %d: unknown label %s", k.line[fx.pc], fx.label)
		}
		k.code[fx.pc].imm = int64(fx.base + t)
	}
	k.frameSize = int(d.frameTop)
	k.constBase = int(d.nslots)
	k.nregs = int(d.nslots) + len(d.consts)
	// remap const slots (stored as negative placeholders)
	remap := func(r *int32) {
		if *r < -1 {
			*r = int32(k.constBase) + (-*r - 2)
		}
	}
	for i := range k.code {
		in := &k.code[i]
		remap(&in.p)
		remap(&in.a)
		remap(&in.b)
		remap(&in.c)
		remap(&in.e)
		remap(&in.d)
		for j := range in.v {
			remap(&in.v[j])
		}
	}
	k.consts = make([]uint64, len(d.consts))
	for v, s := range d.consts {
		k.consts[-s-2] = v
	}
	for kind, slot := range d.specials {
		k.specials = append(k.specials, special{slot, kind})
	}
	sort.Slice(k.specials, func(i, j int) bool { return k.specials[i].slot < k.specials[j].slot })
	k.class = make([]uint8, len(k.code))
	for i := range k.code {
		k.class[i] = opClass(&k.code[i])
		if k.code[i].op == opColl {
			k.usesColl = true
		}
	}
	return k, nil
}

func alignUp(x, a int) int { return (x + a - 1) / a * a }

func (d *decoder) newSlot() int32 {
	s := d.nslots
	d.nslots++
	return s
}

// constSlot returns a placeholder (≤ -2) for a constant register holding v.
func (d *decoder) constSlot(v uint64) int32 {
	if v == 1 {
		return 0
	}
	if v == 0 {
		return 1
	}
	if s, ok := d.consts[v]; ok {
		return s
	}
	s := int32(-2 - len(d.consts))
	d.consts[v] = s
	return s
}

func (d *decoder) decodeFunc(f *function, entry bool) error {
	if f.proto {
		return fmt.Errorf("line %d: function %s has no body", f.line, f.name)
	}
	k := d.k
	d.base = len(k.code)
	d.funcPC[f.name] = d.base
	d.regs = map[string]int32{}
	d.regBits = map[string]int{}
	d.syms = map[string]symbol{}
	d.labels = f.labels
	for _, r := range f.regs {
		bits := typeSize(r.typ) * 8
		if r.typ == "pred" {
			bits = 1
		}
		if r.count < 0 {
			d.regs[r.name] = d.newSlot()
			d.regBits[r.name] = bits
			continue
		}
		for i := 0; i < r.count; i++ {
			n := r.name + strconv.Itoa(i)
			d.regs[n] = d.newSlot()
			d.regBits[n] = bits
		}
	}
	for name, off := range d.shared {
		d.syms[name] = symbol{kind: symShared, off: off}
	}
	for name, off := range d.consts0 {
		d.syms[name] = symbol{kind: symConst, off: off}
	}
	for i, v := range d.k.globals.vars {
		d.syms[v.name] = symbol{kind: symGlobal, off: int64(i), size: int64(len(v.init))}
	}
	for _, v := range d.mod.vars {
		if v.count == -1 {
			d.syms[v.name] = symbol{kind: symShared, off: -1} // dynamic: resolved at the end
		}
	}
	for _, v := range f.vars {
		size := int64(typeSize(v.typ) * max(v.count, 1))
		switch v.space {
		case "shared":
			d.syms[v.name] = symbol{kind: symShared, off: d.fshared[f.name][v.name]}
		case "param":
			if old, ok := d.syms[v.name]; ok && old.kind == symFrame && old.size >= size {
				continue
			}
			d.syms[v.name] = d.frameAlloc(size)
		case "local":
			off := int64(alignUp(k.localSize, max(v.align, 1)))
			k.localSize = int(off + size)
			d.syms[v.name] = symbol{kind: symLocal, off: off, size: size}
		default:
			return fmt.Errorf("line %d: unsupported .%s declaration in a function", v.line, v.space)
		}
	}
	if entry {
		for i, p := range f.params {
			d.syms[p.name] = symbol{kind: symParam, off: int64(k.paramOff[i]), size: int64(k.params[i].Size)}
		}
	} else {
		ci := d.calls[f.name]
		for i, p := range f.params {
			d.syms[p.name] = symbol{kind: symFrame, off: ci.paramOff[i], size: ci.paramSize[i]}
		}
		for i, p := range f.rets {
			d.syms[p.name] = symbol{kind: symFrame, off: ci.retOff[i], size: ci.retSize[i]}
		}
	}
	for name := range d.funcs {
		if _, ok := d.syms[name]; !ok {
			d.syms[name] = symbol{kind: symFunc}
		}
	}
	labelsAt := map[int]bool{}
	for _, pc := range f.labels {
		labelsAt[pc] = true
	}
	for i := range f.body {
		s := &f.body[i]
		in, err := d.decodeStmt(s, f, entry)
		if err != nil {
			return fmt.Errorf("line %d: %w: %q", s.line, err, s.text)
		}
		// the dynamic-shared symbol is only known at the end; fix after loop
		k.code = append(k.code, in)
		k.line = append(k.line, int32(s.line))
		k.text = append(k.text, s.text)
		src := ""
		if s.srcLine > 0 {
			if f, ok := d.mod.files[s.srcFile]; ok {
				src = fmt.Sprintf("%s:%d", filepath.Base(f), s.srcLine)
			}
		}
		k.src = append(k.src, src)
	}
	// implicit return at the end of a body
	k.code = append(k.code, inst{op: opRet, pv: 1, p: 0})
	if entry {
		k.code[len(k.code)-1].op = opExit
	}
	k.line = append(k.line, int32(f.line))
	k.text = append(k.text, "(end of "+f.name+")")
	k.src = append(k.src, "")
	return nil
}

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

func opClass(in *inst) uint8 {
	switch in.op {
	case opNop:
		if in.sub == 1 {
			return clsSync
		}
		return clsControl
	case opBra, opExit, opTrap, opRet, opCall:
		return clsControl
	case opBar:
		return clsSync
	case opColl, opActivemask:
		return clsWarp
	case opMov, opPack, opUnpack, opAddImm, opSelp, opSlctS, opSlctF:
		return clsMov
	case opSext, opCvt, opCvtTF32:
		return clsConvert
	case opLdGlobal, opStGlobal:
		return clsMemGlobal
	case opLdShared, opStShared, opCpAsync:
		return clsMemShared
	case opLdConst:
		return clsMemConst
	case opClock:
		return clsSpecial
	case opLdLocal, opStLocal:
		return clsMemLocal
	case opLdParam, opStParam:
		return clsMemParam
	case opLdGeneric, opStGeneric:
		return clsMemGlobal
	case opAtom:
		return clsAtomic
	case opSetpF32, opAddF32, opSubF32, opMulF32, opFmaF32, opAddF32Ftz, opSubF32Ftz, opMulF32Ftz, opFmaF32Ftz,
		opF32Slow, opDivF32, opDivApproxF32, opSqrtF32, opRcpF32, opMinF32, opMaxF32, opAbsF32, opNegF32,
		opF32Unary, opCopysignF32, opTestpF32:
		return clsFP32
	case opSetpF64, opAddF64, opSubF64, opMulF64, opFmaF64, opF64Slow, opDivF64, opSqrtF64, opRcpF64,
		opMinF64, opMaxF64, opAbsF64, opNegF64, opF64Unary, opCopysignF64, opTestpF64:
		return clsFP64
	}
	return clsInt
}

// checkRecursion rejects call graphs with cycles: every function has one
// static frame.
func (d *decoder) checkRecursion(root string) error {
	state := map[string]int{} // 1 on stack, 2 done
	var visit func(n string) error
	visit = func(n string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("recursive call of %s is not supported", n)
		case 2:
			return nil
		}
		state[n] = 1
		for _, c := range d.edges[n] {
			if err := visit(c); err != nil {
				return err
			}
		}
		state[n] = 2
		return nil
	}
	return visit(root)
}

// reachable lists f and the functions it calls, directly or not.
func reachable(f *function, funcs map[string]*function) []*function {
	seen := map[string]bool{f.name: true}
	out := []*function{f}
	for i := 0; i < len(out); i++ {
		for _, s := range out[i].body {
			if !strings.HasPrefix(s.opcode, "call") {
				continue
			}
			for _, o := range s.ops {
				if g, ok := funcs[o.name]; ok && o.kind == okSym && !seen[o.name] {
					seen[o.name] = true
					out = append(out, g)
				}
			}
		}
	}
	return out
}

// decodeCpAsync decodes cp.async (sm_80), executed as a synchronous copy
// from global to shared memory at issue; commit and wait are no-ops.
func (d *decoder) decodeCpAsync(in *inst, s *stmt, oi opInfo) error {
	if !oi.has("async") {
		return fmt.Errorf("unsupported instruction %s", s.opcode)
	}
	if oi.has("commit_group") || oi.has("wait_group") || oi.has("wait_all") {
		in.op = opNop
		in.sub = 1
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

// spGlobalVar + i is the special register holding the address of module
// global variable i.
const spGlobalVar = 1 << 16

func (d *decoder) globalSlot(i int) int32 {
	kind := spGlobalVar + i
	s, ok := d.specials[kind]
	if !ok {
		s = d.newSlot()
		d.specials[kind] = s
	}
	return s
}

// globalVarSet lists the module-level .global variables of a module; each
// Machine allocates them once per module, on the first launch.
type globalVarSet struct {
	vars []globalVar
}

type globalVar struct {
	name string
	init []byte // initial contents, zero-filled
}

func globalVars(m *module) (*globalVarSet, error) {
	gv := &globalVarSet{}
	for _, v := range m.vars {
		if v.space != "global" {
			continue
		}
		if v.count == -1 {
			return nil, fmt.Errorf("line %d: unsized .global arrays are not supported", v.line)
		}
		es := typeSize(v.typ)
		data := make([]byte, es*v.count)
		if len(v.init) > v.count {
			return nil, fmt.Errorf("line %d: too many initialisers for %s", v.line, v.name)
		}
		d := &decoder{}
		for i, o := range v.init {
			var b [8]byte
			le.PutUint64(b[:], d.immValue(o, v.typ))
			copy(data[i*es:(i+1)*es], b[:es])
		}
		gv.vars = append(gv.vars, globalVar{name: v.name, init: data})
	}
	return gv, nil
}

// referenced is the set of symbol names that the functions' instructions use.
func referenced(fns []*function) map[string]bool {
	used := map[string]bool{}
	var mark func(o operand)
	mark = func(o operand) {
		if o.kind == okSym || o.kind == okAddr {
			used[o.name] = true
		}
		for _, e := range o.vec {
			mark(e)
		}
	}
	for _, f := range fns {
		for _, s := range f.body {
			for _, o := range s.ops {
				mark(o)
			}
		}
	}
	return used
}
