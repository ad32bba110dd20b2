package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"

	"github.com/convtrain/convtrain/host/train"
)

// metricsRecord is one line of the -metrics file (JSON lines). A "step"
// record is written at every progress point (every 10 steps and at the end
// of each epoch), an "epoch" record after each epoch's evaluation.
type metricsRecord struct {
	Kind      string `json:"kind"`       // "step" or "epoch"
	Epoch     int    `json:"epoch"`      // from 1
	Epochs    int    `json:"epochs"`     // in the run
	Step      int    `json:"step"`       // steps done in all epochs
	EpochStep int    `json:"epoch_step"` // steps done in this epoch
	Steps     int    `json:"steps"`      // steps per epoch
	// Loss and TrainAcc: a step record's are over the steps since the
	// previous record of the same epoch; an epoch record's over the whole
	// epoch's training batches (each measured before its update).
	Loss     jsonFloat `json:"loss"`
	TrainAcc jsonFloat `json:"train_acc"`
	// TestLoss and TestAcc: epoch records only.
	TestLoss *jsonFloat `json:"test_loss,omitempty"`
	TestAcc  *jsonFloat `json:"test_acc,omitempty"`
	// ValLoss and ValAcc: epoch records of a run with -val only.
	ValLoss      *jsonFloat `json:"val_loss,omitempty"`
	ValAcc       *jsonFloat `json:"val_acc,omitempty"`
	LR           jsonFloat  `json:"lr"`
	ImagesPerSec jsonFloat  `json:"images_per_sec"` // over the epoch so far
	Elapsed      jsonFloat  `json:"elapsed_s"`      // seconds since the run started
}

// jsonFloat is a float64 written as JSON null when it is NaN or infinite
// (which JSON cannot represent).
type jsonFloat float64

// UnmarshalJSON reads a number, or null as NaN.
func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*f = jsonFloat(math.NaN())
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	*f = jsonFloat(v)
	return err
}

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	x := float64(f)
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, x, 'g', -1, 64), nil
}

// windowed turns the trainer's running epoch means into means over the
// steps between consecutive progress reports of an epoch: with n steps
// averaged, the sums are mean·n, and the window is their difference.
type windowed struct {
	epoch     int
	n         int     // steps averaged at the last report
	loss, acc float64 // their sums (acc as the mean accuracy times n)
}

// next returns the mean loss and accuracy since the previous report of
// the same epoch (since the epoch's first averaged step for its first).
func (w *windowed) next(p train.Progress) (loss, acc float64) {
	if p.Epoch != w.epoch || p.Averaged <= w.n {
		*w = windowed{epoch: p.Epoch}
	}
	n := float64(p.Averaged)
	sl, sa := p.Loss*n, p.TrainAcc*n
	d := n - float64(w.n)
	loss, acc = (sl-w.loss)/d, (sa-w.acc)/d
	w.n, w.loss, w.acc = p.Averaged, sl, sa
	return loss, acc
}

// metricsLog writes metricsRecords to a file, one JSON object per line.
// The first write error is kept and returned by Close; later records are
// dropped.
type metricsLog struct {
	f   *os.File
	w   io.Writer
	win windowed
	err error
}

// openMetrics creates (or, when appending, extends) the metrics file.
func openMetrics(path string, appendTo bool) (*metricsLog, error) {
	flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	if appendTo {
		flags = os.O_WRONLY | os.O_CREATE | os.O_APPEND
	}
	f, err := os.OpenFile(path, flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("-metrics: %w", err)
	}
	return &metricsLog{f: f, w: f}, nil
}

func (l *metricsLog) write(r metricsRecord) {
	if l.err != nil {
		return
	}
	b, err := json.Marshal(r)
	if err == nil {
		_, err = l.w.Write(append(b, '\n'))
	}
	if err != nil {
		l.err = fmt.Errorf("-metrics: %w", err)
	}
}

// progress records a progress report.
func (l *metricsLog) progress(p train.Progress) {
	loss, acc := l.win.next(p)
	l.write(metricsRecord{Kind: "step", Epoch: p.Epoch, Epochs: p.Epochs, Step: p.GlobalStep, EpochStep: p.Step,
		Steps: p.Steps, Loss: jsonFloat(loss), TrainAcc: jsonFloat(acc), LR: jsonFloat(p.LR),
		ImagesPerSec: jsonFloat(p.ImagesPerSec), Elapsed: jsonFloat(p.Elapsed.Seconds())})
}

// epoch records an epoch's metrics; step is the number of steps done in
// all after it, steps the steps per epoch.
func (l *metricsLog) epoch(m train.EpochMetrics, step, steps int) {
	r := metricsRecord{Kind: "epoch", Epoch: m.Epoch, Epochs: m.Epochs, Step: step, EpochStep: steps, Steps: steps,
		Loss: jsonFloat(m.Loss), TrainAcc: jsonFloat(m.TrainAcc), LR: jsonFloat(m.LR),
		ImagesPerSec: jsonFloat(m.ImagesPerSec), Elapsed: jsonFloat(m.Elapsed.Seconds())}
	if m.Tested {
		tl, ta := jsonFloat(m.TestLoss), jsonFloat(m.TestAcc)
		r.TestLoss, r.TestAcc = &tl, &ta
	}
	if m.Validated {
		vl, va := jsonFloat(m.ValLoss), jsonFloat(m.ValAcc)
		r.ValLoss, r.ValAcc = &vl, &va
	}
	l.write(r)
}

// Close closes the file and returns the first error of any write.
func (l *metricsLog) Close() error {
	err := l.f.Close()
	if l.err != nil {
		return l.err
	}
	if err != nil {
		return fmt.Errorf("-metrics: %w", err)
	}
	return nil
}

// reportOptions are the -metrics and -plot flags and, during a run, the
// open metrics file and the collected curves.
type reportOptions struct {
	metricsPath, plotPath string
	metrics               *metricsLog
	curves                *curves
	last                  train.Progress // the last progress report
	plotErr               error          // the first error saving the plot
}

func (c *reportOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&c.metricsPath, "metrics", "", "write metrics as JSON lines to `FILE` (every 10 steps and every epoch)")
	fs.StringVar(&c.plotPath, "plot", "", "draw the loss and accuracy curves into the PNG `FILE` after every epoch")
}

// open creates the metrics file (appended to when resuming) and hooks the
// metrics and curves into cfg's callbacks, after the ones already there;
// progress is then reported every 10 steps. title heads the plot.
//
// The curves are collected in every run (checkpoints keep them, so that
// a plot drawn after -resume has the whole history): history is the
// checkpoint's note of them when resuming, else nil.
func (c *reportOptions) open(cfg *train.Config, resuming bool, title string, history map[string]string) error {
	if c.metricsPath != "" {
		var err error
		if c.metrics, err = openMetrics(c.metricsPath, resuming); err != nil {
			return err
		}
	}
	c.curves = &curves{title: title}
	if s, ok := history[curvesNote]; ok {
		c.curves.restore(s) // best effort: a note that does not decode only loses the earlier points
	}
	if cfg.ProgressEvery == 0 {
		cfg.ProgressEvery = 10
	}
	onProgress, onEpoch := cfg.OnProgress, cfg.OnEpoch
	cfg.OnProgress = func(p train.Progress) {
		if onProgress != nil {
			onProgress(p)
		}
		c.last = p
		if c.metrics != nil {
			c.metrics.progress(p)
		}
		if c.curves != nil {
			c.curves.progress(p)
		}
	}
	cfg.OnEpoch = func(m train.EpochMetrics) {
		if onEpoch != nil {
			onEpoch(m)
		}
		if c.metrics != nil {
			step := c.last.GlobalStep
			if c.last.Epoch != m.Epoch { // a resumed epoch without steps left
				step = m.Epoch * c.last.Steps
			}
			c.metrics.epoch(m, step, c.last.Steps)
		}
		if c.curves != nil {
			c.curves.epoch(m)
		}
		if c.plotPath != "" {
			if err := c.curves.save(c.plotPath); err != nil && c.plotErr == nil {
				c.plotErr = err // reported by close
			}
		}
	}
	return nil
}

// close closes the metrics file and draws the plot a last time (so that a
// run stopped in an epoch has its last points), returning the first error
// of either.
func (c *reportOptions) close() error {
	var errs []error
	if c.metrics != nil {
		errs = append(errs, c.metrics.Close())
		c.metrics = nil
	}
	if c.curves != nil && c.plotPath != "" {
		if c.plotErr == nil {
			c.plotErr = c.curves.save(c.plotPath)
		}
		errs = append(errs, c.plotErr)
		c.plotPath = "" // drawn once
	}
	return errors.Join(errs...)
}
