//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary runs as the train command when childEnv is set (see
// TestMain), so that signals and resource limits reach a real process.
const (
	childEnv = "CONVTRAIN_TEST_AS_TRAIN"
	fsizeEnv = "CONVTRAIN_TEST_FSIZE" // RLIMIT_FSIZE in bytes, as a full disk
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		if s := os.Getenv(fsizeEnv); s != "" {
			n, err := strconv.ParseUint(s, 10, 64)
			if err == nil {
				err = syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: n, Max: n})
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "test child: RLIMIT_FSIZE:", err)
				os.Exit(3)
			}
		}
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child is the train command in a child process with args and env.
func child(args []string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), childEnv+"=1"), env...)
	return cmd
}

// tempFiles lists the temporary files of atomic writes left in dir.
func tempFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".*tmp-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSignalsSurvived trains 40 epochs of 6 steps with a checkpoint after
// every step in a child process, and stops it with SIGINT, SIGTERM or
// SIGKILL at growing delays, resuming with -resume alone after each stop
// until a run completes: the final checkpoint must equal the run straight
// through bit for bit, whatever stopped it and where. SIGINT and SIGTERM
// must exit with status 130 and name the checkpoint.
func TestSignalsSurvived(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the command about 20 times in child processes")
	}
	dir := syntheticDir(t)
	args := append(tinyArgs(dir), "-epochs", "40")
	straight := filepath.Join(t.TempDir(), "straight.st")
	var stdout, stderr bytes.Buffer
	if err := run(append(args, "-save", straight), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGKILL} {
		t.Run("signal="+sig.String(), func(t *testing.T) {
			tmp := t.TempDir()
			ck := filepath.Join(tmp, "ck.st")
			cmdArgs := append(append([]string(nil), args...), "-save", ck, "-save-every", "1")
			stops := 0
			for try := 0; ; try++ {
				if try > 30 {
					t.Fatalf("no run completed after %d tries", try)
				}
				cmd := child(cmdArgs)
				var out bytes.Buffer
				cmd.Stdout, cmd.Stderr = &out, &out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				delay := time.Duration(60+15*try) * time.Millisecond
				timer := time.AfterFunc(delay, func() { cmd.Process.Signal(sig) })
				err := cmd.Wait()
				stopped := timer.Stop() == false && err != nil
				if err == nil {
					break
				}
				var ee *exec.ExitError
				if !errors.As(err, &ee) || !stopped {
					t.Fatalf("run %d: %v\n%s", try, err, out.String())
				}
				if _, statErr := os.Stat(ck); statErr != nil {
					// Stopped before its first checkpoint: start afresh.
					continue
				}
				if sig != syscall.SIGKILL && (ee.ExitCode() != 130 || !strings.Contains(out.String(), "continue with train -resume "+ck)) {
					t.Fatalf("run %d stopped by %v: exit %d, want 130 and how to resume:\n%s", try, sig, ee.ExitCode(), out.String())
				}
				mustLoad(t, ck) // whatever the moment, the file is a whole checkpoint
				stops++
				cmdArgs = []string{"-resume", ck, "-threads", "1"}
			}
			equalCheckpoints(t, mustLoad(t, straight), mustLoad(t, ck))
			left := tempFiles(t, tmp)
			t.Logf("%v: %d stops survived, temporary files left: %d", sig, stops, len(left))
			if len(left) > 0 { // a killed save's are removed by the next run
				t.Errorf("temporary files left after %v: %v", sig, left)
			}
			if stops == 0 {
				t.Errorf("no stop landed during a run")
			}
			total += stops
		})
	}
	t.Logf("%d interruptions survived in all", total)
}

// TestDiskFull resumes a run whose checkpoints no longer fit (a file size
// limit, RLIMIT_FSIZE, below the checkpoint's size, which makes writes
// fail with EFBIG as a full disk fails them with ENOSPC): the run must
// fail with exit status 1 naming the file, leave the previous checkpoint
// as it was, and leave no temporary file.
func TestDiskFull(t *testing.T) {
	dir, tmp := syntheticDir(t), t.TempDir()
	ck := filepath.Join(tmp, "ck.st")
	var stdout, stderr bytes.Buffer
	if err := run(tinyArgs(dir, "-epochs", "1", "-save", ck), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(ck)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"save=resumed", []string{"-resume", ck, "-epochs", "2"}},
		{"save=every-step", []string{"-resume", ck, "-epochs", "2", "-save-every", "1", "-metrics", filepath.Join(tmp, "m.jsonl")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := child(tc.args, fmt.Sprintf("%s=%d", fsizeEnv, len(before)/2))
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out.String(), "save "+ck) || !strings.Contains(out.String(), "file too large") ||
				!strings.Contains(out.String(), "the checkpoint "+ck+" written before is intact") {
				t.Fatalf("run = %v, want exit 1 naming %s and the write error:\n%s", err, ck, out.String())
			}
			t.Logf("%s", strings.TrimSpace(out.String()[strings.LastIndex(out.String(), "train:"):]))
			if after, err := os.ReadFile(ck); err != nil || !bytes.Equal(after, before) {
				t.Errorf("%s changed by the failed run (%v)", ck, err)
			}
			mustLoad(t, ck)
			if left := tempFiles(t, tmp); len(left) > 0 {
				t.Errorf("temporary files left: %v", left)
			}
		})
	}
}

// TestDiskFullTmpfs is TestDiskFull on a real full disk: a 256 KiB tmpfs
// (mounted here, so root only; skipped elsewhere) holding the checkpoint
// and a file that fills the rest. The failed save must report "no space
// left on device", keep the checkpoint as it was and leave no temporary
// file.
func TestDiskFullTmpfs(t *testing.T) {
	dir, tmp := syntheticDir(t), t.TempDir()
	mnt := filepath.Join(tmp, "full")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("needs root to mount a tmpfs (CI runs as root): %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(mnt, 0) })
	ck := filepath.Join(mnt, "ck.st")
	var stdout, stderr bytes.Buffer
	if err := run(tinyArgs(dir, "-epochs", "1", "-save", ck), &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(ck)
	if err != nil {
		t.Fatal(err)
	}
	// Fill the file system.
	f, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	cmd := child([]string{"-resume", ck, "-epochs", "2"})
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(out.String(), "no space left on device") ||
		!strings.Contains(out.String(), "the checkpoint "+ck+" written before is intact") {
		t.Fatalf("run = %v, want exit 1 naming the full disk:\n%s", err, out.String())
	}
	t.Logf("%s", strings.TrimSpace(out.String()[strings.LastIndex(out.String(), "train:"):]))
	if after, err := os.ReadFile(ck); err != nil || !bytes.Equal(after, before) {
		t.Errorf("%s changed by the failed run (%v)", ck, err)
	}
	mustLoad(t, ck)
	if left := tempFiles(t, mnt); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
