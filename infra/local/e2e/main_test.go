// Package e2e runs byoc end to end on the local cloud: the real function binaries, the real
// synthesized templates and the real workflow. It is the one test package that starts a
// local cloud (kumo keeps one state per process), so every test here shares one cloud and
// one deployed control plane, and uses its own customer account.
//
// It needs cdk.out/ from `make synth` (`make test` synthesizes first); it builds the
// functions for this machine itself, once, so it always tests the current source.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/infra/local/scenario"
	"github.com/byocloud/byoc/shared/contract"
)

var (
	repoRoot     string
	templatesDir string
	binDir       string // <binDir>/<function>/bootstrap, built by TestMain (or make build-local)
	toolsDir     string // this test process's own builds (byoc-local)
	shared       *env
)

// env is the shared cloud and control plane.
type env struct {
	cloud  *localcloud.Cloud
	runner *scenario.Runner
	deploy time.Duration // how long deploying the control plane took
	logs   *lockedBuffer
	clock  *cloudClock // the cloud's clock: real time, moved only by the staleness test

	mu        sync.Mutex
	observers map[int]func(localcloud.Event)
	next      int
}

func (e *env) observe(ev localcloud.Event) {
	if e.runner != nil {
		e.runner.Observe(ev)
	}
	e.mu.Lock()
	obs := make([]func(localcloud.Event), 0, len(e.observers))
	for _, o := range e.observers {
		obs = append(obs, o)
	}
	e.mu.Unlock()
	for _, o := range obs {
		o(ev)
	}
}

// subscribe tells fn of every timeline event until the test ends.
func (e *env) subscribe(t testing.TB, fn func(localcloud.Event)) {
	e.mu.Lock()
	id := e.next
	e.next++
	e.observers[id] = fn
	e.mu.Unlock()
	t.Cleanup(func() {
		e.mu.Lock()
		delete(e.observers, id)
		e.mu.Unlock()
	})
}

// record collects the timeline while a test runs.
func (e *env) record(t testing.TB) *recording {
	r := &recording{}
	e.subscribe(t, r.add)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("timeline:\n%s\nfunction logs (tail):\n%s", r, e.logs.tail(60))
		}
	})
	return r
}

type recording struct {
	mu     sync.Mutex
	events []localcloud.Event
}

func (r *recording) add(e localcloud.Event) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recording) all() []localcloud.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]localcloud.Event(nil), r.events...)
}

func (r *recording) String() string {
	var b strings.Builder
	for _, e := range r.all() {
		fmt.Fprintf(&b, "  %s %s\n", e.At.Format("15:04:05.000"), e)
	}
	return b.String()
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// size is how much was written so far: a mark for since.
func (l *lockedBuffer) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

// since returns what was written after mark.
func (l *lockedBuffer) since(mark int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b.Bytes()[mark:])
}

func (l *lockedBuffer) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := strings.Split(strings.TrimRight(l.b.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestMain(m *testing.M) {
	code, err := setup(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		code = 1
	}
	os.Exit(code)
}

func setup(m *testing.M) (int, error) {
	wd, err := os.Getwd()
	if err != nil {
		return 1, err
	}
	repoRoot = filepath.Clean(filepath.Join(wd, "..", "..", ".."))
	templatesDir = filepath.Join(repoRoot, "cdk.out")
	for _, name := range []string{scenario.ControlPlaneTemplate, scenario.BootstrapTemplate} {
		if _, err := os.Stat(filepath.Join(templatesDir, name)); err != nil {
			return 1, fmt.Errorf("%s/%s is missing: run `make synth` first (`make test` does)", templatesDir, name)
		}
	}
	tools, err := os.MkdirTemp("", "byoc-e2e-tools")
	if err != nil {
		return 1, err
	}
	defer os.RemoveAll(tools)
	toolsDir = tools
	// `make test` has just built the functions for this machine (make build-local) and says
	// where: one build serves the tests. A bare `go test` builds its own.
	if prebuilt := os.Getenv(prebuiltFunctions); prebuilt != "" {
		binDir = prebuilt
	} else {
		dir, err := os.MkdirTemp("", "byoc-e2e-bin")
		if err != nil {
			return 1, err
		}
		defer os.RemoveAll(dir)
		binDir = dir
		if err := buildFunctions(dir); err != nil {
			return 1, err
		}
	}
	logs := &lockedBuffer{}
	shared = &env{logs: logs, clock: &cloudClock{}, observers: map[int]func(localcloud.Event){}}
	c, err := localcloud.Start(context.Background(), localcloud.Options{
		Addr: "127.0.0.1:0", BinDir: binDir, Output: logs, Observer: shared.observe, Clock: shared.clock,
	})
	if err != nil {
		return 1, err
	}
	defer c.Close()
	began := time.Now()
	cp, err := scenario.Deploy(context.Background(), c, templatesDir)
	if err != nil {
		return 1, fmt.Errorf("%w\nfunction logs:\n%s", err, logs.tail(40))
	}
	shared.cloud, shared.deploy = c, time.Since(began)
	shared.runner = &scenario.Runner{Cloud: c, ControlPlane: cp, DisarmAfterRun: true}
	return m.Run(), nil
}

// prebuiltFunctions names the directory of functions built for this machine that the tests
// use instead of building their own (the Makefile's test target sets it to build/local).
const prebuiltFunctions = "BYOC_LOCAL_FUNCTIONS"

// buildFunctions builds every functions/<name> for this machine into dir/<name>/bootstrap,
// as the Makefile's build-local target does, in one go build.
func buildFunctions(dir string) error {
	out := filepath.Join(dir, "out")
	cmd := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", out+string(filepath.Separator), "./functions/...")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build the functions: %v\n%s", err, msg)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.MkdirAll(filepath.Join(dir, e.Name()), 0o755); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(out, e.Name()), filepath.Join(dir, e.Name(), "bootstrap")); err != nil {
			return err
		}
	}
	for _, fn := range contract.Functions {
		if _, err := os.Stat(filepath.Join(dir, fn, "bootstrap")); err != nil {
			return fmt.Errorf("function %s was not built: %w", fn, err)
		}
	}
	return nil
}
