package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMessagesGolden runs the common mistakes through the command and
// compares the exit status and the line printed (userMessage: what, where,
// what to do) with testdata/messages.golden, the temporary paths written
// as $DATA (a synthetic data directory), $CKPT (a finished 2-epoch
// checkpoint of it) and $TMP. go test -run TestMessagesGolden -update
// rewrites the file; review its diff.
func TestMessagesGolden(t *testing.T) {
	dataDir, ckptPath, _ := trainedCheckpoint(t)
	tmp := t.TempDir()
	text := filepath.Join(tmp, "text.png")
	if err := os.WriteFile(text, []byte("this is not an image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	expand := func(s string) string {
		return strings.NewReplacer("$DATA", dataDir, "$CKPT", ckptPath, "$TMP", tmp).Replace(s)
	}
	cases := [][]string{
		{"frobnicate"},
		{"-epochs", "0"},
		{"-epochs", "three"},
		{"-batch", "0"},
		{"-lr", "1e300"},
		{"-loss", "hinge"},
		{"-device", "tpu"},
		{"-model", ""},
		{"-model", "conv3x3"},
		{"-model", "conv8x5x5,relu,maxpool2,dense10,bogus"},
		{"-model", "@$TMP/none.txt"},
		{"-model", "@/dev/zero"},
		{"-model", "@$DATA/train-images-idx3-ubyte.gz"},
		{"-data", "$DATA", "-model", "dense7"},
		{"-data", "$DATA", "-model", "conv8x30x30,relu,dense10"},
		{"-data", "$TMP/nodir"},
		{"-data", "$DATA", "-limit", "10", "-batch", "32"},
		{"-save-every", "5"},
		{"-augment", "crop4,rotate"},
		{"-labels", "medium"},
		{"-data", "$DATA", "-val", "100%"},
		{"-data", "$DATA", "-limit", "100", "-val", "100"},
		{"-data", "$DATA", "-patience", "3"},
		{"-resume", "$CKPT", "-augment", "flip"},
		{"-resume", "$CKPT", "-val", "10"},
		{"-data", "$DATA", "-save", "$TMP"},
		{"-data", "$DATA", "-save", "$TMP/text.png"},
		{"-data", "$DATA", "-plot", "$CKPT"},
		{"-data", "$DATA", "-plot", "$TMP/x.png", "-metrics", "$TMP/x.png"},
		{"-data", "$DATA", "-save", "$TMP/no/such/dir/m.st"},
		{"-resume", "$TMP/none.st"},
		{"-resume", "$CKPT", "-lr", "0.1"},
		{"-resume", "$CKPT", "-limit", "50"},
		{"-resume", "$CKPT", "-epochs", "1"},
		{"-resume", "$DATA/t10k-labels-idx1-ubyte.gz"},
		{"eval"},
		{"eval", "-load", "$DATA/t10k-labels-idx1-ubyte.gz"},
		{"predict", "-load", "$CKPT"},
		{"predict", "-load", "$CKPT", "$TMP/text.png"},
		{"predict", "-load", "$CKPT", "$TMP/none.png"},
		{"info", "$TMP/text.png"},
	}
	var got bytes.Buffer
	for _, c := range cases {
		args := make([]string, len(c))
		for i, a := range c {
			args[i] = expand(a)
		}
		var stdout, stderr bytes.Buffer
		err := run(args, &stdout, &stderr)
		msg := "(no error)"
		if err != nil {
			msg = userMessage(err)
		}
		msg = strings.NewReplacer(dataDir, "$DATA", ckptPath, "$CKPT", tmp, "$TMP").Replace(msg)
		fmt.Fprintf(&got, "$ train %s\nexit %d\n%s\n\n", quoteArgs(c), exitCode(err), msg)
	}
	golden := filepath.Join("testdata", "messages.golden")
	if *update {
		if err := os.WriteFile(golden, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got.String() != string(want) {
		t.Errorf("messages differ from %s (rerun with -update and review the diff):\n%s", golden, got.String())
	}
}

// quoteArgs writes args as a shell would need them, for the golden file.
func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \"'") {
			a = fmt.Sprintf("%q", a)
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
