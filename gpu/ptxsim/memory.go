package ptxsim

import "fmt"

// Memory access at run time: bounds and alignment faults, generic
// addressing, atomics, cp.async and module globals.

// fault stops the launch with a runtime error at pc of thread t.
func (w *worker) fault(t *thread, pc int, addr uint64, format string, args ...any) {
	if w.err != nil {
		return
	}
	k := w.k
	tid := w.tid(int(t.lin))
	msg := fmt.Sprintf(format, args...)
	loc := ""
	if pc >= 0 && pc < len(k.code) {
		loc = fmt.Sprintf("line %d: %q: ", k.line[pc], k.text[pc])
		if k.src[pc] != "" {
			loc = fmt.Sprintf("line %d (%s): %q: ", k.line[pc], k.src[pc], k.text[pc])
		}
	}
	w.err = fmt.Errorf("%w: kernel %s: %sblock (%d,%d,%d) thread (%d,%d,%d): %s", ErrFault, k.name, loc,
		w.ctaid[0], w.ctaid[1], w.ctaid[2], tid[0], tid[1], tid[2], msg)
}

func (w *worker) memFault(t *thread, pc int, addr, n uint64, space int) {
	switch space {
	case spGlobal:
		s := addr >> slotShift
		off := addr & slotMask
		switch {
		case addr&(n-1) != 0 && s < uint64(len(w.slots)) && w.slots[s] != nil && off+n <= uint64(len(w.slots[s].data)):
			w.fault(t, pc, addr, "misaligned %d-byte global access at address 0x%x", n, addr)
		case addr == 0 || s == 0:
			w.fault(t, pc, addr, "%d-byte global access at address 0x%x: not a global address (null or not converted from generic?)", n, addr)
		case s >= uint64(len(w.slots)) || w.slots[s] == nil:
			w.fault(t, pc, addr, "%d-byte global access at address 0x%x: no live allocation there (freed or wild pointer)", n, addr)
		default:
			size := uint64(len(w.slots[s].data))
			w.fault(t, pc, addr, "out-of-bounds %d-byte global access at address 0x%x: byte offset %d of the %d-byte allocation at 0x%x (%d bytes past its end)",
				n, addr, off, size, s<<slotShift, off+n-size)
		}
	case spShared:
		if addr&(n-1) != 0 && addr+n <= w.sharedSize {
			w.fault(t, pc, addr, "misaligned %d-byte shared access at shared address 0x%x", n, addr)
		} else {
			w.fault(t, pc, addr, "out-of-bounds %d-byte shared access at shared address 0x%x (block has %d bytes of shared memory: %d static, dynamic from %d)",
				n, addr, w.sharedSize, w.k.sharedStatic, w.k.dynBase)
		}
	case spLocal:
		if addr&(n-1) != 0 && addr+n <= uint64(w.k.localSize) {
			w.fault(t, pc, addr, "misaligned %d-byte local access at local address 0x%x", n, addr)
		} else {
			w.fault(t, pc, addr, "out-of-bounds %d-byte local access at local address 0x%x (%d bytes of local memory per thread)", n, addr, w.k.localSize)
		}
	case spConst:
		w.fault(t, pc, addr, "out-of-bounds or misaligned %d-byte constant access at const address 0x%x (%d bytes of constants)", n, addr, len(w.k.constData))
	default:
		w.fault(t, pc, addr, "%d-byte generic access at address 0x%x: not in global, shared, local or const memory", n, addr)
	}
}

// genericAccess performs ld/st with a generic address.
func (w *worker) genericAccess(t *thread, pc int, in *inst, regs []uint64) bool {
	addr := regs[in.a] + uint64(in.imm)
	n := uint64(in.sz) * uint64(in.nv)
	st := in.op == opStGeneric
	var buf []byte
	switch {
	case addr>>slotShift != 0:
		buf = w.global(addr, n)
		if buf == nil {
			w.memFault(t, pc, addr, n, spGlobal)
			return false
		}
		if w.counters {
			w.countGlobal(t, pc, addr, n, st)
		}
	case addr >= sharedWindow && addr < sharedWindow+w.sharedSize:
		a := addr - sharedWindow
		if a+n > w.sharedSize || a&(n-1) != 0 {
			w.memFault(t, pc, a, n, spShared)
			return false
		}
		if !w.asyncHazard(t, pc, a, n, accessWhat(st)) {
			return false
		}
		if w.checkShared && !w.sharedCheck(t, pc, a, n, st, false) {
			return false
		}
		buf = w.shared[a : a+n]
		if w.counters {
			w.countShared(t, pc, a, n, st)
		}
	case addr >= localWindow && addr < localWindow+uint64(len(t.local)):
		a := addr - localWindow
		if a+n > uint64(len(t.local)) || a&(n-1) != 0 {
			w.memFault(t, pc, a, n, spLocal)
			return false
		}
		buf = t.local[a : a+n]
	case addr >= constWindow && addr < constWindow+uint64(len(w.k.constData)):
		a := addr - constWindow
		if a+n > uint64(len(w.k.constData)) || a&(n-1) != 0 || st {
			w.fault(t, pc, addr, "bad %d-byte generic access to constant memory at address 0x%x", n, addr)
			return false
		}
		loadVals(in, regs, w.k.constData[a:a+n])
		return true
	default:
		w.memFault(t, pc, addr, n, spGeneric)
		return false
	}
	if st {
		storeVals(in, regs, buf)
	} else {
		loadVals(in, regs, buf)
	}
	return true
}

// atomic performs atom/red.
func (w *worker) atomic(t *thread, pc int, in *inst, regs []uint64) bool {
	addr := regs[in.a] + uint64(in.imm)
	n := uint64(in.sz)
	space := int(in.sub2)
	if space == spGeneric {
		switch {
		case addr>>slotShift != 0:
			space = spGlobal
		case addr >= sharedWindow && addr < sharedWindow+w.sharedSize:
			space = spShared
			addr -= sharedWindow
		default:
			w.fault(t, pc, addr, "atomic at generic address 0x%x: not in global or shared memory", addr)
			return false
		}
	}
	var buf []byte
	if space == spGlobal {
		buf = w.global(addr, n)
		if buf == nil {
			w.memFault(t, pc, addr, n, spGlobal)
			return false
		}
		mu := &w.m.atom[addr>>3&63]
		mu.Lock()
		old := load(buf, in.sz)
		store(buf, in.sz, atomCompute(in, old, regs[in.b], regs[in.c]))
		mu.Unlock()
		regs[in.d] = old
		if w.counters {
			w.stats.GlobalAtomics++
			w.countGlobal(t, pc, addr, n, true)
			w.stats.GlobalStoreBytes -= int64(n) // counted as an atomic, not a store
		}
		return true
	}
	if addr+n > w.sharedSize || addr&(n-1) != 0 {
		w.memFault(t, pc, addr, n, spShared)
		return false
	}
	if !w.asyncHazard(t, pc, addr, n, "atomic on") {
		return false
	}
	if w.checkShared && !w.sharedCheck(t, pc, addr, n, true, true) {
		return false
	}
	buf = w.shared[addr : addr+n]
	old := load(buf, in.sz)
	store(buf, in.sz, atomCompute(in, old, regs[in.b], regs[in.c]))
	regs[in.d] = old
	if w.counters {
		w.stats.SharedAtomics++
	}
	return true
}

func atomCompute(in *inst, old, b, c uint64) uint64 {
	m := in.mask
	kind := in.td >> 4
	switch in.sub {
	case aAdd:
		switch {
		case in.td == kF<<4|2:
			return ftz32(b32(f32(ftz32(old)) + f32(ftz32(b))))
		case in.td == kF<<4|3:
			return b64(f64(old) + f64(b))
		}
		return (old + b) & m
	case aMin, aMax:
		var less bool
		switch {
		case in.td == kF<<4|2:
			if in.sub == aMin {
				return min32(old, b, false)
			}
			return max32(old, b, false)
		case in.td == kF<<4|3:
			if in.sub == aMin {
				return min64(old, b, false)
			}
			return max64(old, b, false)
		case kind == kS:
			sh := uint8(64 - in.sz*8)
			less = sx(b, sh) < sx(old, sh)
		default:
			less = b&m < old&m
		}
		if less == (in.sub == aMin) {
			return b & m
		}
		return old
	case aAnd:
		return old & b & m
	case aOr:
		return (old | b) & m
	case aXor:
		return (old ^ b) & m
	case aExch:
		return b & m
	case aCas:
		if old&m == b&m {
			return c & m
		}
		return old
	case aInc:
		if old&m >= b&m {
			return 0
		}
		return (old + 1) & m
	case aDec:
		if old&m == 0 || old&m > b&m {
			return b & m
		}
		return (old - 1) & m
	}
	return old
}

// asyncCopy is a cp.async in flight: the source bytes read at issue, to be
// written to shared memory at dst when a wait covers group.
type asyncCopy struct {
	dst   uint64
	n     uint8
	group uint32
	pc    int32
	data  [16]byte
}

// cpAsync issues a cp.async of in.sz bytes from global to shared memory
// (zero-filling past the optional source size). The source is read now;
// the shared bytes are written when a cp.async.wait_group or wait_all of
// this thread covers the copy's group. Until then any access to them, by
// any thread, is a fault: on a GPU it would race with the copy.
func (w *worker) cpAsync(t *thread, pc int, in *inst, regs []uint64) bool {
	dst := regs[in.a] + uint64(in.imm)
	src := regs[in.b] + regs[in.c]
	n := uint64(in.sz)
	srcN := n
	if in.d >= 0 {
		srcN = min(regs[in.d]&0xffffffff, n)
	}
	if dst+n > w.sharedSize || dst&(n-1) != 0 || dst+n < dst {
		w.memFault(t, pc, dst, n, spShared)
		return false
	}
	if !w.asyncHazard(t, pc, dst, n, "cp.async to") {
		return false
	}
	c := asyncCopy{dst: dst, n: uint8(n), group: t.committed, pc: int32(pc)}
	if srcN > 0 {
		from := w.global(src, n)
		if from == nil {
			w.memFault(t, pc, src, n, spGlobal)
			return false
		}
		copy(c.data[:srcN], from[:srcN])
	}
	if len(w.inflight) < int(w.sharedSize) {
		w.inflight = make([]uint8, w.sharedSize)
	}
	for i := dst; i < dst+n; i++ {
		w.inflight[i]++
	}
	w.inflightN++
	t.async = append(t.async, c)
	if w.counters {
		w.countGlobal(t, pc, src, n, false)
		w.stats.SharedStoreBytes += int64(n)
	}
	return true
}

// cpAsyncWait executes cp.async.commit_group (in.sub 0), wait_group in.imm
// (1) and wait_all (2) for thread t: a wait lands every copy of t whose
// group is older than the in.imm most recently committed ones (wait_all:
// every copy, committed or not).
func (w *worker) cpAsyncWait(t *thread, in *inst) {
	switch in.sub {
	case 0:
		t.committed++
		return
	case 2:
		t.committed++
		w.cpAsyncLand(t, t.committed)
		return
	}
	if uint64(in.imm) < uint64(t.committed) {
		w.cpAsyncLand(t, t.committed-uint32(in.imm))
	}
}

// cpAsyncLand writes to shared memory the copies of t in groups older than
// before, in issue order, and keeps the others in flight.
func (w *worker) cpAsyncLand(t *thread, before uint32) {
	keep := t.async[:0]
	for _, c := range t.async {
		if c.group >= before {
			keep = append(keep, c)
			continue
		}
		n := uint64(c.n)
		for i := c.dst; i < c.dst+n; i++ {
			w.inflight[i]--
		}
		w.inflightN--
		if w.checkShared && !w.sharedCheck(t, int(c.pc), c.dst, n, true, false) {
			return
		}
		copy(w.shared[c.dst:c.dst+n], c.data[:n])
	}
	t.async = keep
}

// accessWhat names a shared load or store in asyncHazard's fault.
func accessWhat(st bool) string {
	if st {
		return "write of"
	}
	return "read of"
}

// asyncHazard reports false, after a fault, when n shared bytes at addr are
// the destination of a cp.async still in flight (what: "read of", …).
func (w *worker) asyncHazard(t *thread, pc int, addr, n uint64, what string) bool {
	if w.inflightN == 0 {
		return true
	}
	for i := addr; i < addr+n; i++ {
		if w.inflight[i] != 0 {
			w.fault(t, pc, i, "%s shared address 0x%x while a cp.async to it is in flight (no cp.async.wait_group of the issuing thread covers it yet, or the barrier after the wait is missing)", what, i)
			return false
		}
	}
	return true
}

// globalAddrs returns the addresses of a module's .global variables in m,
// allocating and initialising them on first use.
func (m *Machine) globalAddrs(gv *globalVarSet) ([]uint64, error) {
	if gv == nil || len(gv.vars) == 0 {
		return nil, nil
	}
	if a, ok := m.globals[gv]; ok {
		return a, nil
	}
	if m.globals == nil {
		m.globals = map[*globalVarSet][]uint64{}
	}
	var addrs []uint64
	for _, v := range gv.vars {
		p, err := m.Alloc(int64(max(len(v.init), 1)))
		if err != nil {
			return nil, fmt.Errorf("global variable %s: %w", v.name, err)
		}
		if err := m.Write(p, v.init); err != nil {
			return nil, err
		}
		addrs = append(addrs, p)
	}
	m.globals[gv] = addrs
	return addrs, nil
}
