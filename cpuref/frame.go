package cpuref

import (
	"fmt"

	"github.com/convtrain/convtrain/cpuref/geom"
)

// The frame path of the FMA convolutions: a convolution that the implicit
// passes do not serve (a padded or strided one, as every 3×3 convolution
// of a ResNet) reads a zero-framed copy of each image instead of im2col's
// matrix, laid out so that every row of that matrix is a contiguous run.
//
// Stride 1 (and pw ≤ S − 1). The frame of one image is C·Hf rows of F
// floats, Hf = H + 2·ph, F = W + pw: row ph + h of channel c holds
// x[c, h, 0 … W−1] and then pw zeros, the ph rows above and below each
// channel's image are zeros, and the frame starts pw floats into its
// buffer (zeros too):
//
//	xf[pw + (c·Hf + ph + h)·F + w] = x[c, h, w]
//
// A tap that reads left of the image lands on the previous row's zero
// columns, one right of it on the row's own, so with the outputs laid out
// on the same row stride F — output (p, q) at column j = p·F + q, the
// columns q ≥ Q of a row (F − Q of them, Q = W + 2·pw − S + 1 ≤ F) being
// spare — row (c, r, s) of im2col's matrix is a contiguous run of xf:
//
//	col[(c,r,s), (p,q)] = xf[off[(c,r,s)] + p·F + q],  off[(c,r,s)] = (c·Hf + r)·F + s
//
// Other strides (phases). The zero-padded image (H + 2·ph rows of
// W + 2·pw) is cut into sh·sw phases, phase (a, b) holding its rows
// a, a + sh, … and columns b, b + sw, …, each phase C·Hf rows of F floats,
// Hf = ⌈(H + 2·ph)/sh⌉, F = ⌈(W + 2·pw)/sw⌉; padded element (h', w') of
// channel c is at
//
//	xf[((h' mod sh)·sw + w' mod sw)·C·Hf·F + (c·Hf + h'/sh)·F + w'/sw]
//
// and output (p, q) reads, for tap (r, s), padded element
// (p·sh + r, q·sw + s): in phase (r mod sh, s mod sw), row p + r/sh,
// column q + s/sw. So again, with j = p·F + q,
//
//	col[(c,r,s), (p,q)] = xf[off[(c,r,s)] + j],
//	off[(c,r,s)] = ((r mod sh)·sw + s mod sw)·C·Hf·F + (c·Hf + r/sh)·F + s/sw
//
// In both layouts col's padding zeros are the frame's zeros. So
//
//	forward:         the implicit-GEMM kernels compute the framed output
//	                 yf (K, n), n = P·F rounded up to 8 (32 on the
//	                 AVX-512 kernels), reading xf in place; the columns
//	                 q < Q of each row are y.
//	backward-filter: the row-walking kernels read row (c,r,s) of col as P
//	                 runs of Q floats from off[(c,r,s)] on, F apart.
//	backward-data:   dcol = Wᵀ · dyf (dyf: dy on the framed columns, zero
//	                 in the spare ones) a block of rows at a time on the
//	                 GEMM kernels, each row then added in (c, r, s) order
//	                 into the framed dx, whose image part is dx.
//
// Every value is the one of the im2col passes, bit for bit: the forward
// and backward-filter chains read the same values in the same order, and
// each dx element receives the same dcol values in the same (c, r, s)
// order, after a start at 0, as col2im gives it. The spare columns and the
// frame's zeros only add terms x + (+0) to sums that are never −0 (a chain
// of fused multiply-adds started from +0 does not give −0 in round to
// nearest, nor does a sum of such values), which leave them unchanged.

// useConvFrame turns the frame path on; tests switch it off to compare
// with the im2col passes.
var useConvFrame = true

// convFrame is the geometry of the frame of a Conv2D.
type convFrame struct {
	hf, f int     // rows per channel (and phase) and row stride
	n     int     // framed output columns: P·F rounded up to 8 (or 32)
	len   int     // floats of xf and dxf: the frame plus the reads past it
	off   []int32 // off[(c,r,s)]: where row (c,r,s) of col starts in xf
	rows  int     // dcol rows per block of the backward-data pass
	// phased: the phase layout; phases lists the phases that some tap
	// reads, each with the image rows and columns it holds.
	phased bool
	phases []framePhase
	// z: the passes run on the AVX-512 kernels (gemm512.go) where the
	// sizes suit them (n is then a multiple of 32): the forward pass when K
	// is a multiple of 8, backward-data when C·R·S is, backward-filter
	// when C·R·S is a multiple of 8 and K of 16.
	z bool
}

// framePhase is one phase (a, b) of the phase layout: its floats start at
// base; its rows t0 ≤ t < t1 hold image rows h0, h0 + sh, …, and its
// columns u0 ≤ u < u1 image columns w0, w0 + sw, …
type framePhase struct {
	base       int
	t0, t1, h0 int
	u0, u1, w0 int
}

// newConvFrame returns the frame of the convolution g with P×Q outputs,
// and false when its frame would have 2³¹ floats or more.
func newConvFrame(g geom.ConvGeom, p, q int) (convFrame, bool) {
	sh, sw := g.StrideH, g.StrideW
	fr := convFrame{rows: 16, z: useAVX512}
	if sh == 1 && sw == 1 && g.PadW <= g.S-1 {
		fr.hf, fr.f = g.H+2*g.PadH, g.W+g.PadW
	} else {
		fr.phased = true
		fr.hf, fr.f = (g.H+2*g.PadH+sh-1)/sh, (g.W+2*g.PadW+sw-1)/sw
	}
	round := 8
	if fr.z {
		round = 32
	}
	if !geom.FitsProduct([]int{sh * sw, g.C, fr.hf, fr.f + 1}) || !geom.FitsProduct([]int{g.K, p, fr.f + round}) {
		return convFrame{}, false
	}
	fr.n = (p*fr.f + round - 1) / round * round
	phase := g.C * fr.hf * fr.f // floats per phase
	for ch := 0; ch < g.C; ch++ {
		for r := 0; r < g.R; r++ {
			for s := 0; s < g.S; s++ {
				o := (ch*fr.hf+r)*fr.f + s
				if fr.phased {
					o = ((r%sh)*sw+s%sw)*phase + (ch*fr.hf+r/sh)*fr.f + s/sw
				}
				fr.off = append(fr.off, int32(o))
			}
		}
	}
	// The frame, and the reads of the last tap's row past it.
	fr.len = max(g.PadW+phase, sh*sw*phase)
	for _, o := range fr.off {
		fr.len = max(fr.len, int(o)+fr.n)
	}
	if fr.len > 1<<31-1 {
		return convFrame{}, false
	}
	if fr.phased {
		for a := range sh {
			for b := range sw {
				if !tapsRead(g.R, sh, a) || !tapsRead(g.S, sw, b) {
					continue
				}
				ph := framePhase{base: (a*sw + b) * phase}
				ph.t0, ph.t1, ph.h0 = phaseRange(g.H, g.PadH, sh, a)
				ph.u0, ph.u1, ph.w0 = phaseRange(g.W, g.PadW, sw, b)
				fr.phases = append(fr.phases, ph)
			}
		}
	}
	return fr, true
}

// tapsRead reports whether some tap r < R has r mod stride = a.
func tapsRead(R, stride, a int) bool { return a < R }

// phaseRange returns the rows t0 ≤ t < t1 of phase a (of stride stride)
// that hold image rows (of n, padded by pad on each side), and the image
// row h0 of row t0: padded row t·stride + a is image row t·stride + a − pad.
func phaseRange(n, pad, stride, a int) (t0, t1, h0 int) {
	// t·stride + a − pad ≥ 0  and  ≤ n − 1
	t0 = max(0, (pad-a+stride-1)/stride)
	if n-1+pad-a < 0 {
		return 0, 0, 0
	}
	t1 = (n-1+pad-a)/stride + 1
	if t1 < t0 {
		t1 = t0
	}
	return t0, t1, t0*stride + a - pad
}

// alloc gives ws the frame path's buffers (zero, so the frames' zeros are
// written once).
func (fr *convFrame) alloc(ws *convWorker, g geom.ConvGeom) {
	ws.xf = make([]float32, fr.len)
	ws.dxf = make([]float32, fr.len)
	ws.dyf = make([]float32, g.K*fr.n)
	ws.yf = make([]float32, g.K*fr.n)
	ws.dcol = make([]float32, fr.rows*fr.n)
}

// load writes the image x (C,H,W) into the frame xf, whose zeros are in
// place.
func (fr *convFrame) load(xf, x []float32, g geom.ConvGeom) {
	H, W := g.H, g.W
	if fr.phased {
		sh, sw := g.StrideH, g.StrideW
		for _, ph := range fr.phases {
			for ch := 0; ch < g.C; ch++ {
				o := ph.base + (ch*fr.hf+ph.t0)*fr.f + ph.u0
				copyRows(xf[o:], fr.f, 1, x[(ch*H+ph.h0)*W+ph.w0:], sh*W, sw, ph.t1-ph.t0, ph.u1-ph.u0)
			}
		}
		return
	}
	for ch := 0; ch < g.C; ch++ {
		base := g.PadW + (ch*fr.hf+g.PadH)*fr.f
		for h := 0; h < H; h++ {
			copy(xf[base+h*fr.f:base+h*fr.f+W], x[(ch*H+h)*W:(ch*H+h+1)*W])
		}
	}
}

// store writes the image part of the frame xf into dx (C,H,W).
func (fr *convFrame) store(dx, xf []float32, g geom.ConvGeom) {
	H, W := g.H, g.W
	if fr.phased {
		// Inputs in phases that no tap reads have gradient 0.
		if len(fr.phases) < g.StrideH*g.StrideW {
			clear(dx[:g.C*H*W])
		}
		sh, sw := g.StrideH, g.StrideW
		for _, ph := range fr.phases {
			for ch := 0; ch < g.C; ch++ {
				o := ph.base + (ch*fr.hf+ph.t0)*fr.f + ph.u0
				copyRows(dx[(ch*H+ph.h0)*W+ph.w0:], sh*W, sw, xf[o:], fr.f, 1, ph.t1-ph.t0, ph.u1-ph.u0)
			}
		}
		return
	}
	for ch := 0; ch < g.C; ch++ {
		base := g.PadW + (ch*fr.hf+g.PadH)*fr.f
		for h := 0; h < H; h++ {
			copy(dx[(ch*H+h)*W:(ch*H+h+1)*W], xf[base+h*fr.f:])
		}
	}
}

// forwardFrame computes y (K, P·Q) = W · col for one image x (C,H,W) on the
// frame: see the top of this file.
func (c *Conv2D) forwardFrame(ws *convWorker, x, y []float32) {
	fr, K, Q := &c.fr, c.g.K, c.q
	c.fr.load(ws.xf, x, c.g)
	xf := ws.xf
	if fr.z && K%8 == 0 {
		c.forwardFrameZ(xf, ws.yf)
	} else {
		c.forwardOff(fr.off, ws.yf, fr.n, fr.n, ws.gs, func(j int) *float32 { return &xf[j] })
	}
	for k := 0; k < K; k++ {
		if fr.f == Q { // no spare columns: the rows are one run
			copy(y[k*c.pq:(k+1)*c.pq], ws.yf[k*fr.n:])
			continue
		}
		for p := 0; p < c.p; p++ {
			copy(y[(k*c.p+p)*Q:(k*c.p+p+1)*Q], ws.yf[k*fr.n+p*fr.f:])
		}
	}
}

// forwardFrameZ computes the framed output yf (K, n) = W · col from the
// frame xf on the 8×32 AVX-512 tiles, K a multiple of 8, the chains paused
// between cache blocks of gemmKC as forwardOff pauses them.
func (c *Conv2D) forwardFrameZ(xf, yf []float32) {
	fr, K, crs := &c.fr, c.g.K, c.crs
	_ = c.w[K*crs-1]
	_ = yf[K*fr.n-1]
	_ = xf[int(fr.off[crs-1])+fr.n-1]
	for p0 := 0; p0 < crs; p0 += gemmKC {
		kc := min(gemmKC, crs-p0)
		for j := 0; j < fr.n; j += 32 {
			for i := 0; i < K; i += 8 {
				gemmKernelOffZ(kc, &c.w[i*crs+p0], crs, 1, &xf[j], &fr.off[p0], &yf[i*fr.n+j], fr.n, p0 > 0)
			}
		}
	}
}

// filterFrameZ computes dWᵀ (C·R·S, K) = load·dWᵀ + col · dyᵀ for one image
// from its frame xf on the AVX-512 row-walking tiles (K a multiple of 16),
// dyᵀ packed in bp as one row of K floats per output: the chains of
// filterImplicit. A last tile of fewer than 8 rows runs in s.z, its rows
// past C·R·S repeating the last and discarded.
func (c *Conv2D) filterFrameZ(xf, dy, bp []float32, load bool, dWT []float32, s *gemmScratch) {
	fr, K, pq, crs := &c.fr, c.g.K, c.pq, c.crs
	transposeRows(bp[:pq*K], K, dy, pq, K, pq)
	_ = dWT[crs*K-1]
	P, Q, jumpb := c.p, c.q, 4*(fr.f-c.q)
	for j := 0; j < K; j += 32 {
		w := min(32, K-j) // 32 or 16
		// Direct calls, not through a func value: &a must not escape.
		kern := func(a *[8]*float32, c *float32, ldc int, load bool) {
			if w == 32 {
				gemmKernelRowsZ32(P, a, Q, jumpb, &bp[j], K, c, ldc, load)
			} else {
				gemmKernelRowsZ16(P, a, Q, jumpb, &bp[j], K, c, ldc, load)
			}
		}
		for i := 0; i < crs; i += 8 {
			h := min(8, crs-i)
			var a [8]*float32
			for ii := range a {
				a[ii] = &xf[fr.off[i+min(ii, h-1)]]
			}
			if h == 8 {
				kern(&a, &dWT[i*K+j], K, load)
				continue
			}
			t := s.z[:]
			if load {
				for ii := range h {
					copy(t[ii*w:(ii+1)*w], dWT[(i+ii)*K+j:])
				}
			}
			kern(&a, &t[0], w, load)
			for ii := range h {
				copy(dWT[(i+ii)*K+j:(i+ii)*K+j+w], t[ii*w:])
			}
		}
	}
}

// backwardDataFrame overwrites dx (C,H,W) of one image with the col2im of
// dcol = Wᵀ · dy on the frame: see the top of this file.
func (c *Conv2D) backwardDataFrame(ws *convWorker, dy, dx []float32) {
	g, fr, K, Q, crs := c.g, &c.fr, c.g.K, c.q, c.crs
	for k := 0; k < K; k++ {
		if fr.f == Q { // no spare columns: the rows are one run
			copy(ws.dyf[k*fr.n:k*fr.n+c.pq], dy[k*c.pq:])
			continue
		}
		for p := 0; p < c.p; p++ {
			copy(ws.dyf[k*fr.n+p*fr.f:k*fr.n+p*fr.f+Q], dy[(k*c.p+p)*Q:])
		}
	}
	if fr.phased && len(fr.phases) < g.StrideH*g.StrideW {
		// Only the phases that store reads need their zeros; the rows'
		// spare columns may add +0 past them, which nothing reads.
		phase := g.C * fr.hf * fr.f
		for _, ph := range fr.phases {
			clear(ws.dxf[ph.base : ph.base+phase])
		}
	} else {
		clear(ws.dxf)
	}
	for i0 := 0; i0 < crs; i0 += fr.rows {
		m := min(fr.rows, crs-i0)
		if fr.z && crs%8 == 0 {
			// dcol rows i0 … i0+m−1 (m a multiple of 8), 8×32 tiles
			_ = c.w[(K-1)*crs+i0+m-1]
			for j := 0; j < fr.n; j += 32 {
				for i := 0; i < m; i += 8 {
					gemmKernelZ(K, &c.w[i0+i], 1, crs, &ws.dyf[j], fr.n, &ws.dcol[i*fr.n+j], fr.n, false)
				}
			}
		} else {
			gemm(m, fr.n, K, transA(c.w[i0:], crs), rowMajorB(ws.dyf, fr.n), 0, ws.dcol, fr.n, ws.gs)
		}
		for i := range m {
			o := int(fr.off[i0+i])
			addTo(ws.dxf[o:o+fr.n], ws.dcol[i*fr.n:(i+1)*fr.n])
		}
	}
	fr.store(dx, ws.dxf, g)
}

// addToGo is addTo in Go.
func addToGo(dst, src []float32) {
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] += v
	}
}

// transposeRowsGo writes dst[p·ldd + k0 + k] = src[k·lds + p] for
// k < rows and p < cols.
func transposeRowsGo(dst []float32, ldd int, src []float32, lds, rows, cols, k0 int) {
	for k := range rows {
		for p, v := range src[k*lds : k*lds+cols] {
			dst[p*ldd+k0+k] = v
		}
	}
}

// copyRowsGo is copyRows in Go.
func copyRowsGo(dst []float32, ldd, ds int, src []float32, lds, ss, rows, n int) {
	for r := range rows {
		for k := range n {
			dst[r*ldd+k*ds] = src[r*lds+k*ss]
		}
	}
}

// transposedData reports whether the backward-data pass runs as the
// forward pass of the transposed convolution (backwardDataTransposed): a
// stride-1 convolution on the frame path with the AVX-512 kernels, whose
// transpose (C outputs) suits them too, padded by at most the kernel less
// one. There each dx element is one chain of fused multiply-adds over
// (k, r', s') in order, r' = R−1−r, s' = S−1−s: long chains over all of
// K·R·S, where the frame's backward-data pass (dcol, then col2im) runs K
// at a time.
func (c *Conv2D) transposedData() bool {
	g := c.g
	return c.frame && !c.fr.phased && c.fr.z && g.C%8 == 0 &&
		g.PadH <= g.R-1 && g.PadW <= g.S-1 && useTransposedData
}

// useTransposedData turns transposedData on; tests switch it off to reach
// the frame's own backward-data pass.
var useTransposedData = true

// backwardDataTransposed computes dx as the forward pass of the transposed
// convolution: dx[n,c,h,w] = Σ_(k,r',s') wT[c,k,r',s'] · dy[n,k, h−ph'+r',
// w−pw'+s'] with wT[c,k,r',s'] = w[k,c,R−1−r',S−1−s'], ph' = R−1−ph,
// pw' = S−1−pw (0 outside dy), a stride-1 convolution of K channels to C.
func (c *Conv2D) backwardDataTransposed(dy, w, dx []float32) error {
	g := c.g
	R, S, K, C := g.R, g.S, g.K, g.C
	if c.tr == nil {
		tr, err := NewConv2D(geom.ConvGeom{N: g.N, C: K, H: c.p, W: c.q, K: C, R: R, S: S,
			StrideH: 1, StrideW: 1, PadH: R - 1 - g.PadH, PadW: S - 1 - g.PadW})
		if err != nil {
			return fmt.Errorf("cpuref: Conv2D.BackwardData %v: the transposed convolution: %w", g, err)
		}
		c.tr, c.wT = tr, make([]float32, len(w))
	}
	for k := range K {
		for ch := range C {
			src := w[(k*C+ch)*R*S : (k*C+ch+1)*R*S]
			dst := c.wT[(ch*K+k)*R*S : (ch*K+k+1)*R*S]
			for i, v := range src {
				dst[R*S-1-i] = v // (r, s) → (R−1−r, S−1−s)
			}
		}
	}
	return c.tr.Forward(dy, c.wT, nil, dx)
}
