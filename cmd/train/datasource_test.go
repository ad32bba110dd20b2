package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadProgress draws the loading bar on a wide and a narrow terminal:
// the count of images, a bar that fits (none when too narrow), and at the
// end a line of blanks that erases it.
func TestLoadProgress(t *testing.T) {
	for _, tc := range []struct {
		width   int
		wantBar bool
	}{{80, true}, {0, true}, {30, false}} {
		var buf bytes.Buffer
		p := loadProgress(&buf, tc.width)
		p(25, 100)
		drawn := buf.String()
		if !strings.HasPrefix(drawn, "\rloading") || !strings.HasSuffix(drawn, " 25/100 images") || strings.Contains(drawn, "[") != tc.wantBar {
			t.Errorf("width=%d: drawn %q, want the count and a bar: %v", tc.width, drawn, tc.wantBar)
		}
		if w := tc.width; w > 0 && len([]rune(drawn))-1 >= w {
			t.Errorf("width=%d: line of %d columns", w, len([]rune(drawn))-1)
		}
		buf.Reset()
		p(100, 100)
		if want := "\r" + strings.Repeat(" ", len([]rune(drawn))-1) + "\r"; buf.String() != want {
			t.Errorf("width=%d: at the end %q, want %q", tc.width, buf.String(), want)
		}
	}
}

// TestOutputIsCIFARFile: an output naming a file of a CIFAR folder given
// as -data is refused before any work, as for IDX files.
func TestOutputIsCIFARFile(t *testing.T) {
	dir := cifarDir(t, 20, 10)
	var stdout, stderr bytes.Buffer
	err := run([]string{"-data", dir, "-metrics", filepath.Join(dir, "test_batch.bin")}, &stdout, &stderr)
	if exitCode(err) != 2 || !strings.Contains(err.Error(), "is also the input of -data") {
		t.Errorf("run with -metrics on a CIFAR batch = %v, want a usage error naming -data", err)
	}
}

// TestRunPlotVal draws the plot of a run with -val and keeps its
// validation curve in the checkpoint's note, so that a resumed run's plot
// shows it.
func TestRunPlotVal(t *testing.T) {
	dir, tmp := syntheticDir(t), t.TempDir()
	save, plotPath := filepath.Join(tmp, "m.st"), filepath.Join(tmp, "p.png")
	var stdout, stderr bytes.Buffer
	if err := run(tinyArgs(dir, "-val", "16", "-save", save, "-plot", plotPath), &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	if fi, err := os.Stat(plotPath); err != nil || fi.Size() == 0 {
		t.Errorf("plot %s: %v", plotPath, err)
	}
	var c curves
	c.restore(mustLoad(t, save).Notes[curvesNote])
	if len(c.valAcc) != 2 || len(c.valLoss) != 2 || len(c.testAcc) != 1 || c.testAcc[0].X != 2 {
		t.Errorf("curves kept: %d validation accuracies, %d losses, test %v; want 2, 2 and one test point after epoch 2", len(c.valAcc), len(c.valLoss), c.testAcc)
	}
}
