package ptxsim

import "fmt"

// Race detection in shared memory: a shadow byte per shared byte.

// shadowByte is the race and initialisation state of one shared byte: the
// last writer and reader(s), the block epoch (barrier interval) of the
// access, and the warp epoch (bar.warp.sync interval) of the accessing warp.
type shadowByte struct {
	wTid, rTid int32 // rTid -2: several readers
	wEp, rEp   uint32
	wWep, rWep uint32
	rWarp      int32 // warp of the readers, -1 when they span warps
	wAtomic    bool  // the last write was an atomic
}

// sharedCheck applies the race and uninitialised-read checks to a shared
// access of n bytes at addr by thread t. It reports false after a fault.
// Two accesses are ordered when a barrier separates them (different block
// epochs) or when both threads belong to one warp and a bar.warp.sync of
// that warp separates them.
func (w *worker) sharedCheck(t *thread, pc int, addr, n uint64, write, atomicOp bool) bool {
	tid := t.lin
	warp := tid / 32
	wep := w.warpEpoch[warp]
	ep := w.epoch
	// ordered reports whether an earlier access by thread o at warp epoch oe
	// (same block epoch) happens before this one.
	ordered := func(o int32, oe uint32) bool {
		return o == tid || o >= 0 && o/32 == warp && oe < wep
	}
	for i := addr; i < addr+n; i++ {
		s := &w.shadow[i]
		if atomicOp {
			if w.checkUninit && s.wEp < w.blockEpoch {
				w.fault(t, pc, i, "atomic on uninitialised shared memory at shared address 0x%x (no thread of this block wrote it in this launch)", i)
				return false
			}
			if w.checkRaces && s.wEp == ep && !s.wAtomic && !ordered(s.wTid, s.wWep) {
				w.raceFault(t, pc, i, "atomic", "written", s.wTid, false)
				return false
			}
			if w.checkRaces && s.rEp == ep && s.rTid != tid && !(s.rWarp == warp && s.rWep < wep) {
				w.raceFault(t, pc, i, "atomic", "read", s.rTid, false)
				return false
			}
			s.wEp, s.wTid, s.wWep, s.wAtomic = ep, tid, wep, true
			continue
		}
		if !write {
			if w.checkUninit && s.wEp < w.blockEpoch {
				w.fault(t, pc, i, "read of uninitialised shared memory at shared address 0x%x (no thread of this block wrote it in this launch)", i)
				return false
			}
			if w.checkRaces {
				if s.wEp == ep && !ordered(s.wTid, s.wWep) {
					w.raceFault(t, pc, i, "read", "written", s.wTid, s.wAtomic)
					return false
				}
				switch {
				case s.rEp != ep:
					s.rEp, s.rTid, s.rWarp, s.rWep = ep, tid, warp, wep
				case s.rTid != tid:
					s.rTid = -2
					if s.rWarp != warp {
						s.rWarp = -1
					}
					s.rWep = max(s.rWep, wep)
				}
			}
			continue
		}
		if w.checkRaces {
			if s.wEp == ep && !ordered(s.wTid, s.wWep) {
				w.raceFault(t, pc, i, "write", "written", s.wTid, s.wAtomic)
				return false
			}
			if s.rEp == ep && s.rTid != tid && !(s.rWarp == warp && s.rWep < wep) {
				w.raceFault(t, pc, i, "write", "read", s.rTid, false)
				return false
			}
		}
		s.wEp, s.wTid, s.wWep, s.wAtomic = ep, tid, wep, false
	}
	return true
}

func (w *worker) raceFault(t *thread, pc int, addr uint64, what, other string, otid int32, atomicOp bool) {
	by := "another thread"
	switch {
	case otid >= 0:
		o := w.tid(int(otid))
		by = fmt.Sprintf("thread (%d,%d,%d)", o[0], o[1], o[2])
	case otid == -2:
		by = "several other threads"
	}
	if atomicOp {
		other = "updated with an atomic"
	}
	w.fault(t, pc, addr, "shared-memory race: %s of shared address 0x%x, which %s %s since the last barrier", what, addr, by, other)
}
