package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/convtrain/convtrain/host/train"
)

// progressBar draws one line, redrawn in place with a carriage return:
//
//	epoch 1/3 [=========>          ] 412/937  loss 0.3124  8123 images/s  ETA 4s
//
// fitted to the terminal's width (the bar shrinks, then goes); after an
// epoch's last step it says that the test set is being evaluated. It
// draws nothing unless enabled (stdout is a terminal).
type progressBar struct {
	w       io.Writer
	enabled bool
	width   int // the terminal's columns; 0: unknown (80 assumed)
	batch   int // images per step, for the ETA; 0: no ETA
	test    int // test images evaluated after each epoch
	drawn   int // length of the line on screen, 0 when none
}

// maxBarWidth is the width of the bar between brackets on a wide terminal.
const maxBarWidth = 30

// columns is the terminal width of w: the ioctl's answer, else $COLUMNS,
// else 0.
func columns(w io.Writer) int {
	if f, ok := w.(*os.File); ok {
		if n := terminalWidth(f); n > 0 {
			return n
		}
	}
	n, _ := strconv.Atoi(os.Getenv("COLUMNS"))
	return max(n, 0)
}

func (p *progressBar) update(pr train.Progress) {
	if !p.enabled || pr.Steps < 1 {
		return
	}
	width := p.width
	if width <= 0 {
		width = 80
	}
	width-- // the cursor never reaches the last column: no wrap
	tail := fmt.Sprintf(" %d/%d  loss %.4f  %.0f images/s", pr.Step, pr.Steps, pr.Loss, pr.ImagesPerSec)
	switch {
	case pr.Step >= pr.Steps && p.test > 0:
		tail += fmt.Sprintf("  evaluating %d test images", p.test)
	case p.batch > 0 && pr.ImagesPerSec > 0:
		eta := time.Duration(float64((pr.Steps-pr.Step)*p.batch) / pr.ImagesPerSec * float64(time.Second))
		tail += "  ETA " + eta.Round(time.Second).String()
	}
	head := fmt.Sprintf("epoch %d/%d", pr.Epoch, pr.Epochs)
	line := head + tail
	if n := min(maxBarWidth, width-len([]rune(line))-3); n >= 10 {
		done := n * pr.Step / pr.Steps
		bar := strings.Repeat("=", done)
		if done < n {
			bar += ">" + strings.Repeat(" ", n-done-1)
		}
		line = head + " [" + bar + "]" + tail
	}
	if r := []rune(line); len(r) > width {
		line = string(r[:width])
	}
	n := len([]rune(line))
	pad := max(p.drawn-n, 0)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	p.drawn = n
}

// clear erases the bar so that a normal line can be printed.
func (p *progressBar) clear() {
	if !p.enabled || p.drawn == 0 {
		return
	}
	fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.drawn))
	p.drawn = 0
}
