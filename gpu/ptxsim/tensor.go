package ptxsim

// Tensor-core execution: mma.sync and ldmatrix over a warp.

// mma computes D = A·B + C for a warp. Products are exact in float64 and
// summed in k order in float64, then rounded once to float32: tensor cores
// are not specified to that precision, so results may differ from a GPU in
// the last bits.
func (w *worker) mma(lanes []thread) {
	in := &w.k.code[lanes[0].pc]
	mi := &w.k.mmas[in.imm]
	K := 8
	if mi.kind == mmaF16k16 || mi.kind == mmaBF16k16 {
		K = 16
	}
	var A [16][16]float64
	var B [16][8]float64
	var C [16][8]float64
	half := func(v uint64) float64 {
		if mi.kind == mmaBF16k16 {
			return float64(f32(v << 16 & 0xffff0000))
		}
		return f16ToF64(v)
	}
	for l := 0; l < 32; l++ {
		r := lanes[l].regs
		g, tg := l>>2, l&3
		switch mi.kind {
		case mmaTF32k8:
			tf := func(s int32) float64 { return float64(f32(r[s] & 0xffffe000)) }
			A[g][tg], A[g+8][tg], A[g][tg+4], A[g+8][tg+4] = tf(mi.a[0]), tf(mi.a[1]), tf(mi.a[2]), tf(mi.a[3])
			B[tg][g], B[tg+4][g] = tf(mi.b[0]), tf(mi.b[1])
		default:
			for j, s := range mi.a {
				row := g + 8*(j&1)
				col := 2*tg + 8*(j>>1)
				A[row][col], A[row][col+1] = half(r[s]&0xffff), half(r[s]>>16&0xffff)
			}
			for j, s := range mi.b {
				k := 2*tg + 8*j
				B[k][g], B[k+1][g] = half(r[s]&0xffff), half(r[s]>>16&0xffff)
			}
		}
		for j, s := range mi.c {
			C[g+8*(j>>1)][2*tg+j&1] = float64(f32(r[s]))
		}
	}
	for l := 0; l < 32; l++ {
		r := lanes[l].regs
		g, tg := l>>2, l&3
		for j, s := range mi.d {
			row, col := g+8*(j>>1), 2*tg+j&1
			acc := C[row][col]
			for k := 0; k < K; k++ {
				acc += A[row][k] * B[k][col]
			}
			r[s] = b32(float32(acc))
		}
	}
}

// ldmatrix loads 8×8 matrices of 16-bit elements from shared memory: lane
// 8i+r supplies the address of row r of matrix i.
func (w *worker) ldmatrix(lanes []thread) bool {
	in := &w.k.code[lanes[0].pc]
	li := &w.k.ldms[in.imm]
	var m [4][8][8]uint64
	for i := 0; i < li.num; i++ {
		for r := 0; r < 8; r++ {
			t := &lanes[8*i+r]
			tin := &w.k.code[t.pc]
			addr := t.regs[tin.a] + t.regs[tin.b]
			if addr+16 > w.sharedSize || addr&15 != 0 {
				w.memFault(t, int(t.pc), addr, 16, spShared)
				return false
			}
			if !w.asyncHazard(t, int(t.pc), addr, 16, "ldmatrix read of") {
				return false
			}
			if w.checkShared && !w.sharedCheck(t, int(t.pc), addr, 16, false, false) {
				return false
			}
			for c := 0; c < 8; c++ {
				m[i][r][c] = uint64(le.Uint16(w.shared[addr+uint64(2*c):]))
			}
			if w.counters {
				w.countShared(t, int(t.pc), addr, 16, false)
			}
		}
	}
	for l := 0; l < 32; l++ {
		r := lanes[l].regs
		for i := 0; i < li.num; i++ {
			var lo, hi uint64
			if li.trans {
				lo, hi = m[i][2*(l&3)][l>>2], m[i][2*(l&3)+1][l>>2]
			} else {
				lo, hi = m[i][l>>2][2*(l&3)], m[i][l>>2][2*(l&3)+1]
			}
			r[li.d[i]] = lo | hi<<16
		}
	}
	return true
}
