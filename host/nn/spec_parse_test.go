package nn

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/convtrain/convtrain/cpuref/geom"
)

func TestParseSpecDefault(t *testing.T) {
	want := DefaultSpec().Layers
	for _, text := range []string{
		DefaultSpecText,
		"conv8x5x5,relu,maxpool2,conv16x5x5,relu,maxpool2,dense10", // implicit flatten
		" Conv 8 x 5 × 5 , ReLU,MAXPOOL2 s2,conv16x5x5s1p0,relu,maxpool2x2s2x2, dense 10 ,",
		"# the default network\nconv8x5x5   # 1→8\nrelu\nmaxpool2\n\nconv16x5x5,relu\nmaxpool2\nflatten\ndense10\n",
	} {
		got, err := ParseSpec(text)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", text, err)
			continue
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("ParseSpec(%q) = %+v, want DefaultSpec().Layers %+v", text, got, want)
		}
	}
	if got := FormatSpec(want); got != DefaultSpecText {
		t.Errorf("FormatSpec(DefaultSpec().Layers) = %q, want %q", got, DefaultSpecText)
	}
}

func TestParseSpec(t *testing.T) {
	conv := func(k, r, s, sh, sw, ph, pw int) LayerSpec {
		return LayerSpec{Kind: Conv, Filters: k, KernelH: r, KernelW: s, StrideH: sh, StrideW: sw, PadH: ph, PadW: pw}
	}
	pool := func(r, s, sh, sw int) LayerSpec {
		return LayerSpec{Kind: MaxPool, KernelH: r, KernelW: s, StrideH: sh, StrideW: sw}
	}
	relu, flat, dense := LayerSpec{Kind: ReLU}, LayerSpec{Kind: Flatten}, DenseLayer
	for _, tc := range []struct {
		text      string
		want      []LayerSpec
		canonical string
	}{
		{"dense10", []LayerSpec{flat, dense(10)}, "flatten,dense10"},
		{"flatten,dense256,relu,dense10", []LayerSpec{flat, dense(256), relu, dense(10)}, "flatten,dense256,relu,dense10"},
		{"conv32x3x3s2p1,dense10", []LayerSpec{conv(32, 3, 3, 2, 2, 1, 1), flat, dense(10)}, "conv32x3x3s2p1,flatten,dense10"},
		{"conv32x3x3p1s2,dense10", []LayerSpec{conv(32, 3, 3, 2, 2, 1, 1), flat, dense(10)}, "conv32x3x3s2p1,flatten,dense10"},
		{"conv16x7x1p3x0,dense10", []LayerSpec{conv(16, 7, 1, 0, 0, 3, 0), flat, dense(10)}, "conv16x7x1p3x0,flatten,dense10"},
		{"conv4x3x5s1x2,dense10", []LayerSpec{conv(4, 3, 5, 0, 2, 0, 0), flat, dense(10)}, "conv4x3x5s1x2,flatten,dense10"},
		{"conv4x3x3s1p0,dense10", []LayerSpec{conv(4, 3, 3, 0, 0, 0, 0), flat, dense(10)}, "conv4x3x3,flatten,dense10"},
		{"maxpool3s2,dense10", []LayerSpec{pool(3, 3, 2, 2), flat, dense(10)}, "maxpool3s2,flatten,dense10"},
		{"maxpool2x3,dense10", []LayerSpec{pool(2, 3, 0, 0), flat, dense(10)}, "maxpool2x3,flatten,dense10"},
		{"maxpool2x3s2,dense10", []LayerSpec{pool(2, 3, 0, 2), flat, dense(10)}, "maxpool2x3s2,flatten,dense10"},
		{"maxpool2x3s1x1,dense10", []LayerSpec{pool(2, 3, 1, 1), flat, dense(10)}, "maxpool2x3s1,flatten,dense10"},
		{"relu,dense10", []LayerSpec{relu, flat, dense(10)}, "relu,flatten,dense10"},
		{"conv1x1x1,relu,relu,flatten,flatten,relu,dense3", []LayerSpec{conv(1, 1, 1, 0, 0, 0, 0), relu, relu, flat, flat, relu, dense(3)}, "conv1x1x1,relu,relu,flatten,flatten,relu,dense3"},
		{",,dense10,,", []LayerSpec{flat, dense(10)}, "flatten,dense10"},
		{"conv2147483647x1x1,dense2147483647", []LayerSpec{conv(1<<31-1, 1, 1, 0, 0, 0, 0), flat, dense(1<<31 - 1)}, "conv2147483647x1x1,flatten,dense2147483647"},
	} {
		t.Run("spec="+tc.text, func(t *testing.T) {
			got, err := ParseSpec(tc.text)
			if err != nil {
				t.Fatalf("ParseSpec: %v", err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseSpec = %+v, want %+v", got, tc.want)
			}
			if f := FormatSpec(got); f != tc.canonical {
				t.Errorf("FormatSpec(ParseSpec) = %q, want %q", f, tc.canonical)
			}
			again, err := ParseSpec(FormatSpec(got))
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Errorf("ParseSpec(FormatSpec(x)) = %+v, %v, want x = %+v", again, err, got)
			}
		})
	}
}

func TestParseSpecErrors(t *testing.T) {
	for _, tc := range []struct {
		text string
		want []string // all must appear in the error
	}{
		{"", []string{"no layers"}},
		{" , \n # only a comment", []string{"no layers"}},
		{"conv8x5x5,relu", []string{`layer 2 "relu"`, "last layer must be dense"}},
		{"dense10,relu", []string{`layer 3 "relu"`, "last layer must be dense"}}, // the implied flatten is layer 1
		{"conv8x5x5,relu,pool2,dense10", []string{`layer 3 "pool2"`, `unknown layer kind "pool"`}},
		{"conv8x5x5,relu\nmaxpool2,,conv16x5,dense10", []string{`layer 4 "conv16x5"`, "missing \"x\" and the kernel width S", "conv<K>x<R>x<S>"}},
		{"conv8,dense10", []string{`layer 1 "conv8"`, "kernel size"}},
		{"conv8x5,dense10", []string{`layer 1`, "kernel width"}},
		{"convx5x5,dense10", []string{`layer 1`, `unknown layer kind "convx"`}},
		{"conv x5x5,dense10", []string{`layer 1`, `"x" where the number of filters K should be`}},
		{"conv0x5x5,dense10", []string{`layer 1 "conv0x5x5"`, "number of filters K 0 must be ≥ 1"}},
		{"conv8x0x5,dense10", []string{"kernel height R 0 must be ≥ 1"}},
		{"conv8x5x5s0,dense10", []string{"stride 0 must be ≥ 1"}},
		{"conv8x5x5s2x0,dense10", []string{"stride width 0 must be ≥ 1"}},
		{"conv8x5x5p,dense10", []string{"missing padding at the end"}},
		{"conv8x5x5s2s2,dense10", []string{`option "s" given twice`}},
		{"conv8x5x5q2,dense10", []string{`unexpected "q"`}},
		{"conv8x5x5x5,dense10", []string{`unexpected "x"`}},
		{"conv8x5x5 relu,dense10", []string{`layer 1 "conv8x5x5 relu"`, "missing comma"}},
		{"conv-8x5x5,dense10", []string{`unexpected character '-'`}},
		{"conv8x5x5p-1,dense10", []string{`unexpected character '-'`}},
		{"conv8.5x5x5,dense10", []string{`unexpected character '.'`}},
		{"conv99999999999x5x5,dense10", []string{"number 99999999999 is too large"}},
		{"maxpool,dense10", []string{`layer 1 "maxpool"`, "missing window", "maxpool<R>"}},
		{"maxpool2p1,dense10", []string{`unexpected "p"`}},
		{"maxpool0,dense10", []string{"window 0 must be ≥ 1"}},
		{"relu2,dense10", []string{`layer 1 "relu2"`, "unexpected 2"}},
		{"flatten5,dense10", []string{"unexpected 5"}},
		{"dense,dense10", []string{`layer 2 "dense"`, "missing number of units"}},
		{"dense0", []string{"number of units 0 must be ≥ 1"}},
		{"dense10x2", []string{`unexpected "x"`}},
		{"10", []string{"starts with its kind"}},
		{"dense10,conv8x3x3,dense10", []string{`layer 3 "conv8x3x3"`, "flattened before it"}},
		{"flatten,maxpool2,dense10", []string{`layer 2 "maxpool2"`, "flattened before it"}},
		{"dense10,relu,conv8x3x3,dense10", []string{`layer 4`, "flattened"}},
		{"convolution8x5x5,dense10", []string{`unknown layer kind "convolution"`}},
		{"conv8x5x5€,dense10", []string{`unexpected character '€'`}},
	} {
		t.Run("spec="+tc.text, func(t *testing.T) {
			got, err := ParseSpec(tc.text)
			if err == nil {
				t.Fatalf("ParseSpec = %+v, want an error", got)
			}
			if !errors.Is(err, ErrSpec) {
				t.Errorf("ParseSpec error %v does not wrap ErrSpec", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseSpec error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestFormatSpecInvalid checks that layers ParseSpec cannot give are
// written so that parsing them fails instead of changing their meaning.
func TestFormatSpecInvalid(t *testing.T) {
	for _, tc := range []struct {
		layer LayerSpec
		want  string
	}{
		{LayerSpec{Kind: MaxPool, KernelH: 2, KernelW: 2, PadH: 1, PadW: 1}, "maxpool2p1"},
		{LayerSpec{Kind: Conv, Filters: 0, KernelH: 3, KernelW: 3}, "conv0x3x3"},
		{LayerSpec{Kind: Conv, Filters: 1, KernelH: 3, KernelW: 3, PadH: -1, PadW: -1}, "conv1x3x3p-1"},
		{LayerSpec{Kind: Dense}, "dense0"},
		{LayerSpec{Kind: LayerKind(99)}, "LayerKind(99)"},
	} {
		text := FormatSpec([]LayerSpec{tc.layer, DenseLayer(10)})
		if !strings.HasPrefix(text, tc.want+",") {
			t.Errorf("FormatSpec(%+v) = %q, want it to begin %q", tc.layer, text, tc.want)
		}
		if _, err := ParseSpec(text); err == nil {
			t.Errorf("ParseSpec(%q) succeeded, want an error", text)
		}
	}
	// Fields of other kinds are not written.
	if got := FormatSpec([]LayerSpec{{Kind: ReLU, Filters: 3, Units: 5}, {Kind: Dense, Units: 2, KernelH: 4}}); got != "relu,dense2" {
		t.Errorf("FormatSpec(relu and dense with stray fields) = %q, want %q", got, "relu,dense2")
	}
}

func TestInferShapes(t *testing.T) {
	layers, err := ParseSpec(DefaultSpecText)
	if err != nil {
		t.Fatal(err)
	}
	infos, err := InferShapes(layers, 1, 28, 28, 10)
	if err != nil {
		t.Fatalf("InferShapes(default, 1×28×28, 10 classes): %v", err)
	}
	// Worked by hand: 28−5+1 = 24, /2 = 12, 12−5+1 = 8, /2 = 4; 16·4·4 = 256.
	want := []struct{ c, h, w, params int }{
		{8, 24, 24, 8*1*5*5 + 8}, {8, 24, 24, 0}, {8, 12, 12, 0},
		{16, 8, 8, 16*8*5*5 + 16}, {16, 8, 8, 0}, {16, 4, 4, 0},
		{256, 1, 1, 0}, {10, 1, 1, 256*10 + 10},
	}
	if len(infos) != len(want) {
		t.Fatalf("InferShapes gave %d layers, want %d", len(infos), len(want))
	}
	for i, w := range want {
		o := infos[i].Out
		if o.C != w.c || o.H != w.h || o.W != w.w || infos[i].Params != w.params {
			t.Errorf("layer %d (%v): output %d×%d×%d, %d params; want %d×%d×%d, %d params",
				i+1, infos[i].Spec, o.C, o.H, o.W, infos[i].Params, w.c, w.h, w.w, w.params)
		}
	}

	for _, tc := range []struct {
		name, text string
		c, h, w    int
		classes    int
		want       []string
	}{
		{"classes", DefaultSpecText, 1, 28, 28, 12, []string{"layer 8", "10 outputs, but the data has 12 classes"}},
		{"empty-output", "conv8x5x5,relu,maxpool2,conv16x13x13,dense10", 1, 28, 28, 10, []string{"layer 4", "the 13×13 window is larger than its 12×12 input padded by 0×0"}},
		{"pool-too-big", "maxpool32,dense10", 1, 28, 28, 10, []string{"layer 1", "the 32×32 window is larger than its 28×28 input"}},
		{"input", DefaultSpecText, 0, 28, 28, 10, []string{"input"}},
		{"huge-dense", "dense2147483647,dense10", 1, 28, 28, 10, []string{"layer 2"}},
		{"huge-conv", "conv65536x1x1,dense10", 1, 64, 64, 10, []string{"layer 1"}},
	} {
		t.Run("case="+tc.name, func(t *testing.T) {
			layers, err := ParseSpec(tc.text)
			if err != nil {
				t.Fatalf("ParseSpec(%q): %v", tc.text, err)
			}
			_, err = InferShapes(layers, tc.c, tc.h, tc.w, tc.classes)
			if err == nil {
				t.Fatalf("InferShapes(%q, %d×%d×%d, %d classes) succeeded, want an error", tc.text, tc.c, tc.h, tc.w, tc.classes)
			}
			if !errors.Is(err, ErrSpec) {
				t.Errorf("InferShapes error %v does not wrap ErrSpec", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("InferShapes error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// FuzzParseSpec checks that ParseSpec never panics, that its errors wrap
// ErrSpec, that what it accepts is canonical after one FormatSpec
// (parse → format → parse gives the same layers and the same text), and
// that InferShapes on those layers returns an answer or an error.
func FuzzParseSpec(f *testing.F) {
	for _, s := range []string{
		DefaultSpecText,
		"conv32x3x3s2p1,relu,conv32x3x3p1x0s1x2,maxpool3s2,dense128,relu,dense10",
		"Conv 8 × 5 × 5 # comment\n relu,,maxpool2x3s1\ndense 10",
		"dense10,conv8x3x3,dense10",
		"conv99999999999x5x5",
		"conv8x5x5 relu",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		layers, err := ParseSpec(text)
		if err != nil {
			if !errors.Is(err, ErrSpec) {
				t.Fatalf("ParseSpec(%q) error %v does not wrap ErrSpec", text, err)
			}
			return
		}
		canon := FormatSpec(layers)
		again, err := ParseSpec(canon)
		if err != nil {
			t.Fatalf("ParseSpec(%q) = %+v, but ParseSpec(FormatSpec) = %v", text, layers, err)
		}
		if !reflect.DeepEqual(again, layers) {
			t.Fatalf("ParseSpec(FormatSpec(ParseSpec(%q))) = %+v, want %+v", text, again, layers)
		}
		if f2 := FormatSpec(again); f2 != canon {
			t.Fatalf("FormatSpec is not stable: %q then %q", canon, f2)
		}
		if infos, err := InferShapes(layers, 1, 28, 28, 10); err == nil {
			for i, info := range infos {
				if o := info.Out; o.C < 1 || o.H < 1 || o.W < 1 || info.Params < 0 {
					t.Fatalf("InferShapes(%q) layer %d: output %v, %d params", canon, i+1, o, info.Params)
				}
				if info.Spec.Kind == Conv {
					if err := info.Conv.Validate(); err != nil {
						t.Fatalf("InferShapes(%q) layer %d accepted geometry %v: %v", canon, i+1, info.Conv, err)
					}
				}
			}
		} else if !errors.Is(err, ErrSpec) && !errors.Is(err, geom.ErrGeometry) {
			t.Fatalf("InferShapes(%q) error %v wraps neither ErrSpec nor ErrGeometry", canon, err)
		}
	})
}

func TestParseSpecNormPool(t *testing.T) {
	for _, tc := range []struct{ text, canonical, summary string }{
		{"conv4x3x3p1,bn,relu,gap,dense10", "conv4x3x3p1,bn,relu,gap,flatten,dense10", "batchnorm"},
		{"avgpool2,dense10", "avgpool2,flatten,dense10", "avgpool 2×2 stride 2×2 pad 0×0"},
		{"avgpool3s1p1,dense10", "avgpool3s1p1,flatten,dense10", "avgpool 3×3 stride 1×1 pad 1×1"},
		{"avgpool3x2s2x1p1x0,dense10", "avgpool3x2s2x1p1x0,flatten,dense10", "avgpool 3×2 stride 2×1 pad 1×0"},
	} {
		layers, err := ParseSpec(tc.text)
		if err != nil {
			t.Errorf("ParseSpec(%q): %v", tc.text, err)
			continue
		}
		if got := FormatSpec(layers); got != tc.canonical {
			t.Errorf("FormatSpec(ParseSpec(%q)) = %q, want %q", tc.text, got, tc.canonical)
		}
		s, err := Spec{C: 2, H: 9, W: 9, Loss: SoftmaxCE, Layers: layers}.Summary()
		if err != nil || !strings.Contains(s, tc.summary) {
			t.Errorf("Summary of %q = %q, %v; want it to contain %q", tc.text, s, err, tc.summary)
		}
	}
	for _, tc := range []struct{ text, want string }{
		{"bn2,dense10", "unexpected 2"},
		{"dense4,bn,dense10", "flattened before it"},
		{"gap,gap3,dense10", "unexpected 3"},
		{"avgpool,dense10", "missing window"},
	} {
		if _, err := ParseSpec(tc.text); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseSpec(%q) = %v, want an error containing %q", tc.text, err, tc.want)
		}
	}
	layers, _ := ParseSpec("avgpool3p2,dense10")
	if _, err := (Spec{C: 1, H: 8, W: 8, Loss: SoftmaxCE, Layers: layers}).Check(); err == nil {
		t.Errorf("avgpool3p2: padding over half the window accepted")
	}
}

// TestPresets builds each preset on CIFAR-shaped input and checks its
// parameter count against the same network built in PyTorch
// (scripts/torch-presets.py prints them: lenet on 1×28×28, the ResNets with
// projection shortcuts and bias-free convolutions on 3×32×32, 10 classes).
func TestPresets(t *testing.T) {
	for _, tc := range []struct {
		name    string
		c, h, w int
		params  int
		layers  int
	}{
		{"lenet", 1, 28, 28, 5994, 8},
		{"resnet8", 3, 32, 32, 78042, 0},
		{"resnet20", 3, 32, 32, 272474, 0},
	} {
		layers, err := ParseSpec(tc.name)
		if err != nil {
			t.Fatalf("ParseSpec(%q): %v", tc.name, err)
		}
		infos, err := Spec{C: tc.c, H: tc.h, W: tc.w, Loss: SoftmaxCE, Layers: layers}.Check()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		total := 0
		for _, info := range infos {
			total += info.Params
		}
		if total != tc.params {
			t.Errorf("%s: %d parameters, want %d (PyTorch)", tc.name, total, tc.params)
		}
		if tc.layers > 0 && len(infos) != tc.layers {
			t.Errorf("%s: %d layers, want %d", tc.name, len(infos), tc.layers)
		}
		if w := WithClasses(layers, 100); w[len(w)-1].Units != 100 || layers[len(layers)-1].Units != 10 {
			t.Errorf("%s: WithClasses(100) = dense %d, original dense %d", tc.name, w[len(w)-1].Units, layers[len(layers)-1].Units)
		}
	}
}

// TestSpecNumbersAgree checks that a parse error and a shape error name a
// layer by the same number, the flatten implied before a dense layer
// counted, as in the checkpoint's layer<i> names.
func TestSpecNumbersAgree(t *testing.T) {
	_, err := ParseSpec("conv8x5x5,relu,maxpool2,dense0")
	if err == nil || !strings.Contains(err.Error(), `layer 5 "dense0"`) {
		t.Errorf("parse error %v, want it to name layer 5", err)
	}
	layers, err := ParseSpec("conv8x5x5,relu,maxpool2,dense1000000000")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Spec{C: 1, H: 28, W: 28, Loss: SoftmaxCE, Layers: layers}.Check()
	if err == nil || !strings.Contains(err.Error(), "layer 5 (dense 1000000000)") {
		t.Errorf("shape error %v, want it to name layer 5", err)
	}
}
