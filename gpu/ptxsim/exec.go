package ptxsim

import (
	"encoding/binary"
	"math"
	"math/bits"
)

// thread states
const (
	stRun = iota
	stBar
	stColl
	stExit
)

type thread struct {
	regs  []uint64
	local []byte
	frame []byte
	occ   []uint32 // dynamic occurrence of each pc (counters only)
	stack []int32  // return pcs of calls
	pc    int32
	state uint8
	lin   int32 // linear thread index in the block
	steps int64
	// cp.async state: the copies in flight and the number of groups
	// committed (a copy belongs to group committed-at-issue).
	async     []asyncCopy
	committed uint32
}

var le = binary.LittleEndian

const maxCallDepth = 64

func load(buf []byte, sz uint8) uint64 {
	switch sz {
	case 4:
		return uint64(le.Uint32(buf))
	case 8:
		return le.Uint64(buf)
	case 2:
		return uint64(le.Uint16(buf))
	case 1:
		return uint64(buf[0])
	}
	return 0
}

func store(buf []byte, sz uint8, v uint64) {
	switch sz {
	case 4:
		le.PutUint32(buf, uint32(v))
	case 8:
		le.PutUint64(buf, v)
	case 2:
		le.PutUint16(buf, uint16(v))
	case 1:
		buf[0] = byte(v)
	}
}

func loadVals(in *inst, regs []uint64, buf []byte) {
	sz := int(in.sz)
	for i := 0; i < int(in.nv); i++ {
		v := load(buf[i*sz:], in.sz)
		if in.flags&fSigned != 0 {
			v = uint64(int64(v<<in.sh) >> in.sh)
		}
		regs[in.v[i]] = v & in.mask
	}
}

func storeVals(in *inst, regs []uint64, buf []byte) {
	sz := int(in.sz)
	for i := 0; i < int(in.nv); i++ {
		store(buf[i*sz:], in.sz, regs[in.v[i]])
	}
}

// global returns the n bytes at a global address, or nil when the access
// is out of bounds or misaligned.
func (w *worker) global(addr, n uint64) []byte {
	s := addr >> slotShift
	if s < uint64(len(w.slots)) {
		if a := w.slots[s]; a != nil {
			off := addr & slotMask
			if off+n <= uint64(len(a.data)) && addr&(n-1) == 0 {
				return a.data[off : off+n : off+n]
			}
		}
	}
	return nil
}

func sx(v uint64, sh uint8) int64 { return int64(v<<sh) >> sh }

// run executes thread t until it exits, blocks on a barrier or collective,
// or faults (w.err set).
func (w *worker) run(t *thread) {
	regs := t.regs
	code := w.k.code
	icount := w.icount
	pc := int(t.pc)
	steps := t.steps
	limit := w.limit
	for {
		in := &code[pc]
		icount[pc]++
		steps++
		if regs[in.p] != in.pv {
			pc++
			continue
		}
		switch in.op {
		case opNop:
		case opBra:
			if steps > limit {
				t.steps = steps
				w.fault(t, pc, 0, "instruction limit of %d per thread exceeded (infinite loop?)", limit)
				return
			}
			pc = int(in.imm)
			continue
		case opExit:
			t.steps, t.pc, t.state = steps, int32(pc), stExit
			w.live--
			return
		case opRet:
			if len(t.stack) == 0 {
				t.steps, t.pc, t.state = steps, int32(pc), stExit
				w.live--
				return
			}
			n := len(t.stack)
			cs := &w.k.calls[t.stack[n-1]]
			for _, c := range cs.out {
				copy(t.frame[c.dst:c.dst+c.n], t.frame[c.src:c.src+c.n])
			}
			pc = int(t.stack[n-2])
			t.stack = t.stack[:n-2]
			continue
		case opTrap:
			t.steps = steps
			w.fault(t, pc, 0, "trap")
			return
		case opBar:
			t.steps, t.pc, t.state = steps, int32(pc), stBar
			return
		case opColl:
			t.steps, t.pc, t.state = steps, int32(pc), stColl
			return
		case opActivemask:
			regs[in.d] = uint64(w.activeMask(t))

		case opMov:
			regs[in.d] = regs[in.a] & in.mask
		case opPack:
			var v uint64
			for i := 0; i < int(in.nv); i++ {
				v |= (regs[in.v[i]] & in.mask) << (uint(i) * uint(in.sz))
			}
			regs[in.d] = v
		case opUnpack:
			v := regs[in.a]
			for i := 0; i < int(in.nv); i++ {
				regs[in.v[i]] = v >> (uint(i) * uint(in.sz)) & in.mask
			}
		case opSext:
			regs[in.d] = uint64(sx(regs[in.a], in.sh)) & in.mask
		case opAddImm:
			regs[in.d] = (regs[in.a] + uint64(in.imm)) & in.mask
		case opSelp:
			if regs[in.c] != 0 {
				regs[in.d] = regs[in.a]
			} else {
				regs[in.d] = regs[in.b]
			}
		case opSlctS:
			if int32(regs[in.c]) >= 0 {
				regs[in.d] = regs[in.a]
			} else {
				regs[in.d] = regs[in.b]
			}
		case opSlctF:
			c := regs[in.c]
			if in.flags&fFtz != 0 {
				c = ftz32(c)
			}
			if f32(c) >= 0 {
				regs[in.d] = regs[in.a]
			} else {
				regs[in.d] = regs[in.b]
			}

		case opAdd:
			regs[in.d] = (regs[in.a] + regs[in.b]) & in.mask
		case opSub:
			regs[in.d] = (regs[in.a] - regs[in.b]) & in.mask
		case opMulLo:
			regs[in.d] = (regs[in.a] * regs[in.b]) & in.mask
		case opMadLo:
			regs[in.d] = (regs[in.a]*regs[in.b] + regs[in.c]) & in.mask
		case opAnd:
			regs[in.d] = regs[in.a] & regs[in.b] & in.mask
		case opOr:
			regs[in.d] = (regs[in.a] | regs[in.b]) & in.mask
		case opXor:
			regs[in.d] = (regs[in.a] ^ regs[in.b]) & in.mask
		case opNot:
			regs[in.d] = ^regs[in.a] & in.mask
		case opCnot:
			if regs[in.a]&in.mask == 0 {
				regs[in.d] = 1
			} else {
				regs[in.d] = 0
			}
		case opNeg:
			regs[in.d] = -regs[in.a] & in.mask
		case opShl:
			s := uint32(regs[in.b])
			if s >= 64 {
				regs[in.d] = 0
			} else {
				regs[in.d] = regs[in.a] << s & in.mask
			}
		case opShrU:
			s := uint32(regs[in.b])
			if s >= 64 {
				regs[in.d] = 0
			} else {
				regs[in.d] = (regs[in.a] & in.mask) >> s
			}
		case opShrS:
			s := uint32(regs[in.b])
			if s > 63 {
				s = 63
			}
			regs[in.d] = uint64(sx(regs[in.a], in.sh)>>s) & in.mask
		case opMulHiS:
			regs[in.d] = uint64((sx(regs[in.a], in.sh)*sx(regs[in.b], in.sh))>>(64-in.sh)) & in.mask
		case opMulHiU:
			regs[in.d] = ((regs[in.a] & in.mask) * (regs[in.b] & in.mask) >> (64 - in.sh)) & in.mask
		case opMulHiU64:
			hi, _ := bits.Mul64(regs[in.a], regs[in.b])
			regs[in.d] = hi
		case opMulHiS64:
			a, b := regs[in.a], regs[in.b]
			hi, _ := bits.Mul64(a, b)
			if int64(a) < 0 {
				hi -= b
			}
			if int64(b) < 0 {
				hi -= a
			}
			regs[in.d] = hi
		case opMulWideS:
			regs[in.d] = uint64(sx(regs[in.a], in.sh)*sx(regs[in.b], in.sh)) & in.mask
		case opMulWideU:
			m := bitsMask(64 - int(in.sh))
			regs[in.d] = (regs[in.a] & m) * (regs[in.b] & m) & in.mask
		case opMadWideS:
			regs[in.d] = (uint64(sx(regs[in.a], in.sh)*sx(regs[in.b], in.sh)) + regs[in.c]) & in.mask
		case opMadWideU:
			m := bitsMask(64 - int(in.sh))
			regs[in.d] = ((regs[in.a]&m)*(regs[in.b]&m) + regs[in.c]) & in.mask
		case opMadHiS:
			regs[in.d] = (uint64((sx(regs[in.a], in.sh)*sx(regs[in.b], in.sh))>>(64-in.sh)) + regs[in.c]) & in.mask
		case opMadHiU:
			regs[in.d] = ((regs[in.a]&in.mask)*(regs[in.b]&in.mask)>>(64-in.sh) + regs[in.c]) & in.mask
		case opMadHiSatS32:
			// (a*b)>>32 lies in [-2^30, 2^30]: the sum with c cannot overflow int64
			r := int64(int32(regs[in.a]))*int64(int32(regs[in.b]))>>32 + int64(int32(regs[in.c]))
			r = min(max(r, math.MinInt32), math.MaxInt32)
			regs[in.d] = uint64(r) & 0xffffffff
		case opDivS, opRemS:
			a, b := sx(regs[in.a], in.sh), sx(regs[in.b], in.sh)
			var r int64
			switch {
			case b == 0:
				r = -1 // undefined in PTX; the hardware result
				if in.op == opRemS {
					r = a
				}
			case in.op == opDivS:
				r = a / b // MinInt/-1 wraps in Go without panicking
			default:
				r = a % b
			}
			regs[in.d] = uint64(r) & in.mask
		case opDivU, opRemU:
			a, b := regs[in.a]&in.mask, regs[in.b]&in.mask
			var r uint64
			switch {
			case b == 0:
				r = in.mask
				if in.op == opRemU {
					r = a
				}
			case in.op == opDivU:
				r = a / b
			default:
				r = a % b
			}
			regs[in.d] = r & in.mask
		case opMinS:
			regs[in.d] = uint64(min(sx(regs[in.a], in.sh), sx(regs[in.b], in.sh))) & in.mask
		case opMaxS:
			regs[in.d] = uint64(max(sx(regs[in.a], in.sh), sx(regs[in.b], in.sh))) & in.mask
		case opMinU:
			regs[in.d] = min(regs[in.a]&in.mask, regs[in.b]&in.mask)
		case opMaxU:
			regs[in.d] = max(regs[in.a]&in.mask, regs[in.b]&in.mask)
		case opAbsS:
			a := sx(regs[in.a], in.sh)
			if a < 0 {
				a = -a
			}
			regs[in.d] = uint64(a) & in.mask
		case opPopc:
			regs[in.d] = uint64(bits.OnesCount64(regs[in.a] & bitsMask(int(in.sz)*8)))
		case opClz:
			n := int(in.sz) * 8
			regs[in.d] = uint64(bits.LeadingZeros64(regs[in.a]&bitsMask(n)) - (64 - n))
		case opBrev:
			n := int(in.sz) * 8
			regs[in.d] = bits.Reverse64(regs[in.a]) >> (64 - n)
		case opBfind:
			regs[in.d] = bfind(in, regs[in.a])
		case opBfeU, opBfeS:
			regs[in.d] = bfe(in, regs[in.a], regs[in.b], regs[in.c])
		case opBfi:
			regs[in.d] = bfi(in, regs[in.a], regs[in.b], regs[in.c], regs[in.e])
		case opPrmt:
			regs[in.d] = prmt(in.sub, uint32(regs[in.a]), uint32(regs[in.b]), uint32(regs[in.c]))
		case opLop3:
			regs[in.d] = lop3(regs[in.a], regs[in.b], regs[in.c], uint8(in.imm)) & 0xffffffff
		case opShfL, opShfR:
			regs[in.d] = shf(in, uint32(regs[in.a]), uint32(regs[in.b]), uint32(regs[in.c]))
		case opAddSatS32, opSubSatS32:
			a, b := int64(int32(regs[in.a])), int64(int32(regs[in.b]))
			r := a + b
			if in.op == opSubSatS32 {
				r = a - b
			}
			r = min(max(r, math.MinInt32), math.MaxInt32)
			regs[in.d] = uint64(r) & 0xffffffff

		case opSetpS:
			w.setp(in, regs, cmpSigned(in.sub, sx(regs[in.a], in.sh), sx(regs[in.b], in.sh)))
		case opSetpU:
			w.setp(in, regs, cmpUnsigned(in.sub, regs[in.a]&in.mask, regs[in.b]&in.mask))
		case opSetpF32:
			a, b := regs[in.a], regs[in.b]
			if in.flags&fFtz != 0 {
				a, b = ftz32(a), ftz32(b)
			}
			w.setp(in, regs, cmpFloat(in.sub, float64(f32(a)), float64(f32(b))))
		case opSetpF64:
			w.setp(in, regs, cmpFloat(in.sub, f64(regs[in.a]), f64(regs[in.b])))
		case opSetGeneric:
			regs[in.d] = setGeneric(in, regs[in.a], regs[in.b])

		case opAddF32:
			regs[in.d] = b32(f32(regs[in.a]) + f32(regs[in.b]))
		case opSubF32:
			regs[in.d] = b32(f32(regs[in.a]) - f32(regs[in.b]))
		case opMulF32:
			regs[in.d] = b32(f32(regs[in.a]) * f32(regs[in.b]))
		case opFmaF32:
			regs[in.d] = b32(fma32(f32(regs[in.a]), f32(regs[in.b]), f32(regs[in.c])))
		case opAddF32Ftz:
			regs[in.d] = ftz32(b32(f32(ftz32(regs[in.a])) + f32(ftz32(regs[in.b]))))
		case opSubF32Ftz:
			regs[in.d] = ftz32(b32(f32(ftz32(regs[in.a])) - f32(ftz32(regs[in.b]))))
		case opMulF32Ftz:
			regs[in.d] = ftz32(b32(f32(ftz32(regs[in.a])) * f32(ftz32(regs[in.b]))))
		case opFmaF32Ftz:
			regs[in.d] = ftz32(b32(fma32(f32(ftz32(regs[in.a])), f32(ftz32(regs[in.b])), f32(ftz32(regs[in.c])))))
		case opF32Slow:
			regs[in.d] = f32Slow(in.sub, in.rnd, in.flags, regs[in.a], regs[in.b], regs[in.c])
		case opDivF32:
			regs[in.d] = b32(f32(regs[in.a]) / f32(regs[in.b]))
		case opDivApproxF32:
			a, b := regs[in.a], regs[in.b]
			if in.flags&fFtz != 0 {
				a, b = ftz32(a), ftz32(b)
			}
			r := b32(f32(a) / f32(b))
			if in.flags&fFtz != 0 {
				r = ftz32(r)
			}
			regs[in.d] = r
		case opSqrtF32:
			regs[in.d] = b32(float32(math.Sqrt(float64(f32(regs[in.a])))))
		case opRcpF32:
			regs[in.d] = b32(1 / f32(regs[in.a]))
		case opMinF32, opMaxF32:
			a, b := regs[in.a], regs[in.b]
			if in.flags&fFtz != 0 {
				a, b = ftz32(a), ftz32(b)
			}
			if in.op == opMinF32 {
				regs[in.d] = min32(a, b, in.flags&fNaN != 0)
			} else {
				regs[in.d] = max32(a, b, in.flags&fNaN != 0)
			}
		case opAbsF32:
			a := regs[in.a]
			if in.flags&fFtz != 0 {
				a = ftz32(a)
			}
			regs[in.d] = a & 0x7fffffff
		case opNegF32:
			a := regs[in.a]
			if in.flags&fFtz != 0 {
				a = ftz32(a)
			}
			regs[in.d] = (a ^ 0x80000000) & 0xffffffff
		case opF32Unary:
			regs[in.d] = f32Unary(in.sub, in.flags&fFtz != 0, regs[in.a])
		case opCopysignF32:
			regs[in.d] = regs[in.b]&0x7fffffff | regs[in.a]&0x80000000
		case opTestpF32:
			v := regs[in.a]
			sub := v&0x7f800000 == 0 && v&0x7fffff != 0
			regs[in.d] = b2u(testp(in.sub, float64(f32(v)), sub))

		case opAddF64:
			regs[in.d] = b64(f64(regs[in.a]) + f64(regs[in.b]))
		case opSubF64:
			regs[in.d] = b64(f64(regs[in.a]) - f64(regs[in.b]))
		case opMulF64:
			regs[in.d] = b64(f64(regs[in.a]) * f64(regs[in.b]))
		case opFmaF64:
			regs[in.d] = b64(math.FMA(f64(regs[in.a]), f64(regs[in.b]), f64(regs[in.c])))
		case opF64Slow:
			regs[in.d] = f64Slow(in.sub, in.rnd, in.flags, regs[in.a], regs[in.b], regs[in.c])
		case opDivF64:
			regs[in.d] = b64(f64(regs[in.a]) / f64(regs[in.b]))
		case opSqrtF64:
			regs[in.d] = b64(math.Sqrt(f64(regs[in.a])))
		case opRcpF64:
			regs[in.d] = b64(1 / f64(regs[in.a]))
		case opMinF64:
			regs[in.d] = min64(regs[in.a], regs[in.b], in.flags&fNaN != 0)
		case opMaxF64:
			regs[in.d] = max64(regs[in.a], regs[in.b], in.flags&fNaN != 0)
		case opAbsF64:
			regs[in.d] = regs[in.a] &^ (1 << 63)
		case opNegF64:
			regs[in.d] = regs[in.a] ^ (1 << 63)
		case opF64Unary:
			regs[in.d] = f64Unary(in.sub, regs[in.a])
		case opCopysignF64:
			regs[in.d] = regs[in.b]&^(1<<63) | regs[in.a]&(1<<63)
		case opTestpF64:
			v := regs[in.a]
			sub := v&0x7ff0000000000000 == 0 && v&0xfffffffffffff != 0
			regs[in.d] = b2u(testp(in.sub, f64(v), sub))

		case opCvt:
			regs[in.d] = cvtGeneric(in, regs[in.a])

		case opLdGlobal:
			addr := regs[in.a] + uint64(in.imm)
			n := uint64(in.sz) * uint64(in.nv)
			buf := w.global(addr, n)
			if buf == nil {
				t.steps = steps
				w.memFault(t, pc, addr, n, spGlobal)
				return
			}
			if in.nv == 1 && in.sz == 4 && in.flags == 0 {
				regs[in.v[0]] = uint64(le.Uint32(buf))
			} else {
				loadVals(in, regs, buf)
			}
			if w.counters {
				w.countGlobal(t, pc, addr, n, false)
			}
		case opStGlobal:
			addr := regs[in.a] + uint64(in.imm)
			n := uint64(in.sz) * uint64(in.nv)
			buf := w.global(addr, n)
			if buf == nil {
				t.steps = steps
				w.memFault(t, pc, addr, n, spGlobal)
				return
			}
			if in.nv == 1 && in.sz == 4 {
				le.PutUint32(buf, uint32(regs[in.v[0]]))
			} else {
				storeVals(in, regs, buf)
			}
			if w.counters {
				w.countGlobal(t, pc, addr, n, true)
			}
		case opLdShared, opStShared:
			addr := regs[in.a] + uint64(in.imm)
			n := uint64(in.sz) * uint64(in.nv)
			if addr+n > w.sharedSize || addr&(n-1) != 0 || addr+n < addr {
				t.steps = steps
				w.memFault(t, pc, addr, n, spShared)
				return
			}
			st := in.op == opStShared
			if w.inflightN != 0 && !w.asyncHazard(t, pc, addr, n, accessWhat(st)) {
				t.steps = steps
				return
			}
			if w.checkShared && !w.sharedCheck(t, pc, addr, n, st, false) {
				t.steps = steps
				return
			}
			buf := w.shared[addr : addr+n]
			if st {
				storeVals(in, regs, buf)
			} else {
				loadVals(in, regs, buf)
			}
			if w.counters {
				w.countShared(t, pc, addr, n, st)
			}
		case opLdLocal, opStLocal:
			addr := regs[in.a] + uint64(in.imm)
			n := uint64(in.sz) * uint64(in.nv)
			if addr+n > uint64(len(t.local)) || addr&(n-1) != 0 || addr+n < addr {
				t.steps = steps
				w.memFault(t, pc, addr, n, spLocal)
				return
			}
			if in.op == opStLocal {
				storeVals(in, regs, t.local[addr:addr+n])
			} else {
				loadVals(in, regs, t.local[addr:addr+n])
			}
		case opLdConst:
			addr := regs[in.a] + uint64(in.imm)
			n := uint64(in.sz) * uint64(in.nv)
			if addr+n > uint64(len(w.k.constData)) || addr&(n-1) != 0 || addr+n < addr {
				t.steps = steps
				w.memFault(t, pc, addr, n, spConst)
				return
			}
			loadVals(in, regs, w.k.constData[addr:addr+n])
		case opCvtTF32:
			v := regs[in.a] & 0xffffffff
			if v&0x7f800000 != 0x7f800000 { // finite: round to nearest, ties away, to 10 mantissa bits
				v = (v + 0x1000) &^ 0x1fff & 0xffffffff
			}
			regs[in.d] = v
		case opCvtPack:
			regs[in.d] = cvtPack(in, regs[in.a], regs[in.b])
		case opCpAsyncWait:
			w.cpAsyncWait(t, in)
		case opClock:
			regs[in.d] = uint64(steps) & in.mask
		case opLdParam:
			n := int64(in.sz) * int64(in.nv)
			buf := w.params
			if in.sub == 1 {
				buf = t.frame
			}
			if in.imm < 0 || in.imm+n > int64(len(buf)) {
				t.steps = steps
				w.fault(t, pc, uint64(in.imm), "parameter access out of bounds")
				return
			}
			loadVals(in, regs, buf[in.imm:in.imm+n])
		case opStParam:
			n := int64(in.sz) * int64(in.nv)
			if in.imm < 0 || in.imm+n > int64(len(t.frame)) {
				t.steps = steps
				w.fault(t, pc, uint64(in.imm), "parameter access out of bounds")
				return
			}
			storeVals(in, regs, t.frame[in.imm:in.imm+n])
		case opLdGeneric, opStGeneric:
			t.steps = steps
			if !w.genericAccess(t, pc, in, regs) {
				return
			}
		case opAtom:
			t.steps = steps
			if !w.atomic(t, pc, in, regs) {
				return
			}
		case opCall:
			if len(t.stack) >= 2*maxCallDepth {
				t.steps = steps
				w.fault(t, pc, 0, "call depth exceeds %d", maxCallDepth)
				return
			}
			cs := &w.k.calls[in.b]
			for _, c := range cs.in {
				copy(t.frame[c.dst:c.dst+c.n], t.frame[c.src:c.src+c.n])
			}
			t.stack = append(t.stack, int32(pc+1), in.b)
			pc = int(in.imm)
			continue
		case opCpAsync:
			t.steps = steps
			if !w.cpAsync(t, pc, in, regs) {
				return
			}
		case opIsspacep:
			a := regs[in.a]
			var r bool
			switch in.sub {
			case 0:
				r = a>>slotShift != 0
			case 1:
				r = a >= sharedWindow && a-sharedWindow < w.sharedSize
			case 2:
				r = a >= localWindow && a-localWindow < uint64(len(t.local))
			}
			regs[in.d] = b2u(r)
		default:
			t.steps = steps
			w.fault(t, pc, 0, "internal error: opcode %d not implemented", in.op)
			return
		}
		pc++
	}
}

func b2u(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

func (w *worker) setp(in *inst, regs []uint64, r bool) {
	if in.sub2 != 0 {
		c := regs[in.c] != 0
		if in.flags&fNegC != 0 {
			c = !c
		}
		p, q := r, !r
		switch in.sub2 {
		case 1:
			p, q = p && c, q && c
		case 2:
			p, q = p || c, q || c
		case 3:
			p, q = p != c, q != c
		}
		regs[in.d] = b2u(p)
		if in.e >= 0 {
			regs[in.e] = b2u(q)
		}
		return
	}
	regs[in.d] = b2u(r)
	if in.e >= 0 {
		regs[in.e] = b2u(!r)
	}
}

func setGeneric(in *inst, a, b uint64) uint64 {
	var r bool
	switch in.ta >> 4 {
	case kF:
		ftz := in.flags&fFtz != 0
		r = cmpFloat(in.sub, fval(in.ta, a, ftz), fval(in.ta, b, ftz))
	case kS:
		r = cmpSigned(in.sub, sx(a, in.sh), sx(b, in.sh))
	default:
		m := bitsMask(64 - int(in.sh))
		r = cmpUnsigned(in.sub, a&m, b&m)
	}
	if in.td>>4 == kF {
		if r {
			return b32(1)
		}
		return 0
	}
	if r {
		return in.mask
	}
	return 0
}

func bfind(in *inst, a uint64) uint64 {
	n := int(in.sz) * 8
	a &= bitsMask(n)
	if in.flags&fSigned != 0 && a>>(n-1) != 0 {
		a = ^a & bitsMask(n)
	}
	if a == 0 {
		return 0xffffffff
	}
	pos := uint64(63 - bits.LeadingZeros64(a))
	if in.sub == 1 {
		return uint64(n-1) - pos
	}
	return pos
}

func bfe(in *inst, a, b, c uint64) uint64 {
	n := uint64(in.sz) * 8
	pos, ln := b&0xff, c&0xff
	var sbit uint64
	if in.op == opBfeS {
		if ln == 0 {
			sbit = 0
		} else {
			p := min(pos+ln-1, n-1)
			sbit = a >> p & 1
		}
	}
	var r uint64
	for i := uint64(0); i < n; i++ {
		var bit uint64
		if i < ln && pos+i <= n-1 {
			bit = a >> (pos + i) & 1
		} else {
			bit = sbit
		}
		r |= bit << i
	}
	return r
}

func bfi(in *inst, a, b, c, d uint64) uint64 {
	n := uint64(in.sz) * 8
	pos, ln := c&0xff, d&0xff
	r := b & bitsMask(int(n))
	for i := uint64(0); i < ln && pos+i < n; i++ {
		r = r&^(1<<(pos+i)) | (a>>i&1)<<(pos+i)
	}
	return r
}

// prmt permutes the bytes of b:a (8 bytes, a low). Without a mode each
// selector nibble picks a byte (bit 3: replicate its sign); the modes use
// c[1:0] with the fixed patterns of the PTX ISA.
func prmt(mode uint8, a, b, c uint32) uint64 {
	x := uint64(b)<<32 | uint64(a)
	byteAt := func(i uint32) uint64 { return x >> (8 * (i & 7)) & 0xff }
	var sel [4]uint32
	s := c & 3
	switch mode {
	case 0:
		var r uint64
		for i := 0; i < 4; i++ {
			n := c >> (4 * i) & 0xf
			v := byteAt(n)
			if n&8 != 0 { // replicate the sign bit
				if v&0x80 != 0 {
					v = 0xff
				} else {
					v = 0
				}
			}
			r |= v << (8 * i)
		}
		return r
	case 1: // f4e
		sel = [4]uint32{s, s + 1, s + 2, s + 3}
	case 2: // b4e
		sel = [4]uint32{s, s - 1, s - 2, s - 3}
	case 3: // rc8
		sel = [4]uint32{s, s, s, s}
	case 4: // ecl
		sel = [4]uint32{s, max(s, 1), max(s, 2), 3}
	case 5: // ecr
		sel = [4]uint32{0, min(s, 1), min(s, 2), s}
	case 6: // rc16
		h := (c & 1) * 2
		sel = [4]uint32{h, h + 1, h, h + 1}
	}
	var r uint64
	for i, n := range sel {
		r |= byteAt(n) << (8 * i)
	}
	return r
}

func lop3(a, b, c uint64, lut uint8) uint64 {
	var r uint64
	for i := 0; i < 8; i++ {
		if lut>>i&1 == 0 {
			continue
		}
		m := ^uint64(0)
		if i&4 != 0 {
			m &= a
		} else {
			m &= ^a
		}
		if i&2 != 0 {
			m &= b
		} else {
			m &= ^b
		}
		if i&1 != 0 {
			m &= c
		} else {
			m &= ^c
		}
		r |= m
	}
	return r
}

func shf(in *inst, a, b, c uint32) uint64 {
	n := c
	if in.sub == 1 { // clamp
		n = min(n, 32)
	} else {
		n &= 31
	}
	x := uint64(b)<<32 | uint64(a)
	if in.op == opShfL {
		return (x << n) >> 32 & 0xffffffff
	}
	return (x >> n) & 0xffffffff
}
