package ptxsim

// Counters of a launch: global sectors per request and shared-memory bank
// conflicts.

type memGroup struct {
	units []uint64 // distinct sectors (global) or words (shared; the phase in the bits from phaseShift)
}

// phaseShift places a shared access's phase above its word address in
// memGroup.units. The banks serve a warp's 8-byte accesses in two phases
// (half-warps) and its 16-byte accesses, ldmatrix rows included, in four
// (quarter-warps: ldmatrix matrix i is lanes 8i…8i+7); bank conflicts are
// counted within each phase, as the extra wavefronts over the phase's
// ideal.
const phaseShift = 58

// occTable maps (warp, pc) to the warp requests of each dynamic occurrence:
// idx[warp·len(code)+pc][occ] is an index into the request list. Threads
// execute the occurrences of a pc in order, so the first thread to reach
// occurrence k of a warp finds k requests already there and appends one.
type occTable struct {
	idx     [][]int32
	touched []int32
}

func (tab *occTable) group(groups *[]memGroup, key int, occ uint32) *memGroup {
	s := tab.idx[key]
	if int(occ) < len(s) {
		return &(*groups)[s[occ]]
	}
	if len(s) == 0 {
		tab.touched = append(tab.touched, int32(key))
	}
	gi := len(*groups)
	if gi < cap(*groups) {
		*groups = (*groups)[:gi+1]
		(*groups)[gi].units = (*groups)[gi].units[:0]
	} else {
		*groups = append(*groups, memGroup{})
	}
	tab.idx[key] = append(s, int32(gi))
	return &(*groups)[gi]
}

func (tab *occTable) reset() {
	for _, k := range tab.touched {
		tab.idx[k] = tab.idx[k][:0]
	}
	tab.touched = tab.touched[:0]
}

// countGlobal records a global access of thread t for warp-level counters.
func (w *worker) countGlobal(t *thread, pc int, addr, n uint64, st bool) {
	if st {
		w.stats.GlobalStoreBytes += int64(n)
	} else {
		w.stats.GlobalLoadBytes += int64(n)
	}
	g := w.glTab.group(&w.gl, int(t.lin/32)*len(w.k.code)+pc, t.occ[pc])
	t.occ[pc]++
	for s := addr >> 5; s <= (addr+n-1)>>5; s++ {
		g.units = addUnique(g.units, s)
	}
}

func (w *worker) countShared(t *thread, pc int, addr, n uint64, st bool) {
	if st {
		w.stats.SharedStoreBytes += int64(n)
	} else {
		w.stats.SharedLoadBytes += int64(n)
	}
	g := w.shTab.group(&w.sh, int(t.lin/32)*len(w.k.code)+pc, t.occ[pc])
	t.occ[pc]++
	lane := uint64(t.lin % 32)
	var phase uint64
	switch {
	case n >= 16:
		phase = lane / 8
	case n == 8:
		phase = lane / 16
	}
	for a := addr >> 2; a <= (addr+n-1)>>2; a++ {
		g.units = addUnique(g.units, a|phase<<phaseShift)
	}
}

func addUnique(s []uint64, v uint64) []uint64 {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}

func (w *worker) flushCounters() {
	w.stats.GlobalRequests += int64(len(w.gl))
	for i := range w.gl {
		w.stats.GlobalSectors += int64(len(w.gl[i].units))
	}
	w.stats.SharedRequests += int64(len(w.sh))
	for i := range w.sh {
		// Per phase: the most distinct words in one bank, less the ideal
		// ⌈distinct words of the phase / 32⌉.
		var banks [4][32]int64
		var worst, words [4]int64
		for _, u := range w.sh[i].units {
			ph, word := u>>phaseShift, u&(1<<phaseShift-1)
			banks[ph][word&31]++
			worst[ph] = max(worst[ph], banks[ph][word&31])
			words[ph]++
		}
		for ph := range worst {
			w.stats.SharedBankConflicts += worst[ph] - (words[ph]+31)/32
		}
	}
	w.gl = w.gl[:0]
	w.sh = w.sh[:0]
	// Occurrences count from the last barrier, where a warp reconverges.
	n := len(w.k.code)
	for _, tab := range []*occTable{&w.glTab, &w.shTab} {
		for _, key := range tab.touched {
			warp, pc := int(key)/n, int(key)%n
			for l := warp * 32; l < min(warp*32+32, w.nthreads); l++ {
				w.threads[l].occ[pc] = 0
			}
		}
		tab.reset()
	}
}
