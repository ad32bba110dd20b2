package ptxsim

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Module loading: Load, the Module and Kernel it returns, the per-kernel
// decoder state, functions and calls, and module global variables.

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
