package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/convtrain/convtrain/host/data"
)

// output is a file that a run writes, named by a flag.
type output struct {
	flag, path string
	checkpoint bool // the file holds a checkpoint (replacing one is normal)
}

// checkOutputs checks, before any work starts, every file the run will
// write: each must be writable (its directory exists and takes a new
// file), not a directory, not the same file as another output or as an
// input (but -save may be the -resume file), and must not replace a file
// of another kind (a checkpoint by a plot or metrics, anything else by a
// checkpoint).
func (o *options) checkOutputs() error {
	outs := []output{{"-save", o.save, true}, {"-save-best", o.saveBest, true}, {"-plot", o.plotPath, false}, {"-metrics", o.metricsPath, false}}
	inputs := []struct{ flag, path string }{{"-resume", o.resume}}
	if name, ok := cutAt(o.model); ok {
		inputs = append(inputs, struct{ flag, path string }{"-model", name})
	}
	dataDir := o.data
	if dataDir == "" && o.ck != nil && o.ck.Data != nil && o.ck.Data.Source != mnistSource {
		dataDir = o.ck.Data.Source
	}
	if dataDir != "" {
		for _, name := range []string{data.TrainImagesFile, data.TrainLabelsFile, data.TestImagesFile, data.TestLabelsFile} {
			for _, p := range []string{name, name + ".gz"} {
				inputs = append(inputs, struct{ flag, path string }{"-data", filepath.Join(dataDir, p)})
			}
		}
		// The files of the other formats: CIFAR's batches and names, in
		// the folder or its usual sub-folders.
		for _, d := range []string{dataDir, filepath.Join(dataDir, "cifar-10-batches-bin"), filepath.Join(dataDir, "cifar-100-binary")} {
			entries, _ := os.ReadDir(d)
			for _, e := range entries {
				if e.Type().IsRegular() {
					inputs = append(inputs, struct{ flag, path string }{"-data", filepath.Join(d, e.Name())})
				}
			}
		}
	}
	for i, out := range outs {
		if out.path == "" {
			continue
		}
		if err := checkOutput(out); err != nil {
			return err
		}
		for _, other := range outs[:i] {
			if other.path != "" && sameFile(out.path, other.path) {
				return usagef("%s %s and %s %s name the same file; give each its own", other.flag, other.path, out.flag, out.path)
			}
		}
		for _, in := range inputs {
			if in.path == "" || !sameFile(out.path, in.path) || (out.flag == "-save" && in.flag == "-resume") {
				continue
			}
			return usagef("%s %s is also the input of %s; name another file", out.flag, out.path, in.flag)
		}
	}
	return nil
}

// removeStaleTemps removes the temporary files that a save to path
// killed before its rename left behind (".NAME.tmp-*" beside it, see
// ckpt.SaveSafetensorsFile), and returns how many.
func removeStaleTemps(path string) int {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	m, _ := filepath.Glob(filepath.Join(dir, "."+escapeGlob(base)+".tmp-*"))
	n := 0
	for _, f := range m {
		if os.Remove(f) == nil {
			n++
		}
	}
	return n
}

// escapeGlob quotes the metacharacters of filepath.Match in s.
func escapeGlob(s string) string {
	var b []byte
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(`*?[\`, s[i]) >= 0 {
			b = append(b, '\\')
		}
		b = append(b, s[i])
	}
	return string(b)
}

// cutAt returns the file of a -model @FILE.
func cutAt(model string) (string, bool) {
	if len(model) > 1 && model[0] == '@' {
		return model[1:], true
	}
	return "", false
}

// checkOutput checks one output file; see checkOutputs.
func checkOutput(out output) error {
	fi, err := os.Stat(out.path)
	switch {
	case err == nil && fi.IsDir():
		return usagef("%s %s: is a directory; name a file in it, such as %s", out.flag, out.path, filepath.Join(out.path, map[bool]string{true: "model.safetensors", false: "out"}[out.checkpoint]))
	case err == nil && !fi.Mode().IsRegular():
		return usagef("%s %s: not a regular file; name a file", out.flag, out.path)
	case err == nil:
		isCkpt, rerr := looksLikeSafetensors(out.path)
		if rerr != nil {
			return fmt.Errorf("%s %s: %w", out.flag, out.path, rerr)
		}
		if out.checkpoint && !isCkpt && fi.Size() > 0 {
			return usagef("%s %s: the file exists and is not a checkpoint; refusing to replace it (name another file or remove it)", out.flag, out.path)
		}
		if !out.checkpoint && isCkpt {
			return usagef("%s %s: the file is a checkpoint (safetensors); refusing to replace it with %s (name another file)", out.flag, out.path, map[string]string{"-plot": "a plot", "-metrics": "metrics"}[out.flag])
		}
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s %s: cannot write there: %w", out.flag, out.path, err)
	}
	// The directory must take a new file: checkpoints and plots are
	// written to a temporary file there and renamed.
	dir := filepath.Dir(out.path)
	f, err := os.CreateTemp(dir, ".train-check-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the temporary file's random name would only confuse
		}
		return fmt.Errorf("%s %s: cannot write there: cannot create a file in %s: %w", out.flag, out.path, dir, err)
	}
	f.Close()
	os.Remove(f.Name())
	if fi != nil && out.flag == "-metrics" {
		// Metrics are written in place (appended to when resuming); the
		// others replace the file by a rename, which the directory allows.
		g, err := os.OpenFile(out.path, os.O_WRONLY, 0)
		if err != nil {
			return fmt.Errorf("%s %s: cannot write it: %w", out.flag, out.path, err)
		}
		g.Close()
	}
	return nil
}

// looksLikeSafetensors reports whether the file at path starts as a
// safetensors file does: an 8-byte little-endian header length that fits
// the file, then '{'.
func looksLikeSafetensors(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var b [9]byte
	if _, err := io.ReadFull(f, b[:]); err != nil {
		return false, nil // shorter than any safetensors file
	}
	fi, err := f.Stat()
	if err != nil {
		return false, err
	}
	n := binary.LittleEndian.Uint64(b[:8])
	return b[8] == '{' && n >= 2 && n <= uint64(fi.Size())-8, nil
}
