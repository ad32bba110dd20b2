package ptxsim

import (
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
)

// harness wraps an instruction sequence in a kernel k(in, out) whose
// registers %rd30 and %rd31 hold the global addresses of in and out.
func harness(body string) string {
	return `.version 7.0
.target sm_70
.address_size 64

.visible .entry k(
	.param .u64 k_param_0,
	.param .u64 k_param_1
)
{
	.reg .pred 	%p<8>;
	.reg .b16 	%h<10>;
	.reg .b32 	%r<32>;
	.reg .f32 	%f<32>;
	.reg .b64 	%rd<32>;
	.reg .f64 	%fd<32>;

	ld.param.u64 	%rd30, [k_param_0];
	ld.param.u64 	%rd31, [k_param_1];
` + body + `
	ret;
}
`
}

// regClass describes a register class of the harness: its name prefix, the
// type used to load and store it, and its size.
var regClass = map[string]struct {
	prefix, typ string
}{
	"r": {"%r", "b32"}, "rd": {"%rd", "b64"}, "f": {"%f", "f32"}, "fd": {"%fd", "f64"}, "h": {"%h", "b16"},
}

// opCase is one instruction applied to inputs loaded from memory: dst and
// src name register classes ("r", "rd", "f", "fd", "h", "p").
type opCase struct {
	op   string
	dst  string
	src  []string
	args []uint64
	want uint64
}

// body generates the PTX for c: load every argument, apply op, store the result.
func (c opCase) body() string {
	var b strings.Builder
	var ops []string
	for i, s := range c.src {
		if s == "p" {
			fmt.Fprintf(&b, "\tld.global.u32 %%r%d, [%%rd30+%d];\n\tsetp.ne.s32 %%p%d, %%r%d, 0;\n", 10+i, 8*i, 1+i, 10+i)
			ops = append(ops, fmt.Sprintf("%%p%d", 1+i))
			continue
		}
		rc := regClass[s]
		fmt.Fprintf(&b, "\tld.global.%s %s%d, [%%rd30+%d];\n", rc.typ, rc.prefix, 1+i, 8*i)
		ops = append(ops, fmt.Sprintf("%s%d", rc.prefix, 1+i))
	}
	if c.dst == "p" {
		fmt.Fprintf(&b, "\t%s %%p7, %s;\n\tselp.u32 %%r20, 1, 0, %%p7;\n\tst.global.u32 [%%rd31], %%r20;\n", c.op, strings.Join(ops, ", "))
		return b.String()
	}
	rc := regClass[c.dst]
	fmt.Fprintf(&b, "\t%s %s9, %s;\n\tst.global.%s [%%rd31], %s9;\n", c.op, rc.prefix, strings.Join(ops, ", "), rc.typ, rc.prefix)
	return b.String()
}

func dstBytes(dst string) int {
	switch dst {
	case "rd", "fd":
		return 8
	case "h":
		return 2
	}
	return 4
}

// runOne runs a single-thread harness kernel and returns the first 8 bytes of out.
func runOne(t *testing.T, body string, args []uint64, opts Options) (uint64, error) {
	t.Helper()
	mod, err := Load(harness(body))
	if err != nil {
		return 0, err
	}
	k, err := mod.Kernel("k")
	if err != nil {
		t.Fatal(err)
	}
	m := New(opts)
	in, _ := m.Alloc(int64(8 * max(len(args), 1)))
	out, _ := m.Alloc(8)
	buf := make([]byte, 8*max(len(args), 1))
	for i, a := range args {
		le.PutUint64(buf[8*i:], a)
	}
	if err := m.Write(in, buf); err != nil {
		t.Fatal(err)
	}
	// poison the output so that an unwritten result cannot pass
	if err := m.Write(out, []byte{0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Launch(k, [3]int{1, 1, 1}, [3]int{1, 1, 1}, 0, []uint64{in, out}); err != nil {
		return 0, err
	}
	ob := make([]byte, 8)
	if err := m.Read(out, ob); err != nil {
		t.Fatal(err)
	}
	return le.Uint64(ob), nil
}

func runCases(t *testing.T, cases []opCase) {
	t.Helper()
	for _, c := range cases {
		name := fmt.Sprintf("op=%s,args=%#x", c.op, c.args)
		t.Run(name, func(t *testing.T) {
			got, err := runOne(t, c.body(), c.args, Options{})
			if err != nil {
				t.Fatal(err)
			}
			got &= bitsMask(8 * dstBytes(c.dst))
			if got != c.want {
				t.Errorf("%s%#x = %#x, want %#x", c.op, c.args, got, c.want)
			}
		})
	}
}

func u32(v int64) uint64    { return uint64(v) & 0xffffffff }
func fb(f float32) uint64   { return uint64(math.Float32bits(f)) }
func db(f float64) uint64   { return math.Float64bits(f) }
func ff(bits uint32) uint64 { return uint64(bits) }

var rr, rrr = []string{"r", "r"}, []string{"r", "r", "r"}

func TestIntegerOps(t *testing.T) {
	runCases(t, []opCase{
		{"add.s32", "r", rr, []uint64{0x7fffffff, 1}, 0x80000000},
		{"add.u32", "r", rr, []uint64{0xffffffff, 2}, 1},
		{"sub.s32", "r", rr, []uint64{0, 1}, 0xffffffff},
		{"add.s64", "rd", []string{"rd", "rd"}, []uint64{math.MaxInt64, 1}, 1 << 63},
		{"mul.lo.s32", "r", rr, []uint64{0x10000, 0x10001}, 0x10000},
		{"mul.lo.u64", "rd", []string{"rd", "rd"}, []uint64{1 << 40, 1<<30 + 3}, 3 << 40},
		{"mul.hi.s32", "r", rr, []uint64{u32(math.MinInt32), 2}, 0xffffffff},
		{"mul.hi.u32", "r", rr, []uint64{0xffffffff, 0xffffffff}, 0xfffffffe},
		{"mul.hi.u64", "rd", []string{"rd", "rd"}, []uint64{math.MaxUint64, math.MaxUint64}, math.MaxUint64 - 1},
		{"mul.hi.s64", "rd", []string{"rd", "rd"}, []uint64{uint64(1 << 62), uint64(0xfffffffffffffffc)}, math.MaxUint64},
		{"mul.wide.s32", "rd", rr, []uint64{u32(-3), 5}, uint64(0xfffffffffffffff1)},
		{"mul.wide.u32", "rd", rr, []uint64{0xffffffff, 0xffffffff}, 0xfffffffe00000001},
		{"mad.lo.s32", "r", rrr, []uint64{u32(-2), 3, 10}, 4},
		{"mad.wide.s32", "rd", []string{"r", "r", "rd"}, []uint64{u32(-2), 3, 10}, 4},
		{"mad.hi.u32", "r", rrr, []uint64{0x80000000, 4, 1}, 3},
		{"div.s32", "r", rr, []uint64{u32(-7), 2}, u32(-3)},
		{"rem.s32", "r", rr, []uint64{u32(-7), 2}, u32(-1)},
		{"div.u32", "r", rr, []uint64{0xfffffffe, 2}, 0x7fffffff},
		{"rem.u64", "rd", []string{"rd", "rd"}, []uint64{1<<63 + 5, 10}, (1<<63 + 5) % 10},
		{"div.s64", "rd", []string{"rd", "rd"}, []uint64{uint64(math.MaxUint64 - 99), 10}, uint64(math.MaxUint64 - 9)},
		{"div.s32", "r", rr, []uint64{u32(math.MinInt32), u32(-1)}, 0x80000000},
		{"shl.b32", "r", rr, []uint64{0x80000001, 1}, 2},
		{"shl.b32", "r", rr, []uint64{1, 33}, 0},
		{"shr.u32", "r", rr, []uint64{0x80000000, 31}, 1},
		{"shr.s32", "r", rr, []uint64{u32(-8), 1}, u32(-4)},
		{"shr.s32", "r", rr, []uint64{u32(-8), 40}, 0xffffffff},
		{"shr.u64", "rd", []string{"rd", "r"}, []uint64{1 << 63, 63}, 1},
		{"shr.s64", "rd", []string{"rd", "r"}, []uint64{1 << 63, 62}, 0xfffffffffffffffe},
		{"min.s32", "r", rr, []uint64{u32(-1), 1}, 0xffffffff},
		{"min.u32", "r", rr, []uint64{0xffffffff, 1}, 1},
		{"max.s32", "r", rr, []uint64{u32(-1), 1}, 1},
		{"max.u64", "rd", []string{"rd", "rd"}, []uint64{1 << 63, 1}, 1 << 63},
		{"abs.s32", "r", []string{"r"}, []uint64{u32(-5)}, 5},
		{"abs.s32", "r", []string{"r"}, []uint64{u32(math.MinInt32)}, 0x80000000},
		{"neg.s32", "r", []string{"r"}, []uint64{5}, u32(-5)},
		{"and.b32", "r", rr, []uint64{0xff00ff00, 0x0ff00ff0}, 0x0f000f00},
		{"or.b32", "r", rr, []uint64{0xff00ff00, 0x0ff00ff0}, 0xfff0fff0},
		{"xor.b32", "r", rr, []uint64{0xff00ff00, 0x0ff00ff0}, 0xf0f0f0f0},
		{"not.b32", "r", []string{"r"}, []uint64{0xff00ff00}, 0x00ff00ff},
		{"cnot.b32", "r", []string{"r"}, []uint64{7}, 0},
		{"popc.b32", "r", []string{"r"}, []uint64{0xf0f0f0f1}, 17},
		{"popc.b64", "r", []string{"rd"}, []uint64{math.MaxUint64}, 64},
		{"clz.b32", "r", []string{"r"}, []uint64{0x00010000}, 15},
		{"clz.b32", "r", []string{"r"}, []uint64{0}, 32},
		{"clz.b64", "r", []string{"rd"}, []uint64{1}, 63},
		{"brev.b32", "r", []string{"r"}, []uint64{0x00000001}, 0x80000000},
		{"bfind.u32", "r", []string{"r"}, []uint64{0x00010000}, 16},
		{"bfind.u32", "r", []string{"r"}, []uint64{0}, 0xffffffff},
		{"bfe.u32", "r", rrr, []uint64{0xabcd1234, 8, 8}, 0x12},
		{"bfe.s32", "r", rrr, []uint64{0x0000f000, 12, 4}, 0xffffffff},
		{"bfi.b32", "r", []string{"r", "r", "r", "r"}, []uint64{0xf, 0xffff0000, 4, 8}, 0xffff00f0},
		{"prmt.b32", "r", rrr, []uint64{0x33221100, 0x77665544, 0x7531}, 0x77553311},
		{"prmt.b32", "r", rrr, []uint64{0x00007f80, 0, 0x9810}, 0x00ff7f80},
		{"prmt.b32.f4e", "r", rrr, []uint64{0x33221100, 0x77665544, 1}, 0x44332211},
		{"prmt.b32.b4e", "r", rrr, []uint64{0x33221100, 0x77665544, 1}, 0x66770011},
		{"prmt.b32.rc8", "r", rrr, []uint64{0x33221100, 0x77665544, 2}, 0x22222222},
		{"prmt.b32.ecl", "r", rrr, []uint64{0x33221100, 0x77665544, 1}, 0x33221111},
		{"prmt.b32.ecr", "r", rrr, []uint64{0x33221100, 0x77665544, 2}, 0x22221100},
		{"prmt.b32.rc16", "r", rrr, []uint64{0x33221100, 0x77665544, 1}, 0x33223322},
		{"shf.l.wrap.b32", "r", rrr, []uint64{0x80000000, 0x1, 4}, 0x18},
		{"shf.r.clamp.b32", "r", rrr, []uint64{0x12345678, 0x9abcdef0, 40}, 0x9abcdef0},
		{"add.sat.s32", "r", rr, []uint64{0x7fffffff, 5}, 0x7fffffff},
		{"sub.sat.s32", "r", rr, []uint64{0x80000000, 5}, 0x80000000},
		{"add.s16", "h", []string{"h", "h"}, []uint64{0x7fff, 1}, 0x8000},
		{"mul.wide.s16", "r", []string{"h", "h"}, []uint64{0xffff, 0x7fff}, u32(-0x7fff)},
	})
}

func TestSetpSelpPred(t *testing.T) {
	nan := ff(0x7fc00000)
	one := fb(1)
	runCases(t, []opCase{
		{"setp.lt.s32", "p", rr, []uint64{u32(-1), 0}, 1},
		{"setp.lo.u32", "p", rr, []uint64{0xffffffff, 0}, 0},
		{"setp.hs.u32", "p", rr, []uint64{0xffffffff, 0}, 1},
		{"setp.ge.s64", "p", []string{"rd", "rd"}, []uint64{1 << 63, 0}, 0},
		{"setp.ls.u64", "p", []string{"rd", "rd"}, []uint64{1 << 63, 1 << 63}, 1},
		{"setp.lt.f32", "p", []string{"f", "f"}, []uint64{nan, one}, 0},
		{"setp.ltu.f32", "p", []string{"f", "f"}, []uint64{nan, one}, 1},
		{"setp.ne.f32", "p", []string{"f", "f"}, []uint64{nan, one}, 0},
		{"setp.neu.f32", "p", []string{"f", "f"}, []uint64{nan, one}, 1},
		{"setp.eq.f32", "p", []string{"f", "f"}, []uint64{fb(0), ff(0x80000000)}, 1},
		{"setp.num.f32", "p", []string{"f", "f"}, []uint64{one, nan}, 0},
		{"setp.nan.f32", "p", []string{"f", "f"}, []uint64{one, nan}, 1},
		{"setp.geu.f64", "p", []string{"fd", "fd"}, []uint64{db(1), db(math.NaN())}, 1},
		{"setp.gt.f64", "p", []string{"fd", "fd"}, []uint64{db(2), db(1)}, 1},
		{"setp.gt.ftz.f32", "p", []string{"f", "f"}, []uint64{ff(0x00000001), fb(0)}, 0},
		{"setp.gt.f32", "p", []string{"f", "f"}, []uint64{ff(0x00000001), fb(0)}, 1},
		{"and.pred", "p", []string{"p", "p"}, []uint64{1, 0}, 0},
		{"or.pred", "p", []string{"p", "p"}, []uint64{1, 0}, 1},
		{"xor.pred", "p", []string{"p", "p"}, []uint64{1, 1}, 0},
		{"not.pred", "p", []string{"p"}, []uint64{0}, 1},
		{"selp.b32", "r", []string{"r", "r", "p"}, []uint64{7, 9, 1}, 7},
		{"selp.b32", "r", []string{"r", "r", "p"}, []uint64{7, 9, 0}, 9},
		{"selp.f64", "fd", []string{"fd", "fd", "p"}, []uint64{db(1), db(2), 0}, db(2)},
		{"slct.s32.s32", "r", rrr, []uint64{7, 9, u32(-1)}, 9},
		{"slct.f32.f32", "f", []string{"f", "f", "f"}, []uint64{fb(1), fb(2), ff(0x80000000)}, fb(1)},
		{"set.lt.u32.s32", "r", rr, []uint64{u32(-1), 0}, 0xffffffff},
		{"set.gt.f32.f32", "f", []string{"f", "f"}, []uint64{fb(2), fb(1)}, fb(1)},
	})
}

func TestFloatOps(t *testing.T) {
	nan := ff(0x7fc00000)
	sub := ff(0x00000010) // a float32 subnormal
	ff2 := []string{"f", "f"}
	ff3 := []string{"f", "f", "f"}
	third := float32(1) / 3
	p1, p2 := 0.1, 0.2 // variables: Go constant arithmetic would be exact
	cases := []opCase{
		{"add.f32", "f", ff2, []uint64{fb(0.1), fb(0.2)}, fb(float32(0.1) + float32(0.2))},
		{"add.rn.f32", "f", ff2, []uint64{fb(1), ff(0x33800000)}, fb(1)},
		{"add.rz.f32", "f", ff2, []uint64{fb(1), ff(0x30800000)}, fb(1)},
		{"add.rp.f32", "f", ff2, []uint64{fb(1), ff(0x30800000)}, ff(0x3f800001)},
		{"add.rm.f32", "f", ff2, []uint64{fb(-1), ff(0xb0800000)}, ff(0xbf800001)},
		{"add.rm.f32", "f", ff2, []uint64{fb(1), ff(0xb0800000)}, ff(0x3f7fffff)},
		{"sub.f32", "f", ff2, []uint64{fb(1), fb(1)}, fb(0)},
		{"mul.f32", "f", ff2, []uint64{fb(3), fb(third)}, fb(3 * third)},
		{"mul.rz.f32", "f", ff2, []uint64{fb(0.1), fb(3)}, ff(0x3e999999)},
		{"mul.rn.f32", "f", ff2, []uint64{fb(0.1), fb(3)}, ff(0x3e99999a)},
		{"mul.rp.f32", "f", ff2, []uint64{fb(math.MaxFloat32), fb(2)}, fb(float32(math.Inf(1)))},
		{"mul.rz.f32", "f", ff2, []uint64{fb(math.MaxFloat32), fb(2)}, fb(math.MaxFloat32)},
		{"add.ftz.f32", "f", ff2, []uint64{sub, fb(0)}, 0},
		{"add.ftz.f32", "f", ff2, []uint64{ff(0x80000010), ff(0x80000000)}, 0x80000000},
		{"add.f32", "f", ff2, []uint64{sub, fb(0)}, sub},
		{"mul.ftz.f32", "f", ff2, []uint64{ff(0x00800000), fb(0.5)}, 0},
		{"mul.f32", "f", ff2, []uint64{ff(0x00800000), fb(0.5)}, ff(0x00400000)},
		{"fma.rn.f32", "f", ff3, []uint64{fb(2), fb(3), fb(1)}, fb(7)},
		{"fma.rn.ftz.f32", "f", ff3, []uint64{sub, fb(1), fb(0)}, 0},
		{"fma.rz.f32", "f", ff3, []uint64{fb(0.1), fb(3), fb(0)}, ff(0x3e999999)},
		{"mad.rn.f32", "f", ff3, []uint64{fb(2), fb(3), fb(1)}, fb(7)},
		{"fma.rn.sat.f32", "f", ff3, []uint64{fb(2), fb(3), fb(1)}, fb(1)},
		{"add.sat.f32", "f", ff2, []uint64{nan, fb(1)}, 0},
		{"add.sat.f32", "f", ff2, []uint64{fb(-3), fb(1)}, 0},
		{"div.rn.f32", "f", ff2, []uint64{fb(1), fb(3)}, fb(third)},
		{"div.rz.f32", "f", ff2, []uint64{fb(2), fb(3)}, ff(0x3f2aaaaa)},
		{"div.rp.f32", "f", ff2, []uint64{fb(2), fb(3)}, ff(0x3f2aaaab)},
		{"div.rm.f32", "f", ff2, []uint64{fb(-2), fb(3)}, ff(0xbf2aaaab)},
		{"div.full.f32", "f", ff2, []uint64{fb(6), fb(3)}, fb(2)},
		{"div.approx.f32", "f", ff2, []uint64{fb(6), fb(3)}, fb(2)},
		{"rcp.rn.f32", "f", []string{"f"}, []uint64{fb(4)}, fb(0.25)},
		{"rcp.rz.f32", "f", []string{"f"}, []uint64{fb(3)}, ff(0x3eaaaaaa)},
		{"sqrt.rn.f32", "f", []string{"f"}, []uint64{fb(2)}, fb(float32(math.Sqrt(2)))},
		{"sqrt.rp.f32", "f", []string{"f"}, []uint64{fb(2)}, ff(math.Float32bits(float32(math.Sqrt(2))) + 1)},
		{"min.f32", "f", ff2, []uint64{nan, fb(1)}, fb(1)},
		{"min.f32", "f", ff2, []uint64{fb(1), nan}, fb(1)},
		{"max.f32", "f", ff2, []uint64{nan, fb(-1)}, fb(-1)},
		{"min.f32", "f", ff2, []uint64{nan, nan}, canonicalNaN32},
		{"min.f32", "f", ff2, []uint64{fb(0), ff(0x80000000)}, 0x80000000},
		{"max.f32", "f", ff2, []uint64{ff(0x80000000), fb(0)}, 0},
		{"max.NaN.f32", "f", ff2, []uint64{nan, fb(1)}, canonicalNaN32},
		{"min.ftz.f32", "f", ff2, []uint64{ff(0x80000010), fb(1)}, 0x80000000},
		{"min.f64", "fd", []string{"fd", "fd"}, []uint64{db(math.NaN()), db(2)}, db(2)},
		{"max.f64", "fd", []string{"fd", "fd"}, []uint64{db(3), db(2)}, db(3)},
		{"abs.f32", "f", []string{"f"}, []uint64{fb(-2)}, fb(2)},
		{"neg.f32", "f", []string{"f"}, []uint64{fb(0)}, 0x80000000},
		{"abs.ftz.f32", "f", []string{"f"}, []uint64{ff(0x80000010)}, 0},
		{"copysign.f32", "f", ff2, []uint64{fb(-1), fb(2)}, fb(-2)},
		{"testp.subnormal.f32", "p", []string{"f"}, []uint64{sub}, 1},
		{"testp.finite.f32", "p", []string{"f"}, []uint64{fb(float32(math.Inf(1)))}, 0},
		{"testp.notanumber.f64", "p", []string{"fd"}, []uint64{db(math.NaN())}, 1},
		{"add.f64", "fd", []string{"fd", "fd"}, []uint64{db(0.1), db(0.2)}, db(p1 + p2)},
		{"mul.f64", "fd", []string{"fd", "fd"}, []uint64{db(0.1), db(3)}, db(p1 * 3)},
		{"fma.rn.f64", "fd", []string{"fd", "fd", "fd"}, []uint64{db(0.1), db(10), db(-1)}, db(math.FMA(0.1, 10, -1))},
		{"div.rn.f64", "fd", []string{"fd", "fd"}, []uint64{db(1), db(3)}, db(1.0 / 3)},
		{"div.rz.f64", "fd", []string{"fd", "fd"}, []uint64{db(2), db(3)}, 0x3fe5555555555555},
		{"div.rp.f64", "fd", []string{"fd", "fd"}, []uint64{db(2), db(3)}, 0x3fe5555555555556},
		{"sqrt.rn.f64", "fd", []string{"fd"}, []uint64{db(2)}, db(math.Sqrt2)},
		{"rcp.rn.f64", "fd", []string{"fd"}, []uint64{db(4)}, db(0.25)},
		{"neg.f64", "fd", []string{"fd"}, []uint64{db(1)}, db(-1)},
		{"add.rp.f64", "fd", []string{"fd", "fd"}, []uint64{db(1), db(0x1p-60)}, db(1 + 0x1p-52)},
	}
	runCases(t, cases)
	// sqrt of a negative number is a NaN of any payload: check the class only.
	t.Run("op=sqrt.rn.f32,arg=-1", func(t *testing.T) {
		got, err := runOne(t, opCase{"sqrt.rn.f32", "f", []string{"f"}, nil, 0}.body(), []uint64{fb(-1)}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if f := math.Float32frombits(uint32(got)); f == f {
			t.Errorf("sqrt.rn.f32(-1) = %v, want NaN", f)
		}
	})
}

// TestFmaDoubleRounding checks that fma.rn.f32 rounds once. For
// a = 2⁻²⁴(1+2⁻¹⁸), b = 1−2⁻¹⁸, c = 1+2⁻²³ the exact a·b+c is
// 1 + 2⁻²³ + 2⁻²⁴ − 2⁻⁶⁰, just below a float32 midpoint: the correct result
// is 1+2⁻²³, but rounding to float64 first lands on the midpoint, and the
// tie then goes to the even neighbour 1+2⁻²².
func TestFmaDoubleRounding(t *testing.T) {
	a := float32(math.Ldexp(1+math.Ldexp(1, -18), -24))
	b := float32(1 - math.Ldexp(1, -18))
	c := float32(1 + math.Ldexp(1, -23))
	want := math.Float32bits(float32(1 + math.Ldexp(1, -23)))
	naive := math.Float32bits(float32(math.FMA(float64(a), float64(b), float64(c))))
	if naive == want {
		t.Fatalf("test inputs do not exercise double rounding: naive = %#x", naive)
	}
	if got := math.Float32bits(fma32(a, b, c)); got != want {
		t.Errorf("fma32(%g, %g, %g) = %#x, want %#x", a, b, c, got, want)
	}
	got, err := runOne(t, opCase{"fma.rn.f32", "f", []string{"f", "f", "f"}, nil, 0}.body(),
		[]uint64{fb(a), fb(b), fb(c)}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if uint32(got) != want {
		t.Errorf("fma.rn.f32(%g, %g, %g) = %#x, want %#x", a, b, c, got, want)
	}
	// The mirrored case above a midpoint, negative: −(1+2⁻²⁴+2⁻⁶⁰)-like
	// values via negated inputs must round the same way in magnitude.
	if got := math.Float32bits(fma32(-a, b, -c)); got != want|1<<31 {
		t.Errorf("fma32(%g, %g, %g) = %#x, want %#x", -a, b, -c, got, want|1<<31)
	}
	// Random inputs built around float32 midpoints, against exact arithmetic.
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 20000; i++ {
		x := float32(math.Ldexp(1+float64(rng.IntN(1<<20))*0x1p-20, -rng.IntN(40)))
		y := float32(1 + float64(rng.IntN(1<<23))*0x1p-23)
		z := float32(math.Ldexp(float64(rng.IntN(1<<24)), -23+rng.IntN(4)))
		if rng.IntN(2) == 0 {
			z = -z
		}
		ex := new(big.Float).SetPrec(600).SetFloat64(float64(x))
		ex.Mul(ex, new(big.Float).SetFloat64(float64(y)))
		ex.Add(ex, new(big.Float).SetFloat64(float64(z)))
		w, _ := ex.Float32()
		if got := fma32(x, y, z); math.Float32bits(got) != math.Float32bits(w) {
			t.Fatalf("fma32(%g, %g, %g) = %g, want %g", x, y, z, got, w)
		}
	}
}

func TestCvt(t *testing.T) {
	nan := ff(0x7fc00000)
	mid := db(1 + 0x1p-24)
	big19 := float32(1.5e19)
	runCases(t, []opCase{
		{"cvt.rn.f32.f64", "f", []string{"fd"}, []uint64{mid}, fb(1)},
		{"cvt.rn.f32.f64", "f", []string{"fd"}, []uint64{db(1 + 0x1p-23 + 0x1p-24)}, ff(0x3f800002)},
		{"cvt.rz.f32.f64", "f", []string{"fd"}, []uint64{db(1 + 0x1p-23 + 0x1p-30)}, ff(0x3f800001)},
		{"cvt.rp.f32.f64", "f", []string{"fd"}, []uint64{db(1 + 0x1p-30)}, ff(0x3f800001)},
		{"cvt.rm.f32.f64", "f", []string{"fd"}, []uint64{db(-1 - 0x1p-30)}, ff(0xbf800001)},
		{"cvt.rn.f32.f64", "f", []string{"fd"}, []uint64{db(1e300)}, fb(float32(math.Inf(1)))},
		{"cvt.rz.f32.f64", "f", []string{"fd"}, []uint64{db(1e300)}, fb(math.MaxFloat32)},
		{"cvt.rn.f32.f64", "f", []string{"fd"}, []uint64{db(0x1p-149 * 1.5)}, ff(0x00000002)},
		{"cvt.rn.ftz.f32.f64", "f", []string{"fd"}, []uint64{db(-0x1p-140)}, 0x80000000},
		{"cvt.f64.f32", "fd", []string{"f"}, []uint64{fb(0.1)}, db(float64(float32(0.1)))},
		{"cvt.rni.s32.f32", "r", []string{"f"}, []uint64{fb(2.5)}, 2},
		{"cvt.rni.s32.f32", "r", []string{"f"}, []uint64{fb(3.5)}, 4},
		{"cvt.rni.s32.f32", "r", []string{"f"}, []uint64{fb(-2.5)}, u32(-2)},
		{"cvt.rzi.s32.f32", "r", []string{"f"}, []uint64{fb(-2.7)}, u32(-2)},
		{"cvt.rmi.s32.f32", "r", []string{"f"}, []uint64{fb(-2.1)}, u32(-3)},
		{"cvt.rpi.s32.f32", "r", []string{"f"}, []uint64{fb(2.1)}, 3},
		{"cvt.rzi.s32.f32", "r", []string{"f"}, []uint64{nan}, 0},
		{"cvt.rzi.s32.f32", "r", []string{"f"}, []uint64{fb(3e9)}, 0x7fffffff},
		{"cvt.rzi.s32.f32", "r", []string{"f"}, []uint64{fb(-3e9)}, 0x80000000},
		{"cvt.rzi.u32.f32", "r", []string{"f"}, []uint64{fb(-5)}, 0},
		{"cvt.rzi.u32.f32", "r", []string{"f"}, []uint64{fb(5e9)}, 0xffffffff},
		{"cvt.rzi.s64.f64", "rd", []string{"fd"}, []uint64{db(-1e30)}, 1 << 63},
		{"cvt.rzi.u64.f32", "rd", []string{"f"}, []uint64{fb(big19)}, uint64(big19)},
		{"cvt.rn.f32.s32", "f", []string{"r"}, []uint64{16777217}, fb(16777216)},
		{"cvt.rn.f32.s32", "f", []string{"r"}, []uint64{16777219}, fb(16777220)},
		{"cvt.rz.f32.s32", "f", []string{"r"}, []uint64{16777219}, fb(16777218)},
		{"cvt.rp.f32.u32", "f", []string{"r"}, []uint64{16777217}, fb(16777218)},
		{"cvt.rm.f32.s32", "f", []string{"r"}, []uint64{u32(-16777217)}, fb(-16777218)},
		{"cvt.rn.f32.u32", "f", []string{"r"}, []uint64{0xffffffff}, fb(4294967296)},
		{"cvt.rn.f32.s64", "f", []string{"rd"}, []uint64{1<<62 + 1}, fb(0x1p62)},
		{"cvt.rn.f32.u64", "f", []string{"rd"}, []uint64{math.MaxUint64}, fb(0x1p64)},
		{"cvt.rn.f64.s64", "fd", []string{"rd"}, []uint64{uint64(1<<53 + 1)}, db(0x1p53)},
		{"cvt.rn.f64.u32", "fd", []string{"r"}, []uint64{0xffffffff}, db(4294967295)},
		{"cvt.rni.f32.f32", "f", []string{"f"}, []uint64{fb(2.5)}, fb(2)},
		{"cvt.rmi.f32.f32", "f", []string{"f"}, []uint64{fb(-0.5)}, fb(-1)},
		{"cvt.rzi.f32.f32", "f", []string{"f"}, []uint64{fb(-0.5)}, 0x80000000},
		{"cvt.sat.f32.f32", "f", []string{"f"}, []uint64{fb(1.5)}, fb(1)},
		{"cvt.ftz.f32.f32", "f", []string{"f"}, []uint64{ff(0x80000010)}, 0x80000000},
		{"cvt.rn.f16.f32", "h", []string{"f"}, []uint64{fb(1.0009765625)}, 0x3c01},
		{"cvt.rn.f16.f32", "h", []string{"f"}, []uint64{fb(65520)}, 0x7c00},
		{"cvt.rz.f16.f32", "h", []string{"f"}, []uint64{fb(65520)}, 0x7bff},
		{"cvt.rn.f16.f32", "h", []string{"f"}, []uint64{fb(0x1p-24)}, 0x0001},
		{"cvt.f32.f16", "f", []string{"h"}, []uint64{0xc000}, fb(-2)},
		{"cvt.f32.f16", "f", []string{"h"}, []uint64{0x0001}, fb(0x1p-24)},
		{"cvt.s64.s32", "rd", []string{"r"}, []uint64{u32(-2)}, uint64(0xfffffffffffffffe)},
		{"cvt.u64.u32", "rd", []string{"r"}, []uint64{0xfffffffe}, 0xfffffffe},
		{"cvt.u32.u64", "r", []string{"rd"}, []uint64{0x123456789}, 0x23456789},
		{"cvt.s32.s16", "r", []string{"h"}, []uint64{0x8000}, 0xffff8000},
		{"cvt.u16.u32", "h", []string{"r"}, []uint64{0x12345}, 0x2345},
		{"cvt.sat.s16.s32", "h", []string{"r"}, []uint64{u32(-100000)}, 0x8000},
		{"cvt.sat.u8.s32", "h", []string{"r"}, []uint64{300}, 255},
		{"cvt.sat.u32.s64", "r", []string{"rd"}, []uint64{uint64(0xffffffffffffffff)}, 0},
		{"cvt.sat.s32.u64", "r", []string{"rd"}, []uint64{1 << 63}, 0x7fffffff},
	})
}

func TestApproxOps(t *testing.T) {
	// PTX documents ex2.approx.f32 to 2 ulp and lg2.approx.f32 to 2⁻²²·|x|
	// absolute error; we ask for 2 ulp of the float64 reference.
	for _, c := range []struct {
		op   string
		x    float32
		want float64
	}{
		{"ex2.approx.f32", 0.5, math.Sqrt2},
		{"ex2.approx.ftz.f32", -3.25, math.Exp2(-3.25)},
		{"lg2.approx.f32", 10, math.Log2(10)},
		{"rsqrt.approx.f32", 2, 1 / math.Sqrt2},
		{"sin.approx.f32", 1, math.Sin(1)},
		{"cos.approx.f32", 1, math.Cos(1)},
		{"sqrt.approx.f32", 3, math.Sqrt(3)},
		{"rcp.approx.f32", 3, 1.0 / 3},
	} {
		t.Run("op="+c.op, func(t *testing.T) {
			got, err := runOne(t, opCase{c.op, "f", []string{"f"}, nil, 0}.body(), []uint64{fb(c.x)}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			g := float64(math.Float32frombits(uint32(got)))
			ulp := float64(math.Nextafter32(float32(c.want), float32(math.Inf(1))) - float32(c.want))
			if math.Abs(g-c.want) > 2*ulp {
				t.Errorf("%s(%g) = %g, want %g within 2 ulp", c.op, c.x, g, c.want)
			}
		})
	}
}

// TestMemoryForms covers ld/st on the param, global, shared, local and
// generic spaces, vector accesses, and cvta conversions.
func TestMemoryForms(t *testing.T) {
	body := `
	.shared .align 16 .b8 sbuf[64];
	.local .align 16 .b8 lbuf[32];
	ld.global.v4.u32 {%r1, %r2, %r3, %r4}, [%rd30];
	st.shared.v4.u32 [sbuf+16], {%r4, %r3, %r2, %r1};
	mov.u64 %rd1, sbuf;
	cvta.shared.u64 %rd2, %rd1;
	ld.v2.u32 {%r5, %r6}, [%rd2+24];
	mov.u64 %rd3, lbuf;
	cvta.local.u64 %rd4, %rd3;
	st.u32 [%rd4+4], %r5;
	ld.local.u32 %r7, [lbuf+4];
	cvta.to.local.u64 %rd5, %rd4;
	ld.local.u32 %r8, [%rd5+4];
	add.s32 %r9, %r7, %r8;
	cvta.global.u64 %rd6, %rd31;
	ld.global.s8 %r10, [%rd30+16];
	ld.global.u8 %r11, [%rd30+16];
	mov.b64 %rd7, {%r9, %r6};
	st.u64 [%rd6], %rd7;
	mov.b64 {%r12, %r13}, %rd7;
	st.global.v2.u32 [%rd31+8], {%r10, %r11};
	st.global.u32 [%rd31+16], %r13;
	ld.global.s16 %rd8, [%rd30+16];
	st.global.u64 [%rd31+24], %rd8;
`
	// the body declares variables: move them to the function scope
	decls := "\t.shared .align 16 .b8 sbuf[64];\n\t.local .align 16 .b8 lbuf[32];\n"
	src := strings.Replace(harness(strings.Replace(body, decls, "", 1)), "\tld.param.u64 \t%rd30", decls+"\tld.param.u64 \t%rd30", 1)
	mod, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := mod.Kernel("k")
	m := New(Options{CheckRaces: true, CheckUninitShared: true})
	in, _ := m.Alloc(32)
	out, _ := m.Alloc(32)
	ib := make([]byte, 32)
	for i, v := range []uint32{10, 20, 30, 40, 0xff80} {
		le.PutUint32(ib[4*i:], v)
	}
	m.Write(in, ib)
	if _, err := m.Launch(k, [3]int{1, 1, 1}, [3]int{1, 1, 1}, 0, []uint64{in, out}); err != nil {
		t.Fatal(err)
	}
	ob := make([]byte, 32)
	m.Read(out, ob)
	// shared[16..32) = 40,30,20,10: [24] = 20, [28] = 10; r9 = 20+20 = 40, r6 = 10
	want := []uint64{40 | 10<<32, 0xffffff80 | 0x80<<32, 10, 0xffffffffffffff80}
	got := []uint64{le.Uint64(ob), le.Uint64(ob[8:]), uint64(le.Uint32(ob[16:])), le.Uint64(ob[24:])}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("out word %d = %#x, want %#x", i, got[i], want[i])
		}
	}
}

func TestPointerParamAttributes(t *testing.T) {
	src := strings.Replace(harness("\tst.global.u32 [%rd31], 7;"), ".param .u64 k_param_1", ".param .u64 .ptr .global .align 4 k_param_1", 1)
	mod, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := mod.Kernel("k")
	if p := k.Params(); len(p) != 2 || p[1].Name != "k_param_1" || p[1].Type != "u64" || p[1].Size != 8 {
		t.Errorf("Params() = %v, want k_param_1 u64 8", p)
	}
}

// TestAtomicForms runs one thread through atom/red on global and shared
// memory, generic and explicit, and checks old values and memory.
func TestAtomicForms(t *testing.T) {
	body := `
	mov.u64 	%rd1, sbuf;
	st.shared.u32 	[sbuf], 5;
	st.shared.u64 	[sbuf+8], 7;
	atom.shared.add.u32 	%r1, [sbuf], 3;
	cvta.shared.u64 	%rd2, %rd1;
	atom.add.u32 	%r2, [%rd2], 10;
	atom.shared.exch.b64 	%rd3, [sbuf+8], 9;
	atom.shared.cas.b64 	%rd4, [sbuf+8], 9, 11;
	ld.shared.u64 	%rd5, [sbuf+8];
	ld.shared.u32 	%r3, [sbuf];
	atom.global.add.f64 	%fd1, [%rd30], 0d3FF8000000000000;
	atom.global.min.s32 	%r4, [%rd30+8], -3;
	atom.global.max.u32 	%r5, [%rd30+12], 4;
	atom.global.and.b32 	%r6, [%rd30+16], 12;
	atom.global.or.b32 	%r7, [%rd30+16], 1;
	atom.global.xor.b32 	%r8, [%rd30+16], 3;
	atom.global.dec.u32 	%r9, [%rd30+20], 5;
	red.global.add.u64 	[%rd30+24], 100;
	atom.global.inc.u32 	%r10, [%rd30+28], 1;
	atom.global.max.s64 	%rd6, [%rd30+32], -1;
	ld.global.f64 	%fd2, [%rd30];
	ld.global.u32 	%r11, [%rd30+8];
	ld.global.u32 	%r12, [%rd30+12];
	ld.global.u32 	%r13, [%rd30+16];
	ld.global.u32 	%r14, [%rd30+20];
	ld.global.u64 	%rd7, [%rd30+24];
	ld.global.u32 	%r15, [%rd30+28];
	ld.global.u64 	%rd8, [%rd30+32];
	st.global.u32 	[%rd31], %r1;
	st.global.u32 	[%rd31+4], %r2;
	st.global.u64 	[%rd31+8], %rd3;
	st.global.u64 	[%rd31+16], %rd4;
	st.global.u64 	[%rd31+24], %rd5;
	st.global.u32 	[%rd31+32], %r3;
	st.global.f64 	[%rd31+40], %fd1;
	st.global.f64 	[%rd31+48], %fd2;
	st.global.v4.u32 	[%rd31+64], {%r4, %r5, %r6, %r7};
	st.global.v4.u32 	[%rd31+80], {%r8, %r9, %r10, %r11};
	st.global.v4.u32 	[%rd31+96], {%r12, %r13, %r14, %r15};
	st.global.u64 	[%rd31+112], %rd7;
	st.global.u64 	[%rd31+120], %rd6;
	st.global.u64 	[%rd31+128], %rd8;
`
	src := strings.Replace(harness(body), "\tld.param.u64 \t%rd30", "\t.shared .align 8 .b8 sbuf[16];\n\tld.param.u64 \t%rd30", 1)
	mod, err := Load(src)
	if err != nil {
		t.Fatal(err)
	}
	m := New(Options{CheckRaces: true, CheckUninitShared: true})
	in, _ := m.Alloc(40)
	out, _ := m.Alloc(136)
	ib := make([]byte, 40)
	le.PutUint64(ib, math.Float64bits(2.25))
	le.PutUint32(ib[8:], 4)
	le.PutUint32(ib[12:], 9)
	le.PutUint32(ib[16:], 0xf0)
	le.PutUint32(ib[20:], 0)
	le.PutUint64(ib[24:], 1<<20)                      // a u64 whose high word [28,32) is 0
	le.PutUint64(ib[32:], uint64(0xfffffffffffffff0)) // -16
	m.Write(in, ib)
	k, _ := mod.Kernel("k")
	if _, err := m.Launch(k, [3]int{1, 1, 1}, [3]int{1, 1, 1}, 0, []uint64{in, out}); err != nil {
		t.Fatal(err)
	}
	ob := make([]byte, 136)
	m.Read(out, ob)
	u32at := func(o int) uint64 { return uint64(le.Uint32(ob[o:])) }
	u64at := func(o int) uint64 { return le.Uint64(ob[o:]) }
	// [24,32) holds 1<<20 as a u64: red adds 100, then atom.inc with
	// bound 1 takes its high word from 0 to 1.
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"atom.shared.add old", u32at(0), 5},
		{"atom.add (generic shared) old", u32at(4), 8},
		{"atom.exch.b64 old", u64at(8), 7},
		{"atom.cas.b64 old", u64at(16), 9},
		{"shared u64 after cas", u64at(24), 11},
		{"shared u32 after adds", u32at(32), 18},
		{"atom.add.f64 old", u64at(40), math.Float64bits(2.25)},
		{"f64 after add", u64at(48), math.Float64bits(3.75)},
		{"atom.min.s32 old", u32at(64), 4},
		{"atom.max.u32 old", u32at(68), 9},
		{"atom.and old", u32at(72), 0xf0},
		{"atom.or old", u32at(76), 0},
		{"atom.xor old", u32at(80), 1},
		{"atom.dec old", u32at(84), 0},
		{"atom.inc old", u32at(88), 0},
		{"min.s32 result", u32at(92), u32(-3)},
		{"max.u32 result", u32at(96), 9},
		{"and/or/xor result", u32at(100), 2},
		{"dec result (0 wraps to 5)", u32at(104), 5},
		{"inc result", u32at(108), 1},
		{"u64 after red and inc of its high word", u64at(112), 1<<20 + 100 + 1<<32},
		{"atom.max.s64 old", u64at(120), 0xfffffffffffffff0},
		{"max.s64 result", u64at(128), math.MaxUint64},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#x, want %#x", c.name, c.got, c.want)
		}
	}
}

// refRound32 rounds the exact value x to float32 in mode rnd with big.Float
// (a reference independent of f32Slow's nearest-then-adjust method):
// subnormals are handled by rounding at the fixed quantum 2⁻¹⁴⁹.
func refRound32(x *big.Float, rnd uint8) float32 {
	mode := map[uint8]big.RoundingMode{rnRN: big.ToNearestEven, rnRZ: big.ToZero, rnRM: big.ToNegativeInf, rnRP: big.ToPositiveInf}[rnd]
	if x.Sign() == 0 {
		f, _ := x.Float32()
		return f
	}
	abs := new(big.Float).Abs(x)
	if abs.Cmp(big.NewFloat(0x1p-126)) < 0 {
		// n = x·2¹⁴⁹ rounded to an integer in the mode, result n·2⁻¹⁴⁹
		y := new(big.Float).SetPrec(1000).SetMantExp(x, 149)
		var n big.Int
		yi, acc := y.Int(&n)
		_ = yi
		if acc != big.Exact {
			frac := new(big.Float).SetPrec(1000).Sub(y, new(big.Float).SetInt(&n))
			switch mode {
			case big.ToNegativeInf:
				if frac.Sign() < 0 {
					n.Sub(&n, big.NewInt(1))
				}
			case big.ToPositiveInf:
				if frac.Sign() > 0 {
					n.Add(&n, big.NewInt(1))
				}
			case big.ToNearestEven:
				h := new(big.Float).Abs(frac).Cmp(big.NewFloat(0.5))
				if h > 0 || h == 0 && n.Bit(0) == 1 {
					if frac.Sign() > 0 {
						n.Add(&n, big.NewInt(1))
					} else {
						n.Sub(&n, big.NewInt(1))
					}
				}
			}
		}
		f, _ := new(big.Float).SetMantExp(new(big.Float).SetInt(&n), -149).Float32()
		if n.Sign() == 0 && x.Sign() < 0 {
			return float32(math.Copysign(0, -1))
		}
		return f
	}
	r := new(big.Float).SetPrec(24).SetMode(mode)
	r.Set(x)
	f, _ := r.Float32()
	if math.IsInf(float64(f), 0) || abs.Cmp(big.NewFloat(math.MaxFloat32)) > 0 {
		// overflow: directed modes stop at the largest finite value
		max := float32(math.MaxFloat32)
		switch {
		case mode == big.ToZero, mode == big.ToNegativeInf && x.Sign() > 0, mode == big.ToPositiveInf && x.Sign() < 0:
			if x.Sign() < 0 {
				return -max
			}
			return max
		case mode == big.ToNearestEven:
			f, _ := x.Float32()
			return f
		}
		return float32(math.Inf(x.Sign()))
	}
	return f
}

// TestRoundingModesRandom checks add/sub/mul/fma/div/rcp/sqrt in every rounding mode on
// random bit patterns (normals, subnormals, large and tiny exponents)
// against exact big.Float arithmetic.
func TestRoundingModesRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	randF32 := func() float32 {
		for {
			var bits uint32
			switch rng.IntN(4) {
			case 0: // subnormal or tiny
				bits = rng.Uint32() & 0x80ffffff
			case 1: // near 1
				bits = rng.Uint32()&0x807fffff | 0x3f000000
			case 2: // huge
				bits = rng.Uint32()&0x807fffff | 0x7e800000
			default:
				bits = rng.Uint32()
			}
			f := math.Float32frombits(bits)
			if !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0) {
				return f
			}
		}
	}
	for i := 0; i < 20000; i++ {
		a, b, c := randF32(), randF32(), randF32()
		if rng.IntN(3) == 0 { // make cancellation likely
			if c = -a * b; math.IsInf(float64(c), 0) {
				c = randF32()
			}
		}
		fop := uint8(rng.IntN(7))
		if fop == fopSqrt {
			a = float32(math.Abs(float64(a)))
		}
		if (fop == fopDiv && b == 0) || (fop == fopRcp && a == 0) {
			continue
		}
		rnd := []uint8{rnRN, rnRZ, rnRM, rnRP}[rng.IntN(4)]
		x := new(big.Float).SetPrec(1000).SetFloat64(float64(a))
		bb := new(big.Float).SetPrec(1000).SetFloat64(float64(b))
		cc := new(big.Float).SetPrec(1000).SetFloat64(float64(c))
		switch fop {
		case fopAdd:
			x.Add(x, bb)
		case fopSub:
			x.Sub(x, bb)
		case fopMul:
			x.Mul(x, bb)
		case fopFma:
			x.Mul(x, bb).Add(x, cc)
		case fopDiv: // 1000 bits: never within rounding distance of a float32 boundary unless exact
			x.Quo(x, bb)
		case fopRcp:
			x.Quo(new(big.Float).SetPrec(1000).SetInt64(1), x)
		case fopSqrt:
			x.Sqrt(x)
		}
		want := refRound32(x, rnd)
		got := math.Float32frombits(uint32(f32Slow(fop, rnd, 0, fb(a), fb(b), fb(c))))
		if math.Float32bits(got) != math.Float32bits(want) && !(got == 0 && want == 0) {
			t.Fatalf("op %d mode %d (%g, %g, %g) = %g (%#x), want %g (%#x)", fop, rnd, a, b, c, got, math.Float32bits(got), want, math.Float32bits(want))
		}
		if fop == fopFma && rnd == rnRN {
			if f := fma32(a, b, c); math.Float32bits(f) != math.Float32bits(want) && !(f == 0 && want == 0) {
				t.Fatalf("fma32(%g, %g, %g) = %g, want %g", a, b, c, f, want)
			}
		}
	}
}

// TestCvtRoundingRandom checks cvt to f32 from f64, s64 and u64 in every
// rounding mode against exact big.Float rounding.
func TestCvtRoundingRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(13, 14))
	for i := 0; i < 20000; i++ {
		rnd := []uint8{rnRN, rnRZ, rnRM, rnRP}[rng.IntN(4)]
		var in inst
		var v uint64
		var x *big.Float
		switch rng.IntN(3) {
		case 0:
			in = inst{td: kF<<4 | 2, ta: kF<<4 | 3, rnd: rnd, mask: 0xffffffff}
			f := math.Float64frombits(rng.Uint64()&0x800fffffffffffff | uint64(rng.IntN(2*300)+1023-300)<<52)
			v = math.Float64bits(f)
			x = new(big.Float).SetFloat64(f)
		case 1:
			in = inst{td: kF<<4 | 2, ta: kS<<4 | 3, rnd: rnd, mask: 0xffffffff}
			v = rng.Uint64() >> rng.IntN(64)
			if rng.IntN(2) == 0 {
				v = -v
			}
			x = new(big.Float).SetInt64(int64(v))
		default:
			in = inst{td: kF<<4 | 2, ta: kU<<4 | 3, rnd: rnd, mask: 0xffffffff}
			v = rng.Uint64() >> rng.IntN(64)
			x = new(big.Float).SetUint64(v)
		}
		want := refRound32(x, rnd)
		got := math.Float32frombits(uint32(cvtGeneric(&in, v)))
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("cvt mode %d from type %#x of %#x = %g, want %g", rnd, in.ta, v, got, want)
		}
	}
}

// madHiSatPTX computes, for thread i, out[2i] = mad.hi.sat.s32 and
// out[2i+1] = mad.hi.s32 of a[i], b[i], c[i].
const madHiSatPTX = `.version 7.0
.target sm_70
.address_size 64

.visible .entry madhi(
	.param .u64 madhi_param_0,
	.param .u64 madhi_param_1,
	.param .u64 madhi_param_2,
	.param .u64 madhi_param_3,
	.param .u32 madhi_param_4
)
{
	.reg .pred 	%p<2>;
	.reg .b32 	%r<12>;
	.reg .b64 	%rd<16>;

	ld.param.u64 	%rd1, [madhi_param_0];
	ld.param.u64 	%rd2, [madhi_param_1];
	ld.param.u64 	%rd3, [madhi_param_2];
	ld.param.u64 	%rd4, [madhi_param_3];
	ld.param.u32 	%r1, [madhi_param_4];
	mov.u32 	%r2, %ctaid.x;
	mov.u32 	%r3, %ntid.x;
	mov.u32 	%r4, %tid.x;
	mad.lo.s32 	%r5, %r2, %r3, %r4;
	setp.ge.u32 	%p1, %r5, %r1;
	@%p1 bra 	$L__done;
	mul.wide.u32 	%rd5, %r5, 4;
	add.s64 	%rd6, %rd1, %rd5;
	add.s64 	%rd7, %rd2, %rd5;
	add.s64 	%rd8, %rd3, %rd5;
	ld.global.u32 	%r6, [%rd6];
	ld.global.u32 	%r7, [%rd7];
	ld.global.u32 	%r8, [%rd8];
	mad.hi.sat.s32 	%r9, %r6, %r7, %r8;
	mad.hi.s32 	%r10, %r6, %r7, %r8;
	mul.wide.u32 	%rd9, %r5, 8;
	add.s64 	%rd10, %rd4, %rd9;
	st.global.v2.u32 	[%rd10], {%r9, %r10};
$L__done:
	ret;
}
`

// TestMadHiSat checks mad.hi.sat.s32 (and mad.hi.s32 on the same inputs)
// against math/big: d = clamp((a*b)>>32 + c) to the s32 range, the high
// half taken with an arithmetic shift (floor), per the PTX ISA.
func TestMadHiSat(t *testing.T) {
	edges := []int32{math.MinInt32, math.MinInt32 + 1, -0x40000001, -0x40000000, -0x10000, -2, -1, 0, 1, 2,
		0x10000, 0x3fffffff, 0x40000000, math.MaxInt32 - 1, math.MaxInt32}
	var a, b, c []int32
	for _, x := range edges {
		for _, y := range edges {
			for _, z := range edges {
				a, b, c = append(a, x), append(b, y), append(c, z)
			}
		}
	}
	rng := rand.New(rand.NewPCG(7, 11))
	for range 4096 {
		a, b, c = append(a, int32(rng.Uint32())), append(b, int32(rng.Uint32())), append(c, int32(rng.Uint32()))
	}
	// the audit's case: (-2^31)^2 >> 32 = 2^30; + 0x7ffffffe wraps to 0xbffffffe
	a, b, c = append(a, math.MinInt32), append(b, math.MinInt32), append(c, math.MaxInt32-1)
	n := len(a)
	mod, err := Load(madHiSatPTX)
	if err != nil {
		t.Fatal(err)
	}
	m := New(Options{})
	pa, pb, pc := putI32(m, t, a), putI32(m, t, b), putI32(m, t, c)
	out, _ := m.Alloc(int64(8 * n))
	if _, err := m.Launch(kernel(t, mod, "madhi"), [3]int{(n + 127) / 128, 1, 1}, [3]int{128, 1, 1}, 0,
		[]uint64{pa, pb, pc, out, uint64(n)}); err != nil {
		t.Fatal(err)
	}
	got := getI32(m, t, out, 2*n)
	lo, hi := big.NewInt(math.MinInt32), big.NewInt(math.MaxInt32)
	two32 := new(big.Int).Lsh(big.NewInt(1), 32)
	bad := 0
	for i := range n {
		r := new(big.Int).Mul(big.NewInt(int64(a[i])), big.NewInt(int64(b[i])))
		r.Rsh(r, 32) // arithmetic: rounds toward -inf
		r.Add(r, big.NewInt(int64(c[i])))
		wrap := new(big.Int).Mod(r, two32).Int64() // in [0, 2^32)
		sat := r
		if sat.Cmp(lo) < 0 {
			sat = lo
		} else if sat.Cmp(hi) > 0 {
			sat = hi
		}
		if got[2*i] != int32(sat.Int64()) || got[2*i+1] != int32(uint32(wrap)) {
			if bad++; bad <= 10 {
				t.Errorf("a=%#x b=%#x c=%#x: mad.hi.sat.s32 = %#x, mad.hi.s32 = %#x; want %#x, %#x", uint32(a[i]), uint32(b[i]), uint32(c[i]),
					uint32(got[2*i]), uint32(got[2*i+1]), uint32(int32(sat.Int64())), uint32(wrap))
			}
		}
	}
	if last := n - 1; got[2*last] != math.MaxInt32 || uint32(got[2*last+1]) != 0xbffffffe {
		t.Errorf("mad.hi{.sat}.s32 of -2^31, -2^31, 0x7ffffffe = %#x, %#x; want 0x7fffffff, 0xbffffffe", uint32(got[2*last]), uint32(got[2*last+1]))
	}
}

// TestModifierForms runs legal forms whose modifiers the decoder checks:
// mode, comparison and boolean-operator modifiers, cache hints and the
// .shared::cta spelling of .shared.
func TestModifierForms(t *testing.T) {
	runCases(t, []opCase{
		{"mad.hi.sat.s32", "r", rrr, []uint64{u32(math.MinInt32), u32(math.MinInt32), 0x7ffffffe}, 0x7fffffff},
		{"mad.hi.sat.s32", "r", rrr, []uint64{u32(math.MinInt32), 0x7fffffff, u32(math.MinInt32)}, 0x80000000},
		{"mad.hi.sat.s32", "r", rrr, []uint64{0x40000000, 4, u32(-5)}, -4 & 0xffffffff},
		{"mad.hi.s16", "h", []string{"h", "h", "h"}, []uint64{0x8000, 0x8000, 1}, 0x4001},
		{"mad.lo.u16", "h", []string{"h", "h", "h"}, []uint64{0xffff, 0xffff, 1}, 2},
		{"mul.hi.u16", "h", []string{"h", "h"}, []uint64{0xffff, 0xffff}, 0xfffe},
		{"bfind.shiftamt.u32", "r", []string{"r"}, []uint64{0x00010000}, 15},
		{"bfind.shiftamt.s32", "r", []string{"r"}, []uint64{u32(-2)}, 31},
		{"shr.b32", "r", rr, []uint64{0x80000000, 4}, 0x08000000},
		{"setp.lt.and.s32", "p", []string{"r", "r", "p"}, []uint64{u32(-1), 0, 1}, 1},
		{"setp.lt.or.u32", "p", []string{"r", "r", "p"}, []uint64{u32(-1), 0, 0}, 0},
		{"setp.hi.xor.u32", "p", []string{"r", "r", "p"}, []uint64{2, 1, 1}, 0},
		{"setp.ne.b32", "p", rr, []uint64{2, 1}, 1},
		{"setp.equ.ftz.f32", "p", []string{"f", "f"}, []uint64{ff(0x00000001), fb(0)}, 1},
		{"slct.ftz.u32.f32", "r", rrr, []uint64{7, 9, ff(0x80000001)}, 7},
		{"selp.s64", "rd", []string{"rd", "rd", "p"}, []uint64{1 << 40, 2, 1}, 1 << 40},
		{"set.hs.u32.u32", "r", rr, []uint64{1, 1}, 0xffffffff},
		{"testp.normal.f32", "p", []string{"f"}, []uint64{ff(0x00000001)}, 0},
	})
	for _, c := range []struct {
		body string
		want uint64
	}{
		{"\tld.global.L1::evict_last.L2::256B.u32 %r9, [%rd30];\n\tst.global.L1::no_allocate.u32 [%rd31], %r9;", 0x1234},
		{"\tld.global.nc.L1::no_allocate.u32 %r9, [%rd30];\n\tst.global.u32 [%rd31], %r9;", 0x1234},
		{"\tcvta.to.global.u64 %rd1, %rd31;\n\tfence.acq_rel.gpu;\n\tmembar.cta;\n\tst.global.u32 [%rd1], 5;", 5},
		{"\tmov.u64 %rd1, sbuf;\n\tcvta.shared::cta.u64 %rd2, %rd1;\n\tst.u32 [%rd2], 0x77;\n\tld.shared::cta.u32 %r9, [sbuf];\n\tst.global.u32 [%rd31], %r9;", 0x77},
		{"\tisspacep.shared::cta %p1, %rd31;\n\tselp.u32 %r9, 1, 2, %p1;\n\tst.global.u32 [%rd31], %r9;", 2},
	} {
		t.Run("body="+strings.TrimSpace(c.body), func(t *testing.T) {
			src := strings.Replace(harness(c.body), "\tld.param.u64 \t%rd30", "\t.shared .align 4 .b8 sbuf[16];\n\tld.param.u64 \t%rd30", 1)
			mod, err := Load(src)
			if err != nil {
				t.Fatal(err)
			}
			m := New(Options{})
			in, _ := m.Alloc(8)
			out, _ := m.Alloc(8)
			m.Write(in, []byte{0x34, 0x12, 0, 0})
			if _, err := m.Launch(kernel(t, mod, "k"), [3]int{1, 1, 1}, [3]int{1, 1, 1}, 0, []uint64{in, out}); err != nil {
				t.Fatal(err)
			}
			if got := getI32(m, t, out, 1)[0]; uint64(uint32(got)) != c.want {
				t.Errorf("out = %#x, want %#x", uint32(got), c.want)
			}
		})
	}
}
