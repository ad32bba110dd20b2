package ptxsim

import (
	"fmt"
	"strconv"
	"strings"
)

// token is a lexical token of PTX text.
type token struct {
	s    string
	line int
}

// lex splits PTX text into tokens, dropping comments.
func lex(src string) ([]token, error) {
	var toks []token
	line := 1
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '/' && i+1 < len(src) && src[i+1] == '/':
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			j := strings.Index(src[i+2:], "*/")
			if j < 0 {
				return nil, fmt.Errorf("line %d: unterminated comment", line)
			}
			line += strings.Count(src[i:i+2+j+2], "\n")
			i += 2 + j + 2
		case c == '"':
			j := strings.IndexByte(src[i+1:], '"')
			if j < 0 {
				return nil, fmt.Errorf("line %d: unterminated string", line)
			}
			toks = append(toks, token{src[i : i+2+j], line})
			i += 2 + j
		case isWordChar(c):
			j := i
			for j < len(src) {
				if isWordChar(src[j]) {
					j++
				} else if src[j] == ':' && j+2 < len(src) && src[j+1] == ':' && isWordChar(src[j+2]) {
					j += 2 // a sub-qualifier: .shared::cta, .L2::128B
				} else {
					break
				}
			}
			toks = append(toks, token{src[i:j], line})
			i = j
		default:
			toks = append(toks, token{src[i : i+1], line})
			i++
		}
	}
	return toks, nil
}

func isWordChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '_' || c == '$' || c == '%' || c == '.'
}

// operand kinds of a parsed instruction.
const (
	okReg  = iota // register or special register (name)
	okImm         // integer immediate (ival) or float bits (fbits with isF)
	okAddr        // [name+off] or [off]
	okVec         // {a, b, ...}
	okSym         // label, variable, function or parameter name
	okSink        // _
)

type operand struct {
	kind int
	name string // register/symbol name; address base ("" for absolute)
	ival int64  // immediate or address offset
	// float immediates: 0f (f32 bits) and 0d (f64 bits)
	fkind byte // 0, 'f', 'd'
	neg   bool // !%p
	vec   []operand
}

// stmt is an instruction of a function body.
type stmt struct {
	line   int
	text   string
	guard  string // predicate register, "" if none
	gneg   bool
	opcode string
	ops    []operand
	// source position from .loc (0 when unknown)
	srcFile, srcLine int
}

// varDecl is a .shared/.local/.global/.param/.reg declaration.
type varDecl struct {
	space  string // "shared", "local", "global", "const", "param"
	typ    string // "b8", "f32", ...
	align  int
	name   string
	count  int // array elements (1 for scalars); -1 for an unsized extern array
	extern bool
	line   int
	init   []operand // initialiser of a .const variable
}

type regDecl struct {
	typ   string
	name  string
	count int // -1: single register named name; n: name0..name(n-1)
}

type function struct {
	name   string
	entry  bool
	params []varDecl
	rets   []varDecl
	regs   []regDecl
	vars   []varDecl // .local and .shared declared in the body
	labels map[string]int
	body   []stmt
	line   int
	proto  bool // declaration without a body
}

type module struct {
	files   map[int]string // .file index → path
	version string
	target  string
	vars    []varDecl // module-level .shared/.global/.const
	funcs   []*function
}

type parser struct {
	toks []token
	pos  int
	src  []string // source lines for messages
}

func (p *parser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos].s
	}
	return ""
}

func (p *parser) line() int {
	if p.pos < len(p.toks) {
		return p.toks[p.pos].line
	}
	if len(p.toks) > 0 {
		return p.toks[len(p.toks)-1].line
	}
	return 0
}

// skipLine skips the tokens on line l.
func (p *parser) skipLine(l int) {
	for p.pos < len(p.toks) && p.toks[p.pos].line == l {
		p.pos++
	}
}

func (p *parser) next() string {
	s := p.peek()
	p.pos++
	return s
}

func (p *parser) errf(format string, args ...any) error {
	l := p.line()
	txt := ""
	if l >= 1 && l <= len(p.src) {
		txt = strings.TrimSpace(p.src[l-1])
	}
	return fmt.Errorf("line %d: %s: %q", l, fmt.Sprintf(format, args...), txt)
}

func (p *parser) expect(s string) error {
	if p.peek() != s {
		return p.errf("expected %q, found %q", s, p.peek())
	}
	p.pos++
	return nil
}

func parseModule(src string) (*module, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, src: strings.Split(src, "\n")}
	mod := &module{files: map[int]string{}}
	for p.pos < len(p.toks) {
		t := p.peek()
		switch t {
		case ".file":
			l := p.line()
			p.next()
			n, err := strconv.Atoi(p.next())
			if err == nil && strings.HasPrefix(p.peek(), "\"") {
				mod.files[n] = strings.Trim(p.peek(), "\"")
			}
			p.skipLine(l)
		case ".section":
			p.next()
			p.next()
			if err := p.expect("{"); err != nil {
				return nil, err
			}
			for depth := 1; depth > 0; {
				if p.pos >= len(p.toks) {
					return nil, p.errf("unterminated .section")
				}
				switch p.next() {
				case "{":
					depth++
				case "}":
					depth--
				}
			}
		case ".version":
			p.next()
			mod.version = p.next()
		case ".target":
			p.next()
			mod.target = p.next()
			for p.peek() == "," {
				p.next()
				p.next()
			}
		case ".address_size":
			p.next()
			if a := p.next(); a != "64" {
				return nil, p.errf("unsupported .address_size %s", a)
			}
		case ".visible", ".extern", ".weak", ".entry", ".func", ".shared", ".global", ".const":
			if err := p.topDecl(mod); err != nil {
				return nil, err
			}
		case ";":
			p.next()
		default:
			return nil, p.errf("unsupported directive %q", t)
		}
	}
	return mod, nil
}

func (p *parser) topDecl(mod *module) error {
	extern := false
	for p.peek() == ".visible" || p.peek() == ".extern" || p.peek() == ".weak" {
		if p.next() == ".extern" {
			extern = true
		}
	}
	switch p.peek() {
	case ".entry", ".func":
		return p.funcDecl(mod)
	case ".shared", ".global", ".const":
		v, err := p.varDecl()
		if err != nil {
			return err
		}
		v.extern = extern
		mod.vars = append(mod.vars, v)
		return nil
	}
	return p.errf("unsupported declaration %q", p.peek())
}

// varDecl parses "<space> [.align N] [.vN] .type name[[N]] [= {...}];".
func (p *parser) varDecl() (varDecl, error) {
	v := varDecl{line: p.line(), count: 1}
	v.space = strings.TrimPrefix(p.next(), ".")
	for {
		t := p.peek()
		if t == ".align" {
			p.next()
			n, err := strconv.Atoi(p.next())
			if err != nil {
				return v, p.errf("bad .align")
			}
			v.align = n
			continue
		}
		if strings.HasPrefix(t, ".v") {
			return v, p.errf("unsupported vector variable declaration %s", t)
		}
		if strings.HasPrefix(t, ".") {
			if typeSize(t[1:]) == 0 {
				return v, p.errf("unsupported type %s in declaration", t)
			}
			v.typ = t[1:]
			p.next()
			break
		}
		return v, p.errf("expected a type in declaration, found %q", t)
	}
	// kernel pointer parameters may carry ".ptr [.space] [.align N]"
	if p.peek() == ".ptr" {
		p.next()
		for {
			switch p.peek() {
			case ".global", ".shared", ".const", ".local":
				p.next()
				continue
			case ".align":
				p.next()
				p.next()
				continue
			}
			break
		}
	}
	v.name = p.next()
	if p.peek() == "[" {
		p.next()
		if p.peek() == "]" {
			v.count = -1
		} else {
			n, err := strconv.Atoi(p.next())
			if err != nil {
				return v, p.errf("bad array size")
			}
			v.count = n
		}
		if err := p.expect("]"); err != nil {
			return v, err
		}
		if p.peek() == "[" {
			return v, p.errf("multi-dimensional arrays are not supported")
		}
	}
	if p.peek() == "=" {
		p.next()
		if v.space != "const" && v.space != "global" {
			return v, p.errf("initialised .%s variables are not supported", v.space)
		}
		if p.peek() == "{" {
			p.next()
			for p.peek() != "}" {
				if p.peek() == "{" {
					return v, p.errf("nested initialisers are not supported")
				}
				neg := false
				if p.peek() == "-" {
					p.next()
					neg = true
				}
				o, err := p.number(neg)
				if err != nil {
					return v, err
				}
				v.init = append(v.init, o)
				if p.peek() == "," {
					p.next()
				}
			}
			p.next()
		} else {
			neg := false
			if p.peek() == "-" {
				p.next()
				neg = true
			}
			o, err := p.number(neg)
			if err != nil {
				return v, err
			}
			v.init = append(v.init, o)
		}
	}
	if v.align == 0 {
		v.align = typeSize(v.typ)
	}
	return v, nil
}

func (p *parser) paramList() ([]varDecl, error) {
	var ps []varDecl
	if err := p.expect("("); err != nil {
		return nil, err
	}
	for p.peek() != ")" {
		if p.peek() != ".param" && p.peek() != ".reg" {
			return nil, p.errf("expected .param, found %q", p.peek())
		}
		if p.peek() == ".reg" {
			return nil, p.errf("register parameters are not supported")
		}
		v, err := p.varDecl()
		if err != nil {
			return nil, err
		}
		ps = append(ps, v)
		if p.peek() == "," {
			p.next()
		}
	}
	p.next()
	return ps, nil
}

func (p *parser) funcDecl(mod *module) error {
	f := &function{line: p.line(), labels: map[string]int{}}
	f.entry = p.next() == ".entry"
	if p.peek() == "(" {
		rets, err := p.paramList()
		if err != nil {
			return err
		}
		f.rets = rets
	}
	f.name = p.next()
	if p.peek() == "(" {
		ps, err := p.paramList()
		if err != nil {
			return err
		}
		f.params = ps
	}
	// performance directives
	for strings.HasPrefix(p.peek(), ".") {
		switch p.next() {
		case ".maxntid", ".reqntid", ".minnctapersm", ".maxnreg", ".maxclusterrank", ".reqnctapercluster", ".noreturn":
			for p.peek() != "{" && p.peek() != ";" && p.peek() != "" && !strings.HasPrefix(p.peek(), ".") {
				p.next()
			}
		default:
			p.pos--
			return p.errf("unsupported function directive %q", p.peek())
		}
	}
	if p.peek() == ";" {
		p.next()
		f.proto = true
		mod.funcs = append(mod.funcs, f)
		return nil
	}
	if err := p.expect("{"); err != nil {
		return err
	}
	// Nested { } scopes (clang's call sequences and inline asm blocks) may
	// redeclare registers and parameters: names declared in a nested scope
	// are renamed to be unique in the function.
	scopes := []map[string]string{{}}
	uniq := 0
	locFile, locLine := 0, 0 // source position of .loc
	rename := func(n string) string {
		for i := len(scopes) - 1; i >= 0; i-- {
			if r, ok := scopes[i][n]; ok {
				return r
			}
		}
		return n
	}
	declare := func(n string) string {
		if len(scopes) == 1 {
			return n
		}
		uniq++
		r := fmt.Sprintf("%s@%d", n, uniq)
		scopes[len(scopes)-1][n] = r
		return r
	}
	for len(scopes) > 0 {
		if p.pos >= len(p.toks) {
			return p.errf("unterminated function body of %s", f.name)
		}
		t := p.peek()
		switch {
		case t == "{":
			p.next()
			scopes = append(scopes, map[string]string{})
		case t == "}":
			p.next()
			scopes = scopes[:len(scopes)-1]
		case t == ";":
			p.next()
		case t == ".reg":
			n := len(f.regs)
			if err := p.regDecl(f); err != nil {
				return err
			}
			if len(scopes) > 1 {
				// expand counted declarations so each name can be renamed
				var regs []regDecl
				for _, r := range f.regs[n:] {
					if r.count < 0 {
						regs = append(regs, regDecl{r.typ, declare(r.name), -1})
						continue
					}
					for i := 0; i < r.count; i++ {
						regs = append(regs, regDecl{r.typ, declare(r.name + strconv.Itoa(i)), -1})
					}
				}
				f.regs = append(f.regs[:n], regs...)
			}
		case t == ".local" || t == ".shared" || t == ".param":
			v, err := p.varDecl()
			if err != nil {
				return err
			}
			v.name = declare(v.name)
			f.vars = append(f.vars, v)
		case t == ".pragma":
			p.next()
			p.next()
		case t == ".loc":
			l := p.line()
			p.next()
			file, err1 := strconv.Atoi(p.next())
			ln, err2 := strconv.Atoi(p.next())
			if err1 == nil && err2 == nil {
				locFile, locLine = file, ln
			}
			p.skipLine(l)
		case strings.HasPrefix(t, ".") && t != ".":
			return p.errf("unsupported directive %q", t)
		case p.pos+1 < len(p.toks) && p.toks[p.pos+1].s == ":" && t != "@":
			f.labels[t] = len(f.body)
			p.pos += 2
		default:
			s, err := p.instruction()
			if err != nil {
				return err
			}
			s.srcFile, s.srcLine = locFile, locLine
			if len(scopes) > 1 {
				s.guard = rename(s.guard)
				for i := range s.ops {
					renameOperand(&s.ops[i], rename)
				}
			}
			f.body = append(f.body, s)
		}
	}
	mod.funcs = append(mod.funcs, f)
	return nil
}

func (p *parser) regDecl(f *function) error {
	p.next()
	t := p.next()
	if strings.HasPrefix(t, ".v") {
		return p.errf("vector registers are not supported")
	}
	if !strings.HasPrefix(t, ".") || typeSize(t[1:]) == 0 && t != ".pred" {
		return p.errf("bad register type %q", t)
	}
	typ := t[1:]
	for {
		name := p.next()
		if name == "" || !isWordChar(name[0]) || name[0] >= '0' && name[0] <= '9' {
			return p.errf("bad register name %q", name)
		}
		if p.peek() == "<" {
			p.next()
			n, err := strconv.Atoi(p.next())
			if err != nil {
				return p.errf("bad register count")
			}
			if err := p.expect(">"); err != nil {
				return err
			}
			f.regs = append(f.regs, regDecl{typ, name, n})
		} else {
			f.regs = append(f.regs, regDecl{typ, name, -1})
		}
		if p.peek() != "," {
			break
		}
		p.next()
	}
	return p.expect(";")
}

func (p *parser) instruction() (stmt, error) {
	s := stmt{line: p.line()}
	if s.line >= 1 && s.line <= len(p.src) {
		s.text = strings.TrimSpace(p.src[s.line-1])
	}
	if p.peek() == "@" {
		p.next()
		if p.peek() == "!" {
			p.next()
			s.gneg = true
		}
		s.guard = p.next()
	}
	s.opcode = p.next()
	if s.opcode == "" || !isWordChar(s.opcode[0]) {
		return s, p.errf("expected an instruction, found %q", s.opcode)
	}
	for p.peek() != ";" {
		if p.pos >= len(p.toks) {
			return s, p.errf("missing ';'")
		}
		op, err := p.operand()
		if err != nil {
			return s, err
		}
		if p.peek() == "|" {
			p.next()
			op2, err := p.operand()
			if err != nil {
				return s, err
			}
			op = operand{kind: okVec, name: "|", vec: []operand{op, op2}}
		}
		s.ops = append(s.ops, op)
		if p.peek() == "," {
			p.next()
		} else if p.peek() != ";" {
			return s, p.errf("unexpected %q in operands", p.peek())
		}
	}
	p.next()
	return s, nil
}

func (p *parser) operand() (operand, error) {
	t := p.peek()
	switch {
	case t == "[":
		p.next()
		o := operand{kind: okAddr}
		if p.peek() != "]" && !isNumStart(p.peek()) && p.peek() != "-" {
			o.name = p.next()
		}
		for p.peek() != "]" {
			sign := int64(1)
			if p.peek() == "+" {
				p.next()
			}
			if p.peek() == "-" {
				p.next()
				sign = -1
			}
			n, err := parseInt(p.next())
			if err != nil {
				return o, p.errf("bad address offset")
			}
			o.ival += sign * n
		}
		p.next()
		return o, nil
	case t == "{" || t == "(":
		p.next()
		closer := "}"
		o := operand{kind: okVec}
		if t == "(" {
			closer = ")"
			o.name = "("
		}
		for p.peek() != closer {
			e, err := p.operand()
			if err != nil {
				return o, err
			}
			o.vec = append(o.vec, e)
			if p.peek() == "," {
				p.next()
			} else if p.peek() != closer {
				return o, p.errf("bad vector operand")
			}
		}
		p.next()
		return o, nil
	case t == "!":
		p.next()
		o, err := p.operand()
		o.neg = true
		return o, err
	case t == "-" || isNumStart(t):
		neg := false
		if t == "-" {
			p.next()
			neg = true
		}
		return p.number(neg)
	case t == "_":
		p.next()
		return operand{kind: okSink}, nil
	case strings.HasPrefix(t, "%"):
		p.next()
		return operand{kind: okReg, name: t}, nil
	case t != "" && isWordChar(t[0]):
		p.next()
		o := operand{kind: okSym, name: t}
		if p.peek() == "+" { // symbol+offset as an immediate (mov.u64 %rd, sym+8)
			p.next()
			n, err := parseInt(p.next())
			if err != nil {
				return o, p.errf("bad symbol offset")
			}
			o.ival = n
		}
		return o, nil
	}
	return operand{}, p.errf("unexpected %q in operands", t)
}

func isNumStart(s string) bool { return s != "" && s[0] >= '0' && s[0] <= '9' }

func (p *parser) number(neg bool) (operand, error) {
	t := p.next()
	o := operand{kind: okImm}
	if len(t) > 2 && t[0] == '0' && (t[1] == 'f' || t[1] == 'F') && len(t) == 10 {
		v, err := strconv.ParseUint(t[2:], 16, 32)
		if err != nil {
			return o, p.errf("bad f32 literal %s", t)
		}
		o.fkind, o.ival = 'f', int64(v)
		if neg {
			o.ival ^= 1 << 31
		}
		return o, nil
	}
	if len(t) > 2 && t[0] == '0' && (t[1] == 'd' || t[1] == 'D') && len(t) == 18 {
		v, err := strconv.ParseUint(t[2:], 16, 64)
		if err != nil {
			return o, p.errf("bad f64 literal %s", t)
		}
		o.fkind, o.ival = 'd', int64(v)
		if neg {
			o.ival ^= -1 << 63
		}
		return o, nil
	}
	if strings.ContainsAny(t, ".eE") && !strings.HasPrefix(t, "0x") && !strings.HasPrefix(t, "0X") {
		f, err := strconv.ParseFloat(t, 64)
		if err != nil {
			return o, p.errf("bad float literal %s", t)
		}
		if neg {
			f = -f
		}
		o.fkind = 'F' // decimal float: typed by the instruction
		o.ival = int64(f64bits(f))
		return o, nil
	}
	n, err := parseInt(t)
	if err != nil {
		return o, p.errf("bad integer literal %s", t)
	}
	if neg {
		n = -n
	}
	o.ival = n
	return o, nil
}

func parseInt(t string) (int64, error) {
	t = strings.TrimSuffix(t, "U")
	if strings.HasPrefix(t, "0x") || strings.HasPrefix(t, "0X") {
		u, err := strconv.ParseUint(t[2:], 16, 64)
		return int64(u), err
	}
	if len(t) > 1 && t[0] == '0' && strings.Trim(t, "01234567") == "" {
		u, err := strconv.ParseUint(t[1:], 8, 64)
		return int64(u), err
	}
	u, err := strconv.ParseUint(t, 10, 64)
	return int64(u), err
}

// typeSize is the size in bytes of a PTX fundamental type, 0 if unknown.
func typeSize(t string) int {
	switch t {
	case "b8", "u8", "s8":
		return 1
	case "b16", "u16", "s16", "f16", "bf16":
		return 2
	case "b32", "u32", "s32", "f32", "f16x2", "bf16x2", "tf32":
		return 4
	case "b64", "u64", "s64", "f64":
		return 8
	case "b128":
		return 16
	case "pred":
		return 1
	}
	return 0
}

func renameOperand(o *operand, rename func(string) string) {
	o.name = rename(o.name)
	for i := range o.vec {
		renameOperand(&o.vec[i], rename)
	}
}
