// Command sassmix reads the SASS disassembly of a cubin (cuobjdump -sass)
// and prints, per kernel, the instruction mix of its main loop: a proxy,
// without a GPU, for how well a kernel feeds its FMA units or tensor cores.
//
// The main loop of a kernel is the body of the backward branch (a BRA to a
// lower address: the loop's latch; the body runs from the target to the
// branch) that holds the most FFMA and HMMA instructions; among equals the
// shortest. Loops nested in it count once, as they appear. The unit of the
// mix is the HMMA when the loop has one, else the FFMA; every other class
// is given per unit:
//
//	instr    instructions in the body (NOPs excluded)
//	unit     HMMA or FFMA, and how many
//	share    units / instr
//	other    (instr − units) / units: the non-MMA (non-FFMA) instructions per unit
//	lds      shared loads (LDS, LDSM) per unit
//	ldg      global loads and cp.async (LDG, LDGSTS) per unit
//	sts      shared stores (STS) per unit
//	addr     integer and address arithmetic (IADD3, IMAD*, LEA*, SHF, LOP3, ISETP, SEL, IABS, SHL, SHR, …) per unit
//	bra      branches (BRA, BRX, JMP, …) per unit
//	sync     BAR, DEPBAR, LDGDEPBAR, WARPSYNC per unit
//
// A kernel without a loop holding an FFMA or HMMA is listed with "-".
// scripts/ptx-resources.sh runs it on every cubin ptxas 13.0 writes for
// sm_80 and sm_90 and appends the rows to kernels/RESOURCES.md.
//
// Usage:
//
//	cuobjdump -sass f.cubin | go run ./kernels/internal/sassmix -file f.ptx -arch sm_80
//
// prints one markdown table row per kernel:
//
//	| file | kernel | arch | instr | unit | share | other | lds | ldg | sts | addr | bra | sync |
//
// Exit status: 0 success, 1 unreadable input or a kernel whose branches
// cannot be parsed, 2 a usage error.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("sassmix", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("file", "", "the `name` of the PTX file in the first column")
	arch := fs.String("arch", "", "the `arch` in the third column (sm_80, …)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 || *file == "" || *arch == "" {
		fmt.Fprintln(stderr, "usage: sassmix -file NAME -arch ARCH < sass.txt")
		return 2
	}
	kernels, err := parse(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "sassmix: %s %s: %v\n", *file, *arch, err)
		return 1
	}
	for _, k := range kernels {
		fmt.Fprintln(stdout, row(*file, *arch, k.name, mainLoop(k.insts)))
	}
	return 0
}

// inst is one SASS instruction: its address, opcode (with modifiers, e.g.
// "IMAD.WIDE.U32") and branch target (-1 when not a direct branch).
type inst struct {
	addr   int64
	op     string
	target int64
}

type kernel struct {
	name  string
	insts []inst
}

var (
	funcRE = regexp.MustCompile(`^\s*Function\s*:\s*(\S+)`)
	// /*0c30*/  @!P4 BRA 0xd00 ;   or   /*0040*/  IMAD.MOV.U32 R1, RZ, RZ, c[0x0][0x28] ;
	instRE = regexp.MustCompile(`^\s*/\*([0-9a-f]+)\*/\s+(?:@!?U?P[0-9T]+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);`)
	hexRE  = regexp.MustCompile(`^\s*` + "`?" + `\(?(?:\.L_x_\d+\)?)?\s*0x([0-9a-f]+)`)
)

// parse splits cuobjdump -sass output into kernels.
func parse(r io.Reader) ([]kernel, error) {
	var out []kernel
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if m := funcRE.FindStringSubmatch(line); m != nil {
			out = append(out, kernel{name: m[1]})
			continue
		}
		m := instRE.FindStringSubmatch(line)
		if m == nil || len(out) == 0 {
			continue
		}
		addr, err := strconv.ParseInt(m[1], 16, 64)
		if err != nil {
			return nil, fmt.Errorf("address %q: %w", m[1], err)
		}
		in := inst{addr: addr, op: m[2], target: -1}
		if base(in.op) == "BRA" {
			t := strings.TrimSpace(m[3])
			// The operand is the last one: BRA 0x1620, BRA `(.L_x_3) (older), BRA !P0, 0x40.
			if i := strings.LastIndex(t, ","); i >= 0 {
				t = t[i+1:]
			}
			hm := hexRE.FindStringSubmatch(t)
			if hm == nil {
				return nil, fmt.Errorf("kernel %s: branch at 0x%x: cannot read its target %q", out[len(out)-1].name, addr, t)
			}
			if in.target, err = strconv.ParseInt(hm[1], 16, 64); err != nil {
				return nil, fmt.Errorf("kernel %s: branch at 0x%x: %w", out[len(out)-1].name, addr, err)
			}
		}
		k := &out[len(out)-1]
		k.insts = append(k.insts, in)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}

// base is the opcode without modifiers.
func base(op string) string {
	if i := strings.IndexByte(op, '.'); i >= 0 {
		return op[:i]
	}
	return op
}

// mix is the instruction counts of one loop body.
type mix struct {
	found                                             bool
	instr, ffma, hmma, lds, ldg, sts, addr, bra, sync int
}

var classes = map[string]string{
	"FFMA": "ffma", "HMMA": "hmma",
	"LDS": "lds", "LDSM": "lds",
	"LDG": "ldg", "LDGSTS": "ldg",
	"STS":   "sts",
	"IADD3": "addr", "IMAD": "addr", "LEA": "addr", "SHF": "addr", "LOP3": "addr", "ISETP": "addr",
	"SEL": "addr", "IABS": "addr", "SHL": "addr", "SHR": "addr", "IADD": "addr", "IMNMX": "addr",
	"BRA": "bra", "BRX": "bra", "JMP": "bra", "JMX": "bra", "BSSY": "bra", "BSYNC": "bra",
	"BAR": "sync", "DEPBAR": "sync", "LDGDEPBAR": "sync", "WARPSYNC": "sync",
}

// count returns the mix of insts[i:j+1].
func count(insts []inst) mix {
	var m mix
	m.found = true
	for _, in := range insts {
		b := base(in.op)
		if b == "NOP" {
			continue
		}
		m.instr++
		switch classes[b] {
		case "ffma":
			m.ffma++
		case "hmma":
			m.hmma++
		case "lds":
			m.lds++
		case "ldg":
			m.ldg++
		case "sts":
			m.sts++
		case "addr":
			m.addr++
		case "bra":
			m.bra++
		case "sync":
			m.sync++
		}
	}
	return m
}

// mainLoop returns the mix of the loop with the most FFMA + HMMA (the
// shortest among equals); found is false when no loop holds one.
func mainLoop(insts []inst) mix {
	var best mix
	bestLen := 0
	for j, in := range insts {
		if in.target < 0 || in.target > in.addr {
			continue
		}
		i := sort.Search(len(insts), func(k int) bool { return insts[k].addr >= in.target })
		if i > j {
			continue
		}
		m := count(insts[i : j+1])
		units := m.ffma + m.hmma
		if units == 0 {
			continue
		}
		bu := best.ffma + best.hmma
		if !best.found || units > bu || units == bu && j-i+1 < bestLen {
			best, bestLen = m, j-i+1
		}
	}
	return best
}

// row formats one markdown table row.
func row(file, arch, name string, m mix) string {
	if !m.found {
		return fmt.Sprintf("| %s | %s | %s | - | - | - | - | - | - | - | - | - | - |", file, name, arch)
	}
	unit, n := "FFMA", m.ffma
	if m.hmma > 0 {
		unit, n = "HMMA", m.hmma
	}
	per := func(c int) string { return strconv.FormatFloat(float64(c)/float64(n), 'f', 2, 64) }
	share := strconv.FormatFloat(100*float64(n)/float64(m.instr), 'f', 1, 64) + " %"
	return fmt.Sprintf("| %s | %s | %s | %d | %d %s | %s | %s | %s | %s | %s | %s | %s | %s |",
		file, name, arch, m.instr, n, unit, share, per(m.instr-n), per(m.lds), per(m.ldg), per(m.sts), per(m.addr), per(m.bra), per(m.sync))
}
