package nn

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// DefaultSpecText is the default network, DefaultSpec().Layers, in the
// text form of ParseSpec.
const DefaultSpecText = "conv8x5x5,relu,maxpool2,conv16x5x5,relu,maxpool2,flatten,dense10"

// ParseSpec parses a model's layers from their compact text form, as given
// to the -model flag or read from a model file, or the name of one of the
// Presets (lenet, resnet8, resnet20). Layers are separated by commas or
// line breaks, in order from the input to the class scores:
//
//	spec    = layer { ("," | newline) layer } .
//	layer   = conv | "relu" | maxpool | avgpool | "gap" | "bn" | "flatten" | dense | res .
//	conv    = "conv" K "x" R "x" S [ "s" pair ] [ "p" pair ] [ "nobias" ] .   K filters of R×S
//	maxpool = "maxpool" R [ "x" S ] [ "s" pair ] .               window R×S (S = R)
//	avgpool = "avgpool" R [ "x" S ] [ "s" pair ] [ "p" pair ] .  padded zeros count
//	dense   = "dense" units [ "nobias" ] .
//	res     = "res(" spec [ "|" spec ] ")" .                     main branch | shortcut (identity if absent)
//	pair    = n [ "x" m ] .                                      n×m; m = n if omitted
//
// Each layer kind is described in its file (layer_<kind>.go): bn is
// BatchNorm, gap global average pooling, res a residual block.
//
// where K, R, S, units and strides are integers ≥ 1 and pads integers ≥ 0.
// A convolution's stride "s" defaults to 1 and its zero padding "p" to 0,
// both per axis (height × width); a max-pool's stride defaults to its
// window. The options may come in either order, each at most once. Case
// does not matter, "×" may stand for "x", white space may separate any two
// tokens, empty layers (",," or blank lines) are skipped and "#" starts a
// comment that runs to the end of the line. Examples:
//
//	conv8x5x5,relu,maxpool2,conv16x5x5,relu,maxpool2,flatten,dense10   the default
//	conv8x5x5, relu, maxpool2, conv16x5x5, relu, maxpool2, dense10    the same
//	conv32x3x3p1,relu,conv32x3x3s2p1,relu,maxpool3s2,dense128,relu,dense10
//	conv16x7x1p3x0,relu,maxpool2x1,dense10                            asymmetric
//	dense256,relu,dense10                                             an MLP
//
// Flatten is implicit: before a dense layer whose input is still an image
// (after a conv or max-pool, or at the model's input), ParseSpec inserts a
// Flatten layer, so the second example gives the same layers as the first.
// Strides equal to their default are stored as 0, as ConvLayer and
// PoolLayer do.
//
// The layers returned are well-formed but not checked against an input
// size; InferShapes (or Spec.Check) does that, numbering the layers as
// FormatSpec writes them, with every Flatten explicit. ParseSpec's own
// errors wrap ErrSpec and name the layer by the same number (1-based,
// blank layers not counted, a flatten implied before a dense layer counted
// as a layer, as in checkpoints' layer<i> names) and its text, and say why:
// a syntax error, a number out of range, a conv or max-pool after the input
// was flattened, or a last layer that is not dense.
func ParseSpec(text string) ([]LayerSpec, error) {
	if preset, ok := Presets[strings.ToLower(strings.TrimSpace(text))]; ok {
		text = preset
	}
	var lines []string
	for _, line := range strings.Split(text, "\n") {
		line, _, _ = strings.Cut(line, "#")
		lines = append(lines, line)
	}
	p := &seqParser{}
	layers, _, err := p.seq(strings.Join(lines, "\n"), false)
	if err != nil {
		return nil, err
	}
	if p.n == 0 {
		return nil, fmt.Errorf("host: model spec: no layers in %q (a spec such as %s, or a preset: %s): %w", text, DefaultSpecText, presetNames(), ErrSpec)
	}
	if k := layers[len(layers)-1].Kind; k != Dense {
		return nil, fmt.Errorf("host: model spec: layer %d %q: the last layer must be dense, giving one score per class, not %v: %w", p.n, p.last, k, ErrSpec)
	}
	return layers, nil
}

// seqParser parses sequences of layers, numbering them as written.
type seqParser struct {
	n    int    // layers read so far
	last string // the text of the last top-level layer
}

// seq parses a sequence of layers separated by commas or line breaks at
// the top level of text (not inside a block's parentheses), starting on a
// flat input when flat is set, and says whether its output is flat.
func (p *seqParser) seq(text string, flat bool) ([]LayerSpec, bool, error) {
	var layers []LayerSpec
	items, err := splitTop(text, ",\n")
	if err != nil {
		return nil, flat, fmt.Errorf("host: model spec: %v: %w", err, ErrSpec)
	}
	for _, item := range items {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p.n++
		if toks, err := specTokens(item); err == nil && len(toks) > 0 && !flat {
			if m := moduleNamed(toks[0].word); m != nil && m.in == flatInput {
				p.n++ // the flatten implied before it is a layer too, as Check and checkpoints number them
			}
		}
		n := p.n
		p.last = item
		if open := strings.IndexByte(item, '('); open >= 0 {
			l, out, err := p.block(item, open, flat)
			if err != nil {
				return nil, flat, err
			}
			layers, flat = append(layers, l), out
			continue
		}
		l, err := specParseLayer(item)
		if err != nil {
			return nil, flat, fmt.Errorf("host: model spec: layer %d %q: %v: %w", n, item, err, ErrSpec)
		}
		m := kindModules[l.Kind]
		switch {
		case m.in == imageInput && flat:
			return nil, flat, fmt.Errorf("host: model spec: layer %d %q: a %v needs an image, but the input was flattened before it; put convolutions and pools before flatten and dense: %w", n, item, l.Kind, ErrSpec)
		case m.in == flatInput && !flat:
			layers = append(layers, LayerSpec{Kind: Flatten})
		}
		flat = flat || m.flattens
		layers = append(layers, l)
	}
	return layers, flat, nil
}

// block parses a layer with branches, name(<layers>|<layers>…), whose
// opening parenthesis is at item[open].
func (p *seqParser) block(item string, open int, flat bool) (LayerSpec, bool, error) {
	n := p.n
	name := strings.ToLower(strings.TrimSpace(item[:open]))
	m := moduleNamed(name)
	if m == nil || (m.kind != Residual && m.kind != Concat) {
		return LayerSpec{}, flat, fmt.Errorf("host: model spec: layer %d %q: %q does not take branches in parentheses; res(…) and cat(…) do: %w", n, item, name, ErrSpec)
	}
	if m.kind == Concat && flat {
		return LayerSpec{}, flat, fmt.Errorf("host: model spec: layer %d %q: a cat needs an image, but the input was flattened before it: %w", n, item, ErrSpec)
	}
	if !strings.HasSuffix(item, ")") {
		return LayerSpec{}, flat, fmt.Errorf("host: model spec: layer %d %q: text after the closing parenthesis; want %s: %w", n, item, m.form, ErrSpec)
	}
	branches, err := splitTop(item[open+1:len(item)-1], "|")
	if err != nil {
		return LayerSpec{}, flat, fmt.Errorf("host: model spec: layer %d %q: %v: %w", n, item, err, ErrSpec)
	}
	if m.kind == Residual && len(branches) > 2 {
		return LayerSpec{}, flat, fmt.Errorf("host: model spec: layer %d %q: %d branches; want %s: %w", n, item, len(branches), m.form, ErrSpec)
	}
	l := LayerSpec{Kind: m.kind}
	out := flat
	for i, br := range branches {
		layers, f, err := p.seq(br, flat)
		if err != nil {
			return l, flat, err
		}
		if m.kind == Concat {
			if f {
				return l, flat, fmt.Errorf("host: model spec: layer %d %q: branch %d flattens the image; want %s: %w", n, item, i+1, m.form, ErrSpec)
			}
		} else if i == 0 {
			if len(layers) == 0 {
				return l, flat, fmt.Errorf("host: model spec: layer %d %q: an empty main branch; want %s: %w", n, item, m.form, ErrSpec)
			}
			out = f
		}
		l.Branches = append(l.Branches, layers)
	}
	if m.kind == Residual && len(l.Branches) == 2 && len(l.Branches[1]) == 0 {
		l.Branches = l.Branches[:1] // an empty shortcut is the identity
	}
	p.last = item
	return l, out, nil
}

// splitTop splits text at the separator characters seps outside
// parentheses; unbalanced parentheses are an error.
func splitTop(text, seps string) ([]string, error) {
	var parts []string
	depth, start := 0, 0
	for i, r := range text {
		switch {
		case r == '(':
			depth++
		case r == ')':
			if depth--; depth < 0 {
				return nil, fmt.Errorf("a \")\" without its \"(\"")
			}
		case depth == 0 && strings.ContainsRune(seps, r):
			parts = append(parts, text[start:i])
			start = i + 1
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("a \"(\" without its \")\"")
	}
	return append(parts, text[start:]), nil
}

// specToken is a word (lower-case letters) or a number of a layer's text.
type specToken struct {
	word  string
	num   int
	isNum bool
}

func (t specToken) String() string {
	if t.isNum {
		return strconv.Itoa(t.num)
	}
	return fmt.Sprintf("%q", t.word)
}

// specTokens splits one layer's text into words and numbers.
func specTokens(s string) ([]specToken, error) {
	var toks []specToken
	rs := []rune(strings.ToLower(s))
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case unicode.IsSpace(r):
			i++
		case r == '×':
			toks = append(toks, specToken{word: "x"})
			i++
		case r >= 'a' && r <= 'z':
			j := i
			for j < len(rs) && rs[j] >= 'a' && rs[j] <= 'z' {
				j++
			}
			toks = append(toks, specToken{word: string(rs[i:j])})
			i = j
		case r >= '0' && r <= '9':
			j := i
			for j < len(rs) && rs[j] >= '0' && rs[j] <= '9' {
				j++
			}
			v, err := strconv.ParseInt(string(rs[i:j]), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("number %s is too large (the limit is %d)", string(rs[i:j]), 1<<31-1)
			}
			toks = append(toks, specToken{num: int(v), isNum: true})
			i = j
		default:
			return nil, fmt.Errorf("unexpected character %q", r)
		}
	}
	return toks, nil
}

// specParser reads the tokens of one layer.
type specParser struct {
	toks []specToken
	pos  int
	mod  *kindModule
}

func (p *specParser) bad(format string, a ...any) error {
	return fmt.Errorf("%s; want %s", fmt.Sprintf(format, a...), p.mod.form)
}

func (p *specParser) peekWord(w string) bool {
	return p.pos < len(p.toks) && !p.toks[p.pos].isNum && p.toks[p.pos].word == w
}

// number reads a number ≥ lo, what naming it in errors.
func (p *specParser) number(what string, lo int) (int, error) {
	if p.pos >= len(p.toks) {
		return 0, p.bad("missing %s at the end", what)
	}
	t := p.toks[p.pos]
	if !t.isNum {
		return 0, p.bad("%v where the %s should be", t, what)
	}
	if t.num < lo {
		return 0, p.bad("%s %d must be ≥ %d", what, t.num, lo)
	}
	p.pos++
	return t.num, nil
}

// pair reads n ["x" m], with m = n when omitted.
func (p *specParser) pair(what string, lo int) (int, int, error) {
	a, err := p.number(what, lo)
	if err != nil {
		return 0, 0, err
	}
	if !p.peekWord("x") {
		return a, a, nil
	}
	p.pos++
	b, err := p.number(what+" width", lo)
	return a, b, err
}

// dims reads n "x" m, both required.
func (p *specParser) dims(first, second string) (int, int, error) {
	a, err := p.number(first, 1)
	if err != nil {
		return 0, 0, err
	}
	if !p.peekWord("x") {
		if p.pos < len(p.toks) {
			return 0, 0, p.bad("%v after the %s, want \"x\" and the %s", p.toks[p.pos], first, second)
		}
		return 0, 0, p.bad("missing \"x\" and the %s", second)
	}
	p.pos++
	b, err := p.number(second, 1)
	return a, b, err
}

// specParseLayer parses one layer's text (a layer without branches).
func specParseLayer(text string) (LayerSpec, error) {
	toks, err := specTokens(text)
	if err != nil {
		return LayerSpec{}, err
	}
	if len(toks) == 0 || toks[0].isNum {
		return LayerSpec{}, fmt.Errorf("a layer starts with its kind: %s", kindNames())
	}
	m := moduleNamed(toks[0].word)
	if m == nil {
		return LayerSpec{}, fmt.Errorf("unknown layer kind %q (want %s)", toks[0].word, kindNames())
	}
	l := LayerSpec{Kind: m.kind}
	p := &specParser{toks: toks, pos: 1, mod: m}
	if m.kind == Residual || m.kind == Concat {
		return l, p.bad("its branches go in parentheses")
	}
	if m.parse != nil {
		if err := m.parse(p, &l); err != nil {
			return l, err
		}
	}
	if p.pos < len(p.toks) {
		t := p.toks[p.pos]
		if !t.isNum && moduleNamed(t.word) != nil {
			return l, p.bad("unexpected %v (a missing comma?)", t)
		}
		return l, p.bad("unexpected %v", t)
	}
	return l, nil
}

// flag reads the option word w when it comes next, and says whether it did.
func (p *specParser) flag(w string) bool {
	if p.peekWord(w) {
		p.pos++
		return true
	}
	return false
}

// options reads the stride and, when pad is set, padding options.
func (p *specParser) options(l *LayerSpec, pad bool) error {
	seen := map[string]bool{}
	for p.pos < len(p.toks) {
		t := p.toks[p.pos]
		if t.isNum || !(t.word == "s" || (pad && t.word == "p")) {
			return nil // the caller reports what is left
		}
		if seen[t.word] {
			return p.bad("option %v given twice", t)
		}
		seen[t.word] = true
		p.pos++
		var err error
		if t.word == "s" {
			l.StrideH, l.StrideW, err = p.pair("stride", 1)
		} else {
			l.PadH, l.PadW, err = p.pair("padding", 0)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// FormatSpec writes layers in the canonical text form of ParseSpec: comma
// separated, lower case, no spaces, every Flatten explicit, options only
// where they differ from their defaults, a pair as one number when both
// axes agree. For layers that ParseSpec returned,
//
//	ParseSpec(FormatSpec(layers)) == layers
//
// and for any well-formed layers the result means the same network. Fields
// that a kind does not use are not written; values that ParseSpec would
// reject (a zero size, a negative pad, padding on a max-pool) are written
// as they are, so that parsing the result reports them.
func FormatSpec(layers []LayerSpec) string {
	parts := make([]string, len(layers))
	for i, l := range layers {
		parts[i] = specFormatLayer(l)
	}
	return strings.Join(parts, ",")
}

func specFormatLayer(l LayerSpec) string {
	if m := kindModules[l.Kind]; m != nil && m.format != nil {
		return m.format(l)
	}
	return l.Kind.String()
}

// InferShapes checks layers on inputs of c×h×w and a data set of classes
// classes, and returns each layer's input and output shape and parameter
// count (see Spec.Check, whose errors name the layer as FormatSpec numbers
// it and say why). It is also an error, wrapping ErrSpec, when the last
// layer's width is not classes.
func InferShapes(layers []LayerSpec, c, h, w, classes int) ([]LayerInfo, error) {
	infos, err := Spec{C: c, H: h, W: w, Layers: layers, Loss: SoftmaxCE}.Check()
	if err != nil {
		return nil, err
	}
	if out := infos[len(infos)-1].Out.C; out != classes {
		return nil, fmt.Errorf("host: layer %d (%v): %d outputs, but the data has %d classes: %w",
			len(layers), layers[len(layers)-1], out, classes, ErrSpec)
	}
	return infos, nil
}
