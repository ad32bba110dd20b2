package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/convtrain/convtrain/host/ckpt"
	"github.com/convtrain/convtrain/host/nn"
)

// runInfo is train info: what a checkpoint holds, read without a backend.
func runInfo(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("train info", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: train info CKPT...\n\nPrints what each checkpoint holds: the architecture, the training configuration and position, the input standardisation and every tensor with its norm.\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err, true}
	}
	if fs.NArg() == 0 {
		return usagef("train info needs checkpoint files")
	}
	for i, path := range fs.Args() {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		c, err := loadCheckpoint("", path)
		if err != nil {
			return err
		}
		if err := printInfo(stdout, path, c); err != nil {
			return err
		}
	}
	return nil
}

// printInfo writes the report of train info for the checkpoint c read
// from path.
func printInfo(w io.Writer, path string, c *ckpt.Checkpoint) error {
	summary, err := c.Spec.Summary()
	if err != nil {
		return err
	}
	cfg, st := c.Config, c.State
	fmt.Fprintf(w, "checkpoint  %s (written by convtrain %s)\n", path, c.Version)
	fmt.Fprintf(w, "model       %s on %d×%d×%d inputs, %d classes\n", nn.FormatSpec(c.Spec.Layers), c.Spec.C, c.Spec.H, c.Spec.W, c.Spec.Classes())
	fmt.Fprint(w, summary)
	opt := fmt.Sprint(cfg.Optimizer)
	if cfg.Optimizer.Kind == nn.SGD {
		opt += fmt.Sprintf(" momentum %g", cfg.Momentum)
	}
	sched := fmt.Sprintf("%v schedule", cfg.Schedule.Kind)
	if cfg.Schedule.Warmup > 0 {
		sched += fmt.Sprintf(", %d warm-up steps", cfg.Schedule.Warmup)
	}
	fmt.Fprintf(w, "optimizer   %s, lr %g (%s), batch %d, weight decay %g, seed %d\n",
		opt, cfg.LR, sched, cfg.Batch, cfg.WeightDecay, cfg.Seed)
	pos := fmt.Sprintf("%d of %d epochs done", st.Epoch, cfg.Epochs)
	if st.StepEpoch > 0 {
		pos += fmt.Sprintf(", and %d steps of epoch %d", st.StepEpoch, st.Epoch+1)
		if st.HasEpochSums {
			pos += fmt.Sprintf(" (mean loss %.4f, train accuracy %.2f%% so far)",
				float64(st.EpochLossSum)/float64(st.StepEpoch), 100*float64(st.EpochCorrect)/float64(st.StepEpoch*cfg.Batch))
		}
	}
	fmt.Fprintf(w, "position    %s; %d steps in all", pos, st.Step)
	if st.ElapsedSeconds > 0 {
		fmt.Fprintf(w, ", %s of training", time.Duration(st.ElapsedSeconds*float64(time.Second)).Round(100*time.Millisecond))
	}
	switch {
	case st.BestEpoch > 0 && c.Data != nil && c.Data.Val > 0:
		fmt.Fprintf(w, "; best validation accuracy %.2f%% after epoch %d", 100*st.BestValAcc, st.BestEpoch)
	case st.BestEpoch > 0:
		fmt.Fprintf(w, "; best test accuracy %.2f%% after epoch %d", 100*st.BestTestAcc, st.BestEpoch)
	}
	fmt.Fprintln(w)
	if d := c.Data; d != nil {
		src := d.Source
		if src == "mnist" {
			src = "MNIST (Go module cache)"
		}
		limit := func(n int, flag string) string {
			if n == 0 {
				return ""
			}
			return fmt.Sprintf(" (%s %d)", flag, n)
		}
		if d.Format != "" {
			src += " (" + d.Format + ")"
		}
		if d.Labels != "" {
			src += " -labels " + d.Labels
		}
		if d.Size > 0 {
			src += fmt.Sprintf(" -size %d", d.Size)
		}
		fmt.Fprintf(w, "data        %s\n", src)
		fmt.Fprintf(w, "            train: %s%s\n", d.Train, limit(d.Limit, "-limit"))
		if d.ValPrint != nil {
			fmt.Fprintf(w, "            val:   %s (-val %d by the seed)%s\n", *d.ValPrint, d.Val, limit(d.ValLimit, "-val-limit"))
		}
		fmt.Fprintf(w, "            test:  %s%s\n", d.Test, limit(d.TestLimit, "-test-limit"))
		if d.Augment != "" {
			fmt.Fprintf(w, "            augment: %s\n", d.Augment)
		}
		if len(d.ClassNames) > 0 {
			fmt.Fprintf(w, "            classes: %s\n", strings.Join(d.ClassNames, ", "))
		}
	} else {
		fmt.Fprintf(w, "data        not recorded (a checkpoint of an older convtrain: give -data and -limit to resume)\n")
	}
	if len(c.Norm) == 1 {
		fmt.Fprintf(w, "inputs      standardised with mean %.6g and standard deviation %.6g (pixel values 0 to 255)\n", c.Norm[0].Mean, c.Norm[0].Std)
	} else {
		fmt.Fprintf(w, "inputs      standardised per channel (pixel values 0 to 255):")
		for i, n := range c.Norm {
			fmt.Fprintf(w, " channel %d mean %.6g std %.6g;", i, n.Mean, n.Std)
		}
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "tensor\tshape\tL2 norm\tlargest |x|\n")
	for _, ts := range [][]ckpt.NamedTensor{c.Params, c.Buffers, c.Optim} {
		for _, t := range ts {
			var sq, hi float64
			for _, v := range t.F32 {
				sq += float64(v) * float64(v)
				hi = math.Max(hi, math.Abs(float64(v)))
			}
			fmt.Fprintf(tw, "%s\t%s\t%.4g\t%.4g\n", t.Name, shapeText(t.Shape), math.Sqrt(sq), hi)
		}
	}
	return tw.Flush()
}

// shapeText writes a shape as 8×1×5×5.
func shapeText(shape []int) string {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = fmt.Sprint(d)
	}
	return strings.Join(dims, "×")
}
