// Package cdkout gives tests the templates the CDK app synthesized into cdk.out/ at the
// repository root, so they check the templates of the source under test. When cdk.out/ lacks
// them (a bare `go test` on a fresh checkout), it runs `make synth` once per test process
// instead of falling back to a copy that may be stale.
package cdkout

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	synthOnce sync.Once
	synthErr  error
)

// Template returns cdk.out/<name> (e.g. ByocControlPlane.template.json).
func Template(tb testing.TB, name string) []byte {
	tb.Helper()
	root, err := repoRoot()
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(root, "cdk.out", name)
	if _, err := os.Stat(path); os.IsNotExist(err) {
		synthOnce.Do(func() {
			tb.Logf("cdk.out/%s is missing: running make synth", name)
			cmd := exec.Command("make", "synth")
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				synthErr = fmt.Errorf("make synth: %v\n%s", err, out)
			}
		})
		if synthErr != nil {
			tb.Fatal(synthErr)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return b
}

// repoRoot is the nearest directory above the working directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}
