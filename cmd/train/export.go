package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/convtrain/convtrain/host/ckpt"
	"github.com/convtrain/convtrain/host/ckpt/onnx"
	"github.com/convtrain/convtrain/host/nn"
)

// runExport is train export: a checkpoint's model as an ONNX file.
func runExport(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("train export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	load := fs.String("load", "", "checkpoint to export (required)")
	out := fs.String("o", "", "ONNX file to write (required; written atomically)")
	softmax := fs.Bool("softmax", false, "end with a Softmax: probabilities instead of class scores")
	opset := fs.Int("opset", int(onnx.DefaultOpset), fmt.Sprintf("ONNX opset, %d to %d", onnx.DefaultOpset, onnx.MaxOpset))
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: train export -load CKPT -o FILE.onnx [-softmax] [-opset N]\n\nWrites the checkpoint's model as an ONNX model that takes pixel values (N,C,H,W) and standardises them itself.\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err, true}
	}
	switch {
	case fs.NArg() > 0:
		return usagef("train export: unexpected arguments %q", fs.Args())
	case *load == "":
		return usagef("train export needs -load CKPT")
	case *out == "":
		return usagef("train export needs -o FILE.onnx")
	case *opset < onnx.DefaultOpset || *opset > onnx.MaxOpset:
		return usagef("train export: -opset %d, want %d to %d", *opset, onnx.DefaultOpset, onnx.MaxOpset)
	case *out == *load:
		return usagef("train export: -o %s is the checkpoint it reads", *out)
	}
	c, err := ckpt.LoadCheckpoint(*load)
	if err != nil {
		return err
	}
	weights := make(map[string][]float32, len(c.Params)+len(c.Buffers))
	for _, p := range slices.Concat(c.Params, c.Buffers) {
		weights[p.Name] = p.F32
	}
	cfg, err := ckpt.ConfigJSON(c.Config)
	if err != nil {
		return err
	}
	var mean, std []float32
	for _, n := range c.Norm {
		mean, std = append(mean, float32(n.Mean)), append(std, float32(n.Std))
	}
	m, err := nn.ExportONNX(c.Spec, func(name string) ([]float32, bool) { v, ok := weights[name]; return v, ok }, nn.ExportOptions{
		Mean: mean, Std: std,
		Softmax: *softmax, Opset: int64(*opset),
		Doc: fmt.Sprintf("convtrain model %s on %d×%d×%d inputs; training configuration %s; written from %s",
			nn.FormatSpec(c.Spec.Layers), c.Spec.C, c.Spec.H, c.Spec.W, cfg, *load),
	})
	if err != nil {
		return err
	}
	if err := ckpt.SaveAtomic(*out, func(w io.Writer) error { return onnx.Write(w, m) }); err != nil {
		return fmt.Errorf("train export: %w", err)
	}
	output := "scores"
	if *softmax {
		output = "probabilities"
	}
	fmt.Fprintf(stdout, "wrote %s: %s, input \"input\" (N,%d,%d,%d) pixel values, output %q (N,%d), opset %d, %d tensors\n",
		*out, strings.ReplaceAll(nn.FormatSpec(c.Spec.Layers), ",", " "), c.Spec.C, c.Spec.H, c.Spec.W, output, c.Spec.Classes(), *opset, len(c.Params)+len(c.Buffers))
	return nil
}
