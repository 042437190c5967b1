package stacks

import (
	"os/exec"
	"path/filepath"
	"testing"
)

// TestTemplatesPassCfnLint runs cfn-lint, AWS's own CloudFormation linter (written by others,
// so it catches what these tests share blind spots with), over every synthesized template:
// zero errors. .ci/run installs it on a fresh machine.
func TestTemplatesPassCfnLint(t *testing.T) {
	lint, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Fatal("cfn-lint is not installed (pip install cfn-lint): every template must pass it")
	}
	templates, _ := filepath.Glob(filepath.Join(defaultBuild.outdir, "*.template.json"))
	if len(templates) != 6 {
		t.Fatalf("%d templates synthesized, want 6 (control plane, bootstrap, infrastructure, peering, PrivateLink, peer access): %v", len(templates), templates)
	}
	// Warnings are reported but do not fail; errors do (exit code bit 2).
	out, err := exec.Command(lint, append([]string{"--format", "parseable"}, templates...)...).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode()&2 != 0 || err != nil && !ok {
		t.Fatalf("cfn-lint found errors: %v\n%s", err, out)
	}
	if len(out) > 0 {
		t.Logf("cfn-lint:\n%s", out)
	}
}
