package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/convtrain/convtrain/host/train"
)

// progressBar draws one line, redrawn in place with a carriage return:
//
//	epoch 1/3 [=========>          ] 412/937  loss 0.3124  8123 images/s
//
// It draws nothing unless enabled (stdout is a terminal).
type progressBar struct {
	w       io.Writer
	enabled bool
	drawn   int // length of the line on screen, 0 when none
}

const barWidth = 30

func (p *progressBar) update(pr train.Progress) {
	if !p.enabled || pr.Steps < 1 {
		return
	}
	done := barWidth * pr.Step / pr.Steps
	bar := strings.Repeat("=", done)
	if done < barWidth {
		bar += ">" + strings.Repeat(" ", barWidth-done-1)
	}
	line := fmt.Sprintf("epoch %d/%d [%s] %d/%d  loss %.4f  %.0f images/s",
		pr.Epoch, pr.Epochs, bar, pr.Step, pr.Steps, pr.Loss, pr.ImagesPerSec)
	pad := max(p.drawn-len(line), 0)
	fmt.Fprintf(p.w, "\r%s%s", line, strings.Repeat(" ", pad))
	p.drawn = len(line)
}

// clear erases the bar so that a normal line can be printed.
func (p *progressBar) clear() {
	if !p.enabled || p.drawn == 0 {
		return
	}
	fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.drawn))
	p.drawn = 0
}
