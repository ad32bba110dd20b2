package gpu

import (
	"errors"
	"math"
	"testing"

	"github.com/convtrain/convtrain/cpuref"
	"github.com/convtrain/convtrain/cpuref/geom"
)

// The residual add with its ReLU writing the convolutions' channels-last
// copies (kernels/add_pack.cu, AddReLUKeep).

func init() {
	plainConformance = append(plainConformance,
		conformanceCase{"add_relu_pack_bf16_v1", []string{"add_relu_pack_bf16_v1", "add_relu_pack_tf32_v1"}, testAddReLUPack})
	launcherTestedElsewhere["add_relu_pack_bf16_v1"] = true // TestAddReLUKeepLaunchers
	launcherTestedElsewhere["add_relu_pack_tf32_v1"] = true // TestAddReLUKeepLaunchers
}

// testAddReLUPack checks add_relu_pack_bf16_v1, with one destination and
// with two, against cpuref: y bit for bit as AddReLUForward (the sums at
// ReLU's edges included: NaN, −0, a sum of exactly 0), and every word of
// each copy as cpuref.BF16Bits of y, channels past C zero, on bnShapes
// (partial 32×32 tiles on both axes); and add_relu_pack_tf32_v1, each
// copy's words as cpuref.RoundTF32 of y.
func testAddReLUPack(t *testing.T, d *Device) { addReLUPack(t, d, "") }

// addReLUPack is testAddReLUPack, with the input named bf16In ("a" or
// "b"; "" for none) rounded to bfloat16 in a bfloat16 buffer (a batch
// norm's output stored so: add_relu_pack_bf16_bf16b_v1, which reads it as
// b; BF16 copies only).
func addReLUPack(t *testing.T, d *Device, bf16In string) {
	if !d.hasTarget(80) {
		t.Skipf("add_relu_pack_bf16_v1 needs compute capability 8.0; %v has less", d)
	}
	for _, s := range bnShapesFor(d) {
		n, c, hw := s[0], s[1], s[2]
		for m := range 4 {
			two, pc := m&1 != 0, packedBF16
			if m&2 != 0 {
				pc = packedTF32
			}
			if pc == packedTF32 && bf16In != "" {
				continue // no bfloat16 tensor at TF32
			}
			t.Run(kv("two", two, "tf32", pc == packedTF32, "N", n, "C", c, "HW", hw), func(t *testing.T) {
				L := n * c * hw
				rng := newRand(t.Name())
				a, b := uniform(rng, L), uniform(rng, L)
				for i := range b {
					b[i] -= 0.5
				}
				for i, e := range [][2]float32{{float32(math.NaN()), 1}, {0, float32(math.Copysign(0, -1))}, {0.25, -0.25}} {
					if j := i * L / 3; j < L {
						a[j], b[j] = e[0], e[1]
					}
				}
				h := newHarness(t, d)
				var ab, bb *Buffer
				switch bf16In {
				case "a":
					ab, a = h.inBF16("a", a)
					bb = h.in("b", b)
				case "b":
					ab = h.in("a", a)
					bb, b = h.inBF16("b", b)
				default:
					ab, bb = h.in("a", a), h.in("b", b)
				}
				want := make([]float32, L)
				if err := cpuref.AddReLUForward(a, b, want); err != nil {
					t.Fatal(err)
				}
				g := geom.ConvGeom{N: n, C: c, H: 1, W: hw, K: 8, R: 1, S: 1, StrideH: 1, StrideW: 1}
				keeps := []ConvKeep{{g, h.out("xk", keepLen(pc, g))}}
				if two {
					keeps = append(keeps, ConvKeep{g, h.out("xk2", keepLen(pc, g))})
				}
				y := h.out("y", L)
				d.mu.Lock()
				err := d.addReLUPack(ab, bb, y, keeps, pc)
				d.mu.Unlock()
				if err != nil {
					t.Fatal(err)
				}
				checkSameBits(t, "y", h.read(y), want)
				cp := packedChans(c, pc.chanAlign)
				for i, k := range keeps {
					packedWant(t, kv("xk", i), h.read(k.XK), want, n, c, hw, cp, pc.elemBytes, packedRound(pc))
				}
				h.check()
			})
		}
	}
}

// TestAddReLUKeepLaunchers is TestLaunchers for add_relu_pack_bf16_v1 and
// add_relu_pack_tf32_v1:
// each argument lands in the parameter of that name, dst2 null with one
// destination, with the launch shape the kernel's doc states, and a launch
// allocates nothing on the host.
func TestAddReLUKeepLaunchers(t *testing.T) {
	d, f := openFake(t)
	P := func(b *Buffer) uint64 { return uint64(b.ptr) }
	g := cg(2, 33, 7, 10, 8, 1, 1, 1, 1, 0, 0) // Cp = 40: two channel tiles; three value tiles
	L := g.XLen()
	a, b, y := mustF32(t, d, L), mustF32(t, d, L), mustF32(t, d, L)
	xk, xk2 := mustF32(t, d, keepLen(packedBF16, g)), mustF32(t, d, keepLen(packedBF16, g))
	xt, xt2 := mustF32(t, d, keepLen(packedTF32, g)), mustF32(t, d, keepLen(packedTF32, g))
	for _, tc := range []struct {
		name      string
		keeps     []ConvKeep
		dst, dst2 uint64
		pc        packedConv
	}{{"one", []ConvKeep{{g, xk}}, P(xk), 0, packedBF16}, {"two", []ConvKeep{{g, xk}, {g, xk2}}, P(xk), P(xk2), packedBF16},
		{"tf32", []ConvKeep{{g, xt}, {g, xt2}}, P(xt), P(xt2), packedTF32}} {
		t.Run(tc.name, func(t *testing.T) {
			call := func() error {
				d.mu.Lock()
				defer d.mu.Unlock()
				return d.addReLUPack(a, b, y, tc.keeps, tc.pc)
			}
			before := f.launches
			if err := call(); err != nil {
				t.Fatal(err)
			}
			if got := f.launches - before; got != 1 {
				t.Errorf("%d launches, want 1", got)
			}
			kernel, cp := "add_relu_pack_bf16_v1", uint64(40)
			if tc.pc == packedTF32 {
				kernel, cp = "add_relu_pack_tf32_v1", 36
			}
			checkFakeLaunch(t, f.last, kernel, Dim3{3, 2, 2}, Dim3{32, 8, 1},
				map[string]uint64{"a": P(a), "b": P(b), "y": P(y), "dst": tc.dst, "dst2": tc.dst2,
					"N": 2, "C": 33, "HW": 70, "Cp": cp}, call)
		})
	}
}

// TestAddReLUKeep checks AddReLUKeep and the convolutions reading its
// output on the simulator against AddReLU and Conv2DForwardKeep packing y
// itself: the same y, copies, conv outputs and gradients, bit for bit; at
// BF16, where a conv's kernels share the copy, and at TF32 for the first
// conv where its packed forward kernel reads one (ConvXCopyLen, not
// kept), its forward pass launches one packing fewer and the add+ReLU
// launches once either way; elsewhere nothing changes. Two convolutions of one packing (a block's first conv
// and its strided projection) get their copies from one launch; a copy
// made for another y, or already read, is not read.
func TestAddReLUKeep(t *testing.T) { testAddReLUKeep(t, openSim(t)) }

// testAddReLUKeep is TestAddReLUKeep on d (the simulator, or a GPU:
// TestAddReLUKeepCUDA); a precision d cannot run is skipped.
func testAddReLUKeep(t *testing.T, d *Device) {
	together, tf32 := 0, 0 // BF16 cases whose two copies one launch made; TF32 cases making one
	for _, prec := range []Precision{BF16, TF32} {
		for i, gs := range [][]geom.ConvGeom{
			{cg(2, 130, 8, 8, 16, 3, 3, 1, 1, 1, 1), cg(2, 130, 8, 8, 16, 3, 3, 2, 2, 1, 1)},  // two copies; C past a multiple of 8 and of 32
			{cg(8, 16, 8, 8, 32, 3, 3, 1, 1, 1, 1)},                                           // one conv
			{cg(16, 64, 8, 8, 64, 1, 1, 1, 1, 0, 0), cg(16, 64, 8, 8, 128, 1, 1, 2, 2, 0, 0)}, // a first conv and a projection that keeps nothing
			{cg(2, 16, 8, 8, 24, 3, 3, 1, 1, 1, 1), cg(2, 16, 8, 8, 32, 1, 1, 1, 1, 0, 0)},    // direct kernels: nothing kept
		} {
			t.Run(kv("prec", prec, "g", gs), func(t *testing.T) {
				if testing.Short() && (prec != BF16 || i > 0) {
					t.Skip("-short: BF16's first case; the sweep is left to the full run")
				}
				if err := d.SetPrecision(prec); err != nil {
					t.Skip(err)
				}
				defer d.SetPrecision(FP32)
				g0 := gs[0]
				L := g0.XLen()
				rng := newRand("add-keep/" + g0.String())
				a, b, x2 := randomBufT(t, d, L, rng), randomBufT(t, d, L, rng), randomBufT(t, d, L, rng)
				type conv struct {
					w, bias, dy *Buffer
					kl, xl      int
					made        bool // the add makes its copy
				}
				convs := make([]conv, len(gs))
				shared := 0
				for j, g := range gs {
					convs[j] = conv{randomBufT(t, d, g.WLen(), rng), randomBufT(t, d, g.K, rng), randomBufT(t, d, g.YLen(), rng),
						d.ConvKeepLen(g), d.ConvXCopyLen(g), false}
					convs[j].made = convs[j].kl > 0 || j == 0 && convs[j].xl > 0
					if convs[j].kl > 0 {
						shared++
					}
				}
				if prec == BF16 && shared == 2 {
					together++
				}
				if prec == TF32 && convs[0].made {
					tf32++
				}
				type result struct {
					out                      [][]float32
					addLaunches              int64
					fwdLaunches, bwdLaunches []int64
				}
				// run is the add+ReLU into y (with the keeps, fused) and
				// each conv on y, its forward and backward with its xk.
				run := func(fused bool) result {
					y := mustF32(t, d, L)
					keeps := make([]ConvKeep, len(gs))
					for j, g := range gs {
						keeps[j] = ConvKeep{g, mustF32(t, d, max(convs[j].kl, convs[j].xl, 1))}
					}
					var r result
					l0 := d.Launches()
					if fused {
						mustNil(t, d.AddReLUKeep(a, b, y, keeps...))
					} else {
						mustNil(t, d.AddReLU(a, b, y))
					}
					r.addLaunches = d.Launches() - l0
					r.out = append(r.out, download(t, y))
					for j, g := range gs {
						c := convs[j]
						out, dw, db, dx := mustF32(t, d, g.YLen()), mustF32(t, d, g.WLen()), mustF32(t, d, g.K), mustF32(t, d, g.XLen())
						l1 := d.Launches()
						mustNil(t, d.Conv2DForwardKeep(g, y, c.w, c.bias, out, false, keeps[j].XK))
						l2 := d.Launches()
						mustNil(t, d.Conv2DBackward(g, y, c.dy, c.w, dw, db, dx, keeps[j].XK))
						r.fwdLaunches = append(r.fwdLaunches, l2-l1)
						r.bwdLaunches = append(r.bwdLaunches, d.Launches()-l2)
						for _, b := range []*Buffer{out, dw, db, dx} {
							r.out = append(r.out, download(t, b))
						}
						if c.kl > 0 {
							r.out = append(r.out, download(t, keeps[j].XK))
						}
						// The copy was read: a second forward pass packs y.
						l3 := d.Launches()
						mustNil(t, d.Conv2DForwardKeep(g, y, c.w, c.bias, out, false, keeps[j].XK))
						if again, want := d.Launches()-l3, r.fwdLaunches[j]+map[bool]int64{true: 1}[fused && c.made]; again != want {
							t.Errorf("conv %d: a second forward on the copy: %d launches, want %d", j, again, want)
						}
					}
					return r
				}
				plain, fused := run(false), run(true)
				if len(fused.out) != len(plain.out) {
					t.Fatalf("%d outputs fused, %d plain", len(fused.out), len(plain.out))
				}
				for j := range plain.out {
					equalBitsT(t, kv("output", j), fused.out[j], plain.out[j])
				}
				if plain.addLaunches != 1 || fused.addLaunches != 1 {
					t.Errorf("add+ReLU: %d launches fused, %d plain; want 1 and 1", fused.addLaunches, plain.addLaunches)
				}
				for j := range gs {
					want := plain.fwdLaunches[j]
					if convs[j].made {
						want--
					}
					if fused.fwdLaunches[j] != want || fused.bwdLaunches[j] != plain.bwdLaunches[j] {
						t.Errorf("conv %d fused: %d and %d launches (forward, backward), want %d and %d",
							j, fused.fwdLaunches[j], fused.bwdLaunches[j], want, plain.bwdLaunches[j])
					}
				}
				if !convs[0].made {
					return
				}
				// A copy of y is not read for another x.
				c := convs[0]
				y, xk, out, ref := mustF32(t, d, L), mustF32(t, d, max(c.kl, c.xl)), mustF32(t, d, g0.YLen()), mustF32(t, d, g0.YLen())
				mustNil(t, d.AddReLUKeep(a, b, y, ConvKeep{g0, xk}))
				mustNil(t, d.Conv2DForwardKeep(g0, x2, c.w, c.bias, out, false, xk))
				mustNil(t, d.Conv2DForward(g0, x2, c.w, c.bias, ref))
				equalBitsT(t, "conv y of x2 after a copy of y", download(t, out), download(t, ref))
				// Refused: three keeps, a keep on y itself (and of y's
				// length, not the copy's); y untouched.
				mustNil(t, d.Fill(y, 7))
				for _, bad := range []struct {
					name  string
					keeps []ConvKeep
					is    error
				}{{"three keeps", []ConvKeep{{g0, xk}, {g0, xk}, {g0, xk}}, geom.ErrGeometry}, {"a keep on y", []ConvKeep{{g0, y}}, nil}} {
					if err := d.AddReLUKeep(a, b, y, bad.keeps...); err == nil || bad.is != nil && !errors.Is(err, bad.is) {
						t.Errorf("AddReLUKeep with %s: %v, want an error", bad.name, err)
					}
				}
				for j, v := range download(t, y) {
					if v != 7 {
						t.Fatalf("y[%d] = %g after refused calls, want 7", j, v)
					}
				}
			})
		}
	}
	if together == 0 || !testing.Short() && tf32 == 0 {
		t.Errorf("%d BF16 cases kept two copies, %d TF32 cases made one: want some of each", together, tf32)
	}
}
