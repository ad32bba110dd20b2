package main

import (
	"bytes"
	"strings"
	"testing"
)

// listing is a hand-written listing in cuobjdump -sass's layout (not tool
// output): kernel a has an outer loop 0x0020–0x00b0 holding two HMMA, an
// inner loop 0x0060–0x0080 without any and a later FFMA loop with one
// FFMA; kernel b has no loop.
const listing = `
	code for sm_80
		Function : b
	.headerflags	@"EF_CUDA_SM80"
        /*0000*/                   FFMA R1, R2, R3, R4 ;                 /* 0x0 */
                                                                         /* 0x0 */
        /*0010*/                   EXIT ;                                /* 0x0 */
		Function : a
        /*0000*/                   S2R R0, SR_TID.X ;                    /* 0x0 */
        /*0010*/                   IMAD.MOV.U32 R1, RZ, RZ, c[0x0][0x28] ;   /* 0x0 */
        /*0020*/                   LDSM.16.M88.4 R4, [R2] ;              /* 0x0 */
        /*0030*/                   HMMA.16816.F32.BF16 R8, R4, R6, R8 ;  /* 0x0 */
        /*0040*/                   HMMA.16816.F32.BF16 R12, R4, R7, R12 ;    /* 0x0 */
        /*0050*/                   LDGSTS.E.BYPASS.128 [R3], [R10.64] ;  /* 0x0 */
        /*0060*/                   IADD3 R3, R3, 0x10, RZ ;              /* 0x0 */
        /*0070*/                   ISETP.GE.AND P1, PT, R3, R9, PT ;     /* 0x0 */
        /*0080*/              @P1 BRA 0x60 ;                             /* 0x0 */
        /*0090*/                   NOP ;                                 /* 0x0 */
        /*00a0*/                   BAR.SYNC.DEFER_BLOCKING 0x0 ;         /* 0x0 */
        /*00b0*/             @!P0 BRA 0x20 ;                             /* 0x0 */
        /*00c0*/                   FFMA R1, R2, R3, R4 ;                 /* 0x0 */
        /*00d0*/                   STS [R1], R2 ;                        /* 0x0 */
        /*00e0*/               @P2 BRA 0xc0 ;                            /* 0x0 */
        /*00f0*/                   EXIT ;                                /* 0x0 */
        /*0100*/                   BRA 0x100;                            /* 0x0 */
`

func TestRun(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-file", "f.ptx", "-arch", "sm_80"}, strings.NewReader(listing), &out, &errb); code != 0 {
		t.Fatalf("run = %d, stderr %q", code, errb.String())
	}
	// Kernel a's main loop 0x20–0xb0: 9 instructions (the NOP left out),
	// 2 HMMA; 1 LDSM, 1 LDGSTS, IADD3 + ISETP, 2 BRA, 1 BAR.
	want := "| f.ptx | a | sm_80 | 9 | 2 HMMA | 22.2 % | 3.50 | 0.50 | 0.50 | 0.00 | 1.00 | 1.00 | 0.50 |\n" +
		"| f.ptx | b | sm_80 | - | - | - | - | - | - | - | - | - | - |\n"
	if got := out.String(); got != want {
		t.Errorf("run output =\n%s\nwant\n%s", got, want)
	}
}

func TestMainLoopFFMA(t *testing.T) {
	// Without HMMA the unit is the FFMA; of two FFMA loops the one with more wins.
	src := `
		Function : k
        /*0000*/                   FFMA R1, R2, R3, R4 ;
        /*0010*/                   LDS R2, [R5] ;
        /*0020*/               @P0 BRA 0x0 ;
        /*0030*/                   FFMA R1, R2, R3, R4 ;
        /*0040*/                   FFMA R1, R2, R3, R4 ;
        /*0050*/                   FFMA R1, R2, R3, R4 ;
        /*0060*/                   LDS.128 R8, [R5] ;
        /*0070*/               @P1 BRA 0x30 ;
`
	ks, err := parse(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := row("f.ptx", "sm_90", ks[0].name, mainLoop(ks[0].insts)),
		"| f.ptx | k | sm_90 | 5 | 3 FFMA | 60.0 % | 0.67 | 0.33 | 0.00 | 0.00 | 0.00 | 0.33 | 0.00 |"; got != want {
		t.Errorf("row = %s, want %s", got, want)
	}
}

func TestRunErrors(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		in   string
		code int
		msg  string
	}{
		{"no-file", []string{"-arch", "sm_80"}, "", 2, "usage"},
		{"extra-arg", []string{"-file", "f", "-arch", "sm_80", "x"}, "", 2, "usage"},
		{"bad-branch", []string{"-file", "f.ptx", "-arch", "sm_80"},
			"\t\tFunction : k\n        /*0000*/   BRA R4 ;\n", 1, "kernel k: branch at 0x0: cannot read its target"},
	} {
		t.Run("case="+c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(c.args, strings.NewReader(c.in), &out, &errb)
			if code != c.code || !strings.Contains(errb.String(), c.msg) {
				t.Errorf("run = %d, stderr %q; want %d and %q", code, errb.String(), c.code, c.msg)
			}
		})
	}
}
