package ptxsim

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

// Fragment-layout tests: hand-written PTX hands the simulator raw
// registers and shared rows, and the expected registers come from the
// layout tables of the PTX ISA (sections "Warp-level matrix load
// instruction: ldmatrix" and "Matrix fragments for mma.m16n8k16 with
// floating point type" / "mma.m16n8k8 with .tf32"), written out below as
// functions of the lane, independently of tensor.go.

const layoutHeader = ".version 7.0\n.target sm_80\n.address_size 64\n"

// ldmKernel is ldmatrix.sync.aligned.m8n8.xNUM{.trans}.shared.b16: 32
// shared rows of 16 bytes (row i = in[16i:16i+16]), lane l supplies the
// address of row (7l+3) mod 32, lane l stores its NUM registers at
// out[16l:].
func ldmKernel(name string, num int, trans bool) string {
	var regs, stores []string
	for i := 0; i < num; i++ {
		regs = append(regs, fmt.Sprintf("%%r%d", 10+i))
		stores = append(stores, fmt.Sprintf("\tst.global.u32 [%%rd9+%d], %%r%d;", 4*i, 10+i))
	}
	tr := ""
	if trans {
		tr = ".trans"
	}
	return fmt.Sprintf(`
.visible .entry %s(.param .u64 pin, .param .u64 pout)
{
	.reg .b32 %%r<20>;
	.reg .b64 %%rd<12>;
	.shared .align 16 .b8 sm[512];
	ld.param.u64 %%rd1, [pin];
	ld.param.u64 %%rd2, [pout];
	cvta.to.global.u64 %%rd1, %%rd1;
	cvta.to.global.u64 %%rd2, %%rd2;
	mov.u32 %%r1, %%tid.x;
	mul.wide.u32 %%rd3, %%r1, 16;
	add.s64 %%rd4, %%rd1, %%rd3;
	ld.global.v4.u32 {%%r2,%%r3,%%r4,%%r5}, [%%rd4];
	mov.u64 %%rd5, sm;
	add.s64 %%rd6, %%rd5, %%rd3;
	st.shared.v4.u32 [%%rd6], {%%r2,%%r3,%%r4,%%r5};
	bar.sync 0;
	mad.lo.u32 %%r7, %%r1, 7, 3;
	and.b32 %%r7, %%r7, 31;
	mul.wide.u32 %%rd7, %%r7, 16;
	add.s64 %%rd8, %%rd5, %%rd7;
	ldmatrix.sync.aligned.m8n8.x%d%s.shared.b16 {%s}, [%%rd8];
	add.s64 %%rd9, %%rd2, %%rd3;
%s
	ret;
}
`, name, num, tr, strings.Join(regs, ","), strings.Join(stores, "\n"))
}

// mmaKernel runs one mma.sync on raw per-lane registers: lane l's A
// registers at a[16l:], B at b[8l:], C at c[16l:], D stored at d[16l:].
func mmaKernel(name, shape, typ string) string {
	return fmt.Sprintf(`
.visible .entry %s(.param .u64 pa, .param .u64 pb, .param .u64 pc, .param .u64 pd)
{
	.reg .b32 %%r<20>;
	.reg .f32 %%f<10>;
	.reg .b64 %%rd<14>;
	ld.param.u64 %%rd1, [pa];
	ld.param.u64 %%rd2, [pb];
	ld.param.u64 %%rd3, [pc];
	ld.param.u64 %%rd4, [pd];
	mov.u32 %%r1, %%tid.x;
	mul.wide.u32 %%rd5, %%r1, 16;
	mul.wide.u32 %%rd6, %%r1, 8;
	add.s64 %%rd7, %%rd1, %%rd5;
	ld.global.v4.u32 {%%r2,%%r3,%%r4,%%r5}, [%%rd7];
	add.s64 %%rd8, %%rd2, %%rd6;
	ld.global.v2.u32 {%%r6,%%r7}, [%%rd8];
	add.s64 %%rd9, %%rd3, %%rd5;
	ld.global.v4.f32 {%%f1,%%f2,%%f3,%%f4}, [%%rd9];
	mma.sync.aligned.%s.row.col.f32.%s.%s.f32 {%%f5,%%f6,%%f7,%%f8}, {%%r2,%%r3,%%r4,%%r5}, {%%r6,%%r7}, {%%f1,%%f2,%%f3,%%f4};
	add.s64 %%rd10, %%rd4, %%rd5;
	st.global.v4.f32 [%%rd10], {%%f5,%%f6,%%f7,%%f8};
	ret;
}
`, name, shape, typ, typ)
}

func loadLayoutModule(t *testing.T, bodies ...string) *Module {
	t.Helper()
	mod, err := Load(layoutHeader + strings.Join(bodies, ""))
	if err != nil {
		t.Fatal(err)
	}
	return mod
}

func putU32(m *Machine, tb testing.TB, v []uint32) uint64 {
	tb.Helper()
	s := make([]int32, len(v))
	for i, x := range v {
		s[i] = int32(x)
	}
	return putI32(m, tb, s)
}

// TestLdmatrixLayout checks ldmatrix .x1/.x2/.x4, with and without .trans,
// against the ISA's table: lanes 8i…8i+7 supply the addresses of rows 0…7
// of matrix i; without .trans lane l receives, in register i, elements
// (row l/4, columns 2(l%4) and 2(l%4)+1) of matrix i, the lower column in
// the lower half; with .trans it receives (rows 2(l%4) and 2(l%4)+1,
// column l/4).
func TestLdmatrixLayout(t *testing.T) {
	var bodies []string
	type variant struct {
		name  string
		num   int
		trans bool
	}
	var vs []variant
	for _, num := range []int{1, 2, 4} {
		for _, trans := range []bool{false, true} {
			v := variant{fmt.Sprintf("ldm_x%d_trans%v", num, trans), num, trans}
			vs = append(vs, v)
			bodies = append(bodies, ldmKernel(v.name, v.num, v.trans))
		}
	}
	mod := loadLayoutModule(t, bodies...)
	// Shared row i, element c holds the 16-bit value 256·i + c + 1.
	words := make([]uint32, 32*4)
	elem := func(row, col int) uint32 { return uint32(256*row + col + 1) }
	for i := 0; i < 32; i++ {
		for c := 0; c < 8; c += 2 {
			words[4*i+c/2] = elem(i, c) | elem(i, c+1)<<16
		}
	}
	for _, v := range vs {
		t.Run("variant="+v.name, func(t *testing.T) {
			m := New(checked())
			in := putU32(m, t, words)
			out := putU32(m, t, make([]uint32, 32*4))
			if _, err := m.Launch(kernel(t, mod, v.name), [3]int{1, 1, 1}, [3]int{32, 1, 1}, 0, []uint64{in, out}); err != nil {
				t.Fatal(err)
			}
			got := getI32(m, t, out, 32*4)
			// rowOf(i, r) is the shared row that lane 8i+r addressed.
			rowOf := func(i, r int) int { return (7*(8*i+r) + 3) % 32 }
			for l := 0; l < 32; l++ {
				for i := 0; i < v.num; i++ {
					var lo, hi uint32
					if v.trans {
						lo = elem(rowOf(i, 2*(l%4)), l/4)
						hi = elem(rowOf(i, 2*(l%4)+1), l/4)
					} else {
						lo = elem(rowOf(i, l/4), 2*(l%4))
						hi = elem(rowOf(i, l/4), 2*(l%4)+1)
					}
					if want := lo | hi<<16; uint32(got[4*l+i]) != want {
						t.Errorf("lane %d register %d = %#08x, want %#08x", l, i, uint32(got[4*l+i]), want)
					}
				}
			}
		})
	}
}

// bf16Bits returns the bfloat16 bits of x, which must be exact in bfloat16.
func bf16Bits(t *testing.T, x float32) uint32 {
	b := math.Float32bits(x)
	if b&0xffff != 0 {
		t.Fatalf("%g is not a bfloat16", x)
	}
	return b >> 16
}

// TestMmaLayout checks the fragments of mma.m16n8k16 .bf16 and
// mma.m16n8k8 .tf32 against the ISA's tables, with groupID g = lane/4 and
// threadID_in_group tg = lane%4:
//
//	m16n8k16 A (4 × .b32, elements a0…a7, a2j in the low half of register j):
//	  row g for a0,a1,a4,a5 and g+8 for a2,a3,a6,a7;
//	  column 2tg + (i&1) for a0…a3 and 2tg + (i&1) + 8 for a4…a7
//	m16n8k16 B (2 × .b32, b0…b3): row 2tg + (i&1) for b0,b1, +8 for b2,b3; column g
//	m16n8k8 .tf32 A (a0…a3): (g, tg), (g+8, tg), (g, tg+4), (g+8, tg+4)
//	m16n8k8 .tf32 B (b0, b1): (tg, g), (tg+4, g)
//	C and D (4 × .f32, c0…c3): row g for c0,c1 and g+8 for c2,c3; column 2tg + (i&1)
//
// The matrices hold small distinct integers, so every product and sum is
// exact and any misplaced element changes the result.
func TestMmaLayout(t *testing.T) {
	mod := loadLayoutModule(t, mmaKernel("mma_bf16", "m16n8k16", "bf16"), mmaKernel("mma_tf32", "m16n8k8", "tf32"))
	for _, c := range []struct {
		kernel string
		K      int
	}{{"mma_bf16", 16}, {"mma_tf32", 8}} {
		t.Run("kernel="+c.kernel, func(t *testing.T) {
			K := c.K
			A := make([][]float32, 16)
			for i := range A {
				A[i] = make([]float32, K)
				for k := range A[i] {
					A[i][k] = float32((i*K+k)%29 - 14)
				}
			}
			B := make([][]float32, K)
			for k := range B {
				B[k] = make([]float32, 8)
				for j := range B[k] {
					B[k][j] = float32((k*8+j*3)%23 - 11)
				}
			}
			C := make([][]float32, 16)
			for i := range C {
				C[i] = make([]float32, 8)
				for j := range C[i] {
					C[i][j] = float32(i*8 + j)
				}
			}
			a := make([]uint32, 32*4)
			b := make([]uint32, 32*2)
			cr := make([]uint32, 32*4)
			for l := 0; l < 32; l++ {
				g, tg := l/4, l%4
				if K == 16 {
					for i := 0; i < 8; i++ {
						row := g + 8*((i/2)%2)
						col := 2*tg + i%2 + 8*(i/4)
						a[4*l+i/2] |= bf16Bits(t, A[row][col]) << (16 * (i % 2))
					}
					for i := 0; i < 4; i++ {
						b[2*l+i/2] |= bf16Bits(t, B[2*tg+i%2+8*(i/2)][g]) << (16 * (i % 2))
					}
				} else {
					for i, rc := range [][2]int{{g, tg}, {g + 8, tg}, {g, tg + 4}, {g + 8, tg + 4}} {
						a[4*l+i] = math.Float32bits(A[rc[0]][rc[1]])
					}
					b[2*l] = math.Float32bits(B[tg][g])
					b[2*l+1] = math.Float32bits(B[tg+4][g])
				}
				for i := 0; i < 4; i++ {
					cr[4*l+i] = math.Float32bits(C[g+8*(i/2)][2*tg+i%2])
				}
			}
			m := New(checked())
			pa, pb, pc := putU32(m, t, a), putU32(m, t, b), putU32(m, t, cr)
			pd := putF32(m, t, nanSlice(32*4))
			st, err := m.Launch(kernel(t, mod, c.kernel), [3]int{1, 1, 1}, [3]int{32, 1, 1}, 0, []uint64{pa, pb, pc, pd})
			if err != nil {
				t.Fatal(err)
			}
			d := getF32(m, t, pd, 32*4)
			for l := 0; l < 32; l++ {
				g, tg := l/4, l%4
				for i := 0; i < 4; i++ {
					row, col := g+8*(i/2), 2*tg+i%2
					want := C[row][col]
					for k := 0; k < K; k++ {
						want += A[row][k] * B[k][col]
					}
					if d[4*l+i] != want {
						t.Errorf("lane %d d%d (D[%d][%d]) = %g, want %g", l, i, row, col, d[4*l+i], want)
					}
				}
			}
			if got := st.Instructions["mma"]; got != 32 {
				t.Errorf("Instructions[mma] = %d, want 32 (one mma.sync by a warp of 32 threads)", got)
			}
			if got, want := st.MMAs(), int64(1); got != want {
				t.Errorf("MMAs() = %d, want %d", got, want)
			}
			// The kernel has 16 other instructions, all executed by the 32
			// threads.
			if got, want := st.NonMMAPerMMA(), 16.0; got != want {
				t.Errorf("NonMMAPerMMA() = %g, want %g (stats %v)", got, want, st)
			}
		})
	}
}

// TestCvtBF16x2 checks cvt.rn{.relu}.bf16x2.f32 d, a, b: a rounded to the
// upper half and b to the lower, to nearest with ties to even, on bit
// patterns that exercise ties, carries into the exponent, overflow to
// infinity, subnormals and NaN (the simulator returns the canonical NaN
// 0x7fff).
func TestCvtBF16x2(t *testing.T) {
	body := func(name, mod string) string {
		return fmt.Sprintf(`
.visible .entry %s(.param .u64 pin, .param .u64 pout)
{
	.reg .b32 %%r<6>;
	.reg .f32 %%f<4>;
	.reg .b64 %%rd<8>;
	ld.param.u64 %%rd1, [pin];
	ld.param.u64 %%rd2, [pout];
	mov.u32 %%r1, %%tid.x;
	mul.wide.u32 %%rd3, %%r1, 8;
	add.s64 %%rd4, %%rd1, %%rd3;
	ld.global.v2.f32 {%%f1,%%f2}, [%%rd4];
	cvt.rn%s.bf16x2.f32 %%r2, %%f1, %%f2;
	mul.wide.u32 %%rd5, %%r1, 4;
	add.s64 %%rd6, %%rd2, %%rd5;
	st.global.u32 [%%rd6], %%r2;
	ret;
}
`, name, mod)
	}
	mod := loadLayoutModule(t, body("cvt_bf16x2", ""), body("cvt_relu_bf16x2", ".relu"))
	cases := []struct {
		in         uint32
		want, relu uint16
	}{
		{0x3f800000, 0x3f80, 0x3f80}, // 1
		{0x3f808000, 0x3f80, 0x3f80}, // tie, even below
		{0x3f818000, 0x3f82, 0x3f82}, // tie, odd below: up
		{0x3f808001, 0x3f81, 0x3f81}, // above the tie
		{0x3f807fff, 0x3f80, 0x3f80}, // below the tie
		{0x3fffffff, 0x4000, 0x4000}, // carry into the exponent
		{0xbf818000, 0xbf82, 0x0000}, // negative tie; relu: +0
		{0x7f7fffff, 0x7f80, 0x7f80}, // largest float32: overflows to +Inf
		{0x7f800000, 0x7f80, 0x7f80}, // +Inf
		{0xff800000, 0xff80, 0x0000}, // −Inf
		{0x7fc00001, 0x7fff, 0x7fff}, // NaN
		{0x00018000, 0x0002, 0x0002}, // subnormal tie, odd below
		{0x00008000, 0x0000, 0x0000}, // subnormal tie, even below
		{0x00010001, 0x0001, 0x0001}, // subnormal above the tie
		{0x007fffff, 0x0080, 0x0080}, // largest subnormal: rounds to the smallest normal
		{0x80000000, 0x8000, 0x8000}, // −0 (relu keeps −0: not negative)
	}
	n := len(cases)
	in := make([]uint32, 2*n)
	for i, c := range cases {
		in[2*i] = c.in                // a: upper half
		in[2*i+1] = cases[(i+1)%n].in // b: lower half
	}
	for _, k := range []string{"cvt_bf16x2", "cvt_relu_bf16x2"} {
		t.Run("kernel="+k, func(t *testing.T) {
			m := New(checked())
			pin, pout := putU32(m, t, in), putU32(m, t, make([]uint32, n))
			if _, err := m.Launch(kernel(t, mod, k), [3]int{1, 1, 1}, [3]int{n, 1, 1}, 0, []uint64{pin, pout}); err != nil {
				t.Fatal(err)
			}
			got := getI32(m, t, pout, n)
			for i, c := range cases {
				hi, lo := c.want, cases[(i+1)%n].want
				if k == "cvt_relu_bf16x2" {
					hi, lo = c.relu, cases[(i+1)%n].relu
				}
				if want := uint32(hi)<<16 | uint32(lo); uint32(got[i]) != want {
					t.Errorf("%s(%#08x, %#08x) = %#08x, want %#08x", k, c.in, cases[(i+1)%n].in, uint32(got[i]), want)
				}
			}
		})
	}
}

// cpAsyncGroupsKernel: thread t copies the 32 bytes at in[32t:] to its
// shared region in four cp.async of three groups (16 bytes .cg; 8 bytes
// .ca; 4 bytes with src-size 0 and 4 bytes with src-size 2, zero-filled
// past it), reads the first 16 bytes after cp.async.wait_group 2, runs
// extra, then reads the rest after cp.async.wait_group 0 and stores all
// 32 bytes to out[32t:].
func cpAsyncGroupsKernel(name, extra string) string {
	return fmt.Sprintf(`
.visible .entry %s(.param .u64 pin, .param .u64 pout)
{
	.reg .b32 %%r<12>;
	.reg .b64 %%rd<10>;
	.shared .align 16 .b8 sm[1024];
	ld.param.u64 %%rd1, [pin];
	ld.param.u64 %%rd2, [pout];
	mov.u32 %%r1, %%tid.x;
	mul.wide.u32 %%rd3, %%r1, 32;
	add.s64 %%rd4, %%rd1, %%rd3;
	mov.u64 %%rd5, sm;
	add.s64 %%rd6, %%rd5, %%rd3;
	add.s64 %%rd7, %%rd2, %%rd3;
	cp.async.cg.shared.global [%%rd6], [%%rd4], 16;
	cp.async.commit_group;
	cp.async.ca.shared.global [%%rd6+16], [%%rd4+16], 8;
	cp.async.commit_group;
	cp.async.ca.shared.global [%%rd6+24], [%%rd4+24], 4, 0;
	mov.u32 %%r10, 2;
	cp.async.ca.shared.global [%%rd6+28], [%%rd4+28], 4, %%r10;
	cp.async.commit_group;
	cp.async.wait_group 2;
	ld.shared.v4.u32 {%%r2,%%r3,%%r4,%%r5}, [%%rd6];
	st.global.v4.u32 [%%rd7], {%%r2,%%r3,%%r4,%%r5};
	%s
	cp.async.wait_group 0;
	ld.shared.v4.u32 {%%r2,%%r3,%%r4,%%r5}, [%%rd6+16];
	st.global.v4.u32 [%%rd7+16], {%%r2,%%r3,%%r4,%%r5};
	ret;
}
`, name, extra)
}

// cpAsyncNeighbourKernel: thread t copies in[16t:16t+16] to shared row t,
// runs wait, passes a barrier and stores shared row (t+1) mod 32 to
// out[16t:].
func cpAsyncNeighbourKernel(name, wait string) string {
	return fmt.Sprintf(`
.visible .entry %s(.param .u64 pin, .param .u64 pout)
{
	.reg .b32 %%r<12>;
	.reg .b64 %%rd<12>;
	.shared .align 16 .b8 sm[512];
	ld.param.u64 %%rd1, [pin];
	ld.param.u64 %%rd2, [pout];
	mov.u32 %%r1, %%tid.x;
	mul.wide.u32 %%rd3, %%r1, 16;
	add.s64 %%rd4, %%rd1, %%rd3;
	mov.u64 %%rd5, sm;
	add.s64 %%rd6, %%rd5, %%rd3;
	cp.async.cg.shared.global [%%rd6], [%%rd4], 16;
	%s
	bar.sync 0;
	add.s32 %%r2, %%r1, 1;
	and.b32 %%r2, %%r2, 31;
	mul.wide.u32 %%rd7, %%r2, 16;
	add.s64 %%rd8, %%rd5, %%rd7;
	ld.shared.v4.u32 {%%r4,%%r5,%%r6,%%r7}, [%%rd8];
	add.s64 %%rd9, %%rd2, %%rd3;
	st.global.v4.u32 [%%rd9], {%%r4,%%r5,%%r6,%%r7};
	ret;
}
`, name, wait)
}

// TestCpAsyncGroups checks cp.async's groups and waits: a copy lands in
// shared memory when a wait_group N of its thread leaves at most N newer
// groups pending (wait_all: none, uncommitted copies included), zero-fill
// past src-size, and a fault for any access to bytes still in flight.
func TestCpAsyncGroups(t *testing.T) {
	mod := loadLayoutModule(t,
		cpAsyncGroupsKernel("groups_ok", ""),
		cpAsyncGroupsKernel("groups_wait1_ok", "cp.async.wait_group 1;\n\tld.shared.u32 %r6, [%rd6+16];"),
		cpAsyncGroupsKernel("groups_early_read", "ld.shared.u32 %r6, [%rd6+16];"),
		cpAsyncGroupsKernel("groups_early_write", "st.shared.u32 [%rd6+20], %r1;"),
		cpAsyncGroupsKernel("groups_wait1_early_read", "cp.async.wait_group 1;\n\tld.shared.u32 %r6, [%rd6+28];"),
		cpAsyncNeighbourKernel("neighbour_wait0", "cp.async.commit_group;\n\tcp.async.wait_group 0;"),
		cpAsyncNeighbourKernel("neighbour_wait_all", "cp.async.wait_all;"),
		cpAsyncNeighbourKernel("neighbour_no_wait", "cp.async.commit_group;"),
		cpAsyncNeighbourKernel("neighbour_wait1", "cp.async.commit_group;\n\tcp.async.wait_group 1;"),
	)
	src := make([]uint32, 32*8)
	for i := range src {
		src[i] = 0x01010101 * uint32(i%251+1)
	}
	for _, c := range []struct {
		kernel string
		fault  string // "" for a clean run
	}{
		{"groups_ok", ""},
		{"groups_wait1_ok", ""},
		{"groups_early_read", "read of shared address"},
		{"groups_early_write", "write of shared address"},
		{"groups_wait1_early_read", "read of shared address"},
		{"neighbour_wait0", ""},
		{"neighbour_wait_all", ""},
		{"neighbour_no_wait", "while a cp.async to it is in flight"},
		{"neighbour_wait1", "while a cp.async to it is in flight"},
	} {
		t.Run("kernel="+c.kernel, func(t *testing.T) {
			m := New(checked())
			pin := putU32(m, t, src)
			pout := putU32(m, t, make([]uint32, 32*8))
			_, err := m.Launch(kernel(t, mod, c.kernel), [3]int{1, 1, 1}, [3]int{32, 1, 1}, 0, []uint64{pin, pout})
			if c.fault != "" {
				if err == nil || !strings.Contains(err.Error(), c.fault) {
					t.Fatalf("error %v, want a fault containing %q", err, c.fault)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := getI32(m, t, pout, 32*8)
			for th := 0; th < 32; th++ {
				var want []uint32
				if strings.HasPrefix(c.kernel, "groups") {
					want = append([]uint32(nil), src[8*th:8*th+8]...)
					want[6] = 0                    // src-size 0
					want[7] = src[8*th+7] & 0xffff // src-size 2 of 4
				} else {
					n := (th + 1) % 32
					want = src[4*n : 4*n+4]
				}
				for i, w := range want {
					if g := uint32(got[len(want)*th+i]); g != w {
						t.Errorf("thread %d word %d = %#08x, want %#08x", th, i, g, w)
					}
				}
			}
		})
	}
}

// TestLdmatrixBankPhases checks the bank-conflict count of ldmatrix per
// phase (one 8×8 matrix, lanes 8i…8i+7, per phase): lane l loads row
// offs[l] of a 512-byte shared array whose 32 rows its lanes first wrote
// (16 bytes each, conflict-free).
func TestLdmatrixBankPhases(t *testing.T) {
	mod := loadLayoutModule(t, `
.visible .entry ldm_offs(.param .u64 poffs, .param .u64 pout)
{
	.reg .b32 %r<12>;
	.reg .b64 %rd<12>;
	.shared .align 16 .b8 sm[512];
	ld.param.u64 %rd1, [poffs];
	ld.param.u64 %rd2, [pout];
	mov.u32 %r1, %tid.x;
	mov.u64 %rd5, sm;
	mul.wide.u32 %rd3, %r1, 16;
	add.s64 %rd6, %rd5, %rd3;
	st.shared.v4.u32 [%rd6], {%r1,%r1,%r1,%r1};
	bar.sync 0;
	mul.wide.u32 %rd4, %r1, 4;
	add.s64 %rd7, %rd1, %rd4;
	ld.global.u32 %r2, [%rd7];
	cvt.u64.u32 %rd8, %r2;
	add.s64 %rd9, %rd5, %rd8;
	ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%r3,%r4,%r5,%r6}, [%rd9];
	add.s64 %rd10, %rd2, %rd3;
	st.global.v4.u32 [%rd10], {%r3,%r4,%r5,%r6};
	ret;
}
`)
	linear := make([]uint32, 32)
	// Each matrix's 8 rows fall into 4 bank groups of 16 bytes, twice each
	// (2-way conflicts in every phase), while over the warp every group is
	// used 4 times, as often as 32 rows need: a whole-warp count sees no
	// conflict, the per-phase count 4 extra wavefronts.
	phased := make([]uint32, 32)
	for l := range 32 {
		linear[l] = uint32(16 * l)
		i, r := l/8, l%8
		phased[l] = uint32(16*(r%4+4*(i/2)) + 128*(r/4+2*(i%2)))
	}
	for _, c := range []struct {
		name      string
		offs      []uint32
		conflicts int64
	}{{"linear", linear, 0}, {"two-way-per-phase", phased, 4}} {
		t.Run("offsets="+c.name, func(t *testing.T) {
			m := New(checked())
			po, pout := putU32(m, t, c.offs), putU32(m, t, make([]uint32, 128))
			st, err := m.Launch(kernel(t, mod, "ldm_offs"), [3]int{1, 1, 1}, [3]int{32, 1, 1}, 0, []uint64{po, pout})
			if err != nil {
				t.Fatal(err)
			}
			if st.SharedBankConflicts != c.conflicts {
				t.Errorf("SharedBankConflicts = %d, want %d (%d shared requests)", st.SharedBankConflicts, c.conflicts, st.SharedRequests)
			}
		})
	}
}
