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

// cpAsync copies in.sz bytes from global to shared memory (zero-filling
// past the optional source size).
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
	var from []byte
	if srcN > 0 {
		if from = w.global(src, n); from == nil {
			w.memFault(t, pc, src, n, spGlobal)
			return false
		}
	}
	if w.checkShared && !w.sharedCheck(t, pc, dst, n, true, false) {
		return false
	}
	to := w.shared[dst : dst+n]
	copy(to, from[:srcN])
	clear(to[srcN:])
	if w.counters {
		w.countGlobal(t, pc, src, n, false)
		w.stats.SharedStoreBytes += int64(n)
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
