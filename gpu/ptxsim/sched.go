package ptxsim

// The scheduler: a block's threads run until a barrier, a warp collective
// or their end; barriers and collectives are resolved here.

func (w *worker) runBlock() {
	k := w.k
	clear(w.shared)
	clear(w.local)
	w.epoch++
	w.blockEpoch = w.epoch
	nwarps := (w.nthreads + 31) / 32
	for i := range w.threads {
		t := &w.threads[i]
		t.pc, t.state, t.steps = 0, stRun, 0
		t.stack = t.stack[:0]
		clear(t.regs[:k.constBase]) // registers start at zero: deterministic even for undefined reads
		copy(t.regs[k.constBase:], k.consts)
		t.regs[0], t.regs[1] = 1, 0
		tid := w.tid(i)
		lane := uint(i % 32)
		for _, sp := range k.specials {
			var v uint64
			switch sp.kind {
			case spTidX, spTidY, spTidZ:
				v = uint64(tid[sp.kind-spTidX])
			case spNtidX, spNtidY, spNtidZ:
				v = uint64(w.block[sp.kind-spNtidX])
			case spCtaidX, spCtaidY, spCtaidZ:
				v = uint64(w.ctaid[sp.kind-spCtaidX])
			case spNctaidX, spNctaidY, spNctaidZ:
				v = uint64(w.grid[sp.kind-spNctaidX])
			case spLaneid:
				v = uint64(lane)
			case spWarpid:
				v = uint64(i / 32)
			case spNwarpid:
				v = uint64(nwarps)
			case spLanemaskEq:
				v = 1 << lane
			case spLanemaskLt:
				v = 1<<lane - 1
			case spLanemaskLe:
				v = 1<<(lane+1) - 1
			case spLanemaskGt:
				v = ^uint64(1<<(lane+1)-1) & 0xffffffff
			case spLanemaskGe:
				v = ^uint64(1<<lane-1) & 0xffffffff
			case spSmid, spGridid:
				v = 0
			case spNsmid:
				v = 1
			default:
				if sp.kind >= spGlobalVar {
					v = w.gaddrs[sp.kind-spGlobalVar]
				}
			}
			t.regs[sp.slot] = v
		}
		if t.occ != nil {
			clear(t.occ)
		}
		t.async, t.committed = t.async[:0], 0
	}
	if w.inflightN != 0 {
		clear(w.inflight)
		w.inflightN = 0
	}
	w.live = w.nthreads
	w.stats.Blocks++
	w.stats.Threads += int64(w.nthreads)
	w.runq = w.runq[:0]
	for i := range w.threads {
		w.runq = append(w.runq, int32(i))
	}
	for {
		for _, i := range w.runq {
			w.run(&w.threads[i])
			if w.err != nil {
				return
			}
		}
		w.runq = w.runq[:0]
		if k.usesColl {
			for wp := 0; wp < nwarps; wp++ {
				w.resolveWarp(wp)
				if w.err != nil {
					return
				}
			}
			if len(w.runq) > 0 {
				continue
			}
		}
		if w.live == 0 {
			break
		}
		if !w.resolveBarrier() {
			w.deadlock()
			return
		}
		if w.err != nil {
			return
		}
	}
	if w.counters {
		w.flushCounters()
	}
}

func (w *worker) resolveBarrier() bool {
	// barrier id of each waiting thread, count operand
	var ids [16]int
	var counts [16]int
	for i := range counts {
		counts[i] = -1
	}
	waiting := 0
	for i := range w.threads {
		t := &w.threads[i]
		if t.state != stBar {
			continue
		}
		in := &w.k.code[t.pc]
		id := int(t.regs[in.a])
		if id > 15 {
			w.fault(t, int(t.pc), 0, "barrier id %d out of range 0..15", id)
			return true
		}
		ids[id]++
		waiting++
		if in.b >= 0 {
			c := int(t.regs[in.b])
			if counts[id] >= 0 && counts[id] != c {
				w.fault(t, int(t.pc), 0, "barrier %d used with thread counts %d and %d", id, counts[id], c)
				return true
			}
			counts[id] = c
		}
	}
	if waiting == 0 {
		return false
	}
	released := false
	for id := 0; id < 16; id++ {
		if ids[id] == 0 {
			continue
		}
		need := w.live
		if counts[id] >= 0 {
			need = counts[id]
		}
		if ids[id] < need {
			continue
		}
		released = true
		n0 := len(w.runq)
		popc, all, any := uint64(0), true, false
		for i := range w.threads {
			t := &w.threads[i]
			if t.state == stBar && int(t.regs[w.k.code[t.pc].a]) == id {
				in := &w.k.code[t.pc]
				if in.sub != barPlain {
					p := t.regs[in.c] != 0
					if in.flags&fNegC != 0 {
						p = !p
					}
					if p {
						popc++
						any = true
					} else {
						all = false
					}
				}
				w.runq = append(w.runq, int32(i))
			}
		}
		for _, i := range w.runq[n0:] {
			t := &w.threads[i]
			in := &w.k.code[t.pc]
			switch in.sub {
			case barPopc:
				t.regs[in.d] = popc
			case barAnd:
				t.regs[in.d] = b2u(all)
			case barOr:
				t.regs[in.d] = b2u(any)
			}
			t.state = stRun
			t.pc++
		}
	}
	if released {
		w.epoch++
		w.stats.Barriers++
		if w.counters {
			w.flushCounters()
		}
	}
	return released
}

func (w *worker) deadlock() {
	for i := range w.threads {
		t := &w.threads[i]
		if t.state == stBar || t.state == stColl {
			exited := w.nthreads - w.live
			w.fault(t, int(t.pc), 0, "deadlock: %d threads wait at barriers or warp collectives that can never complete (%d of %d threads exited)",
				w.live, exited, w.nthreads)
			return
		}
	}
	w.fault(&w.threads[0], int(w.threads[0].pc), 0, "deadlock")
}

// activeMask is the mask of the lanes of t's warp that have not exited.
func (w *worker) activeMask(t *thread) uint32 {
	base := int(t.lin) &^ 31
	var m uint32
	for l := 0; l < 32 && base+l < w.nthreads; l++ {
		if w.threads[base+l].state != stExit {
			m |= 1 << l
		}
	}
	return m
}

// collective kinds
const (
	collShflUp = iota
	collShflDown
	collShflBfly
	collShflIdx
	collVoteAny
	collVoteAll
	collVoteUni
	collVoteBallot
	collRedux
	collSyncwarp
	collMma
	collLdmatrix
)

var collNames = [...]string{"shfl.sync.up", "shfl.sync.down", "shfl.sync.bfly", "shfl.sync.idx", "vote.sync.any",
	"vote.sync.all", "vote.sync.uni", "vote.sync.ballot", "redux.sync", "bar.warp.sync", "mma.sync", "ldmatrix.sync"}

func (w *worker) resolveWarp(wp int) {
	base := wp * 32
	n := min(32, w.nthreads-base)
	lanes := w.threads[base : base+n]
	var done uint32
	for l := 0; l < n; l++ {
		t := &lanes[l]
		if t.state != stColl || done&(1<<l) != 0 {
			continue
		}
		in := &w.k.code[t.pc]
		mask := uint32(t.regs[in.v[0]])
		if mask&(1<<l) == 0 {
			w.fault(t, int(t.pc), 0, "%s: membermask 0x%08x does not include the calling lane %d", collNames[in.sub], mask, l)
			return
		}
		// every non-exited lane of mask must wait at a matching collective
		ready := true
		var group uint32
		for j := 0; j < 32; j++ {
			if mask&(1<<j) == 0 {
				continue
			}
			if j >= n || lanes[j].state == stExit {
				continue
			}
			u := &lanes[j]
			if u.state != stColl {
				ready = false
				break
			}
			jin := &w.k.code[u.pc]
			if jin.sub != in.sub || uint32(u.regs[jin.v[0]]) != mask {
				w.fault(u, int(u.pc), 0, "%s with membermask 0x%08x meets %s with membermask 0x%08x of lane %d",
					collNames[jin.sub], uint32(u.regs[jin.v[0]]), collNames[in.sub], mask, l)
				return
			}
			group |= 1 << j
		}
		if !ready {
			continue
		}
		done |= group
		if !w.collective(lanes, base, group, in.sub) {
			return
		}
		for j := 0; j < n; j++ {
			if group&(1<<j) != 0 {
				lanes[j].state = stRun
				lanes[j].pc++
				w.runq = append(w.runq, int32(base+j))
			}
		}
	}
}

// collective computes the results of a complete warp rendezvous.
func (w *worker) collective(lanes []thread, base int, group uint32, kind uint8) bool {
	var res [32]uint64
	var pred [32]bool
	switch kind {
	case collShflUp, collShflDown, collShflBfly, collShflIdx:
		for l := 0; l < 32; l++ {
			if group&(1<<l) == 0 {
				continue
			}
			t := &lanes[l]
			in := &w.k.code[t.pc]
			b := int(t.regs[in.b] & 31)
			c := uint32(t.regs[in.c])
			cval := int(c & 31)
			segmask := int(c >> 8 & 31)
			maxLane := l&segmask | cval&^segmask
			minLane := l & segmask
			var j int
			var ok bool
			switch kind {
			case collShflUp:
				j = l - b
				ok = j >= maxLane
			case collShflDown:
				j = l + b
				ok = j <= maxLane
			case collShflBfly:
				j = l ^ b
				ok = j <= maxLane
			case collShflIdx:
				j = minLane | b&^segmask
				ok = j <= maxLane
			}
			if !ok {
				j = l
			}
			if group&(1<<j) == 0 {
				why := "is not in membermask"
				if base+j >= w.nthreads {
					why = "does not exist (partial warp)"
				} else if lanes[j].state == stExit {
					why = "has exited"
				}
				w.fault(t, int(t.pc), 0, "%s: lane %d reads lane %d, which %s", collNames[kind], l, j, why)
				return false
			}
			u := &lanes[j]
			res[l] = u.regs[w.k.code[u.pc].a] & 0xffffffff
			pred[l] = ok
		}
	case collVoteAny, collVoteAll, collVoteUni, collVoteBallot:
		var ballot uint32
		for l := 0; l < 32; l++ {
			if group&(1<<l) == 0 {
				continue
			}
			t := &lanes[l]
			in := &w.k.code[t.pc]
			p := t.regs[in.a] != 0
			if in.flags&fNegA != 0 {
				p = !p
			}
			if p {
				ballot |= 1 << l
			}
		}
		var r uint64
		switch kind {
		case collVoteAny:
			r = b2u(ballot != 0)
		case collVoteAll:
			r = b2u(ballot == group)
		case collVoteUni:
			r = b2u(ballot == 0 || ballot == group)
		case collVoteBallot:
			r = uint64(ballot)
		}
		for l := range res {
			res[l] = r
		}
	case collRedux:
		var acc uint64
		first := true
		for l := 0; l < 32; l++ {
			if group&(1<<l) == 0 {
				continue
			}
			t := &lanes[l]
			in := &w.k.code[t.pc]
			v := t.regs[in.a] & 0xffffffff
			if first {
				acc, first = v, false
				continue
			}
			signed := in.flags&fSigned != 0
			switch in.sub2 {
			case aAdd:
				acc = (acc + v) & 0xffffffff
			case aMin:
				if signed && int32(v) < int32(acc) || !signed && v < acc {
					acc = v
				}
			case aMax:
				if signed && int32(v) > int32(acc) || !signed && v > acc {
					acc = v
				}
			case aAnd:
				acc &= v
			case aOr:
				acc |= v
			case aXor:
				acc ^= v
			}
		}
		for l := range res {
			res[l] = acc
		}
	case collMma, collLdmatrix:
		if group != 0xffffffff {
			t := &lanes[0]
			w.fault(t, int(t.pc), 0, "%s needs all 32 lanes of the warp (lanes present: 0x%08x)", collNames[kind], group)
			return false
		}
		if kind == collMma {
			w.mma(lanes)
			return true
		}
		return w.ldmatrix(lanes)
	case collSyncwarp:
		if w.warpEpoch != nil {
			w.warpEpoch[base/32]++
		}
		return true
	}
	for l := 0; l < 32; l++ {
		if group&(1<<l) == 0 {
			continue
		}
		t := &lanes[l]
		in := &w.k.code[t.pc]
		t.regs[in.d] = res[l]
		if kind <= collShflIdx && in.e >= 0 {
			t.regs[in.e] = b2u(pred[l])
		}
	}
	return true
}
