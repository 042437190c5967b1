// Package lambdahost runs the control plane's Lambda functions as local processes: each
// function's real bootstrap binary, built for this machine, started with the environment its
// template gives it and AWS_LAMBDA_RUNTIME_API pointing at kumo's Runtime API, so kumo hands
// it the invocations exactly as the Lambda service would. A process that exits is restarted
// (Lambda replaces a crashed sandbox), and its output is prefixed with the function's name.
package lambdahost

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/byocloud/byoc/infra/local/chaos"
)

// Spec is one function to run.
type Spec struct {
	Name     string            // the Lambda function name: what the Runtime API and Invoke use
	ByocName string            // functions/<ByocName>: which binary (the byoc:function tag)
	Env      map[string]string // the template's Environment.Variables
	Timeout  time.Duration     // enforced by kumo, which reports the deadline to the handler
	MemoryMB int               // becomes AWS_LAMBDA_FUNCTION_MEMORY_SIZE and a Go memory limit
	RoleArn  string            // the execution role; the process gets credentials of a session of it
	// Credentials, when set, are the session credentials to give the process (the stack
	// engine issues them with the function); otherwise Config.Credentials issues them.
	Credentials aws.Credentials
	// AssetDir is the function's deployment bundle (cdk.out/asset.<hash>), when it carries
	// files besides bootstrap that the function reads from /var/task. The process then runs
	// in a task root holding those files and the host build as bootstrap, and environment
	// values under /var/task point into it.
	AssetDir string
}

// lambdaTaskRoot is where Lambda unpacks a function's bundle.
const lambdaTaskRoot = "/var/task"

// Config is how processes are started.
type Config struct {
	// BinDir holds the host builds: <BinDir>/<ByocName>/bootstrap (the Makefile's
	// build-local target writes build/local/<fn>/bootstrap).
	BinDir string
	// RuntimeAPI is kumo's host:port; each process polls <RuntimeAPI>/_runtime/<Name>.
	RuntimeAPI string
	// Endpoint is the front door URL, the functions' AWS_ENDPOINT_URL.
	Endpoint string
	// Env is set in every process, under the function's own variables (the local cloud's
	// clock, shared/clock.EnvLocalClock).
	Env    map[string]string
	Region string
	// Credentials issues the credentials of a session of the execution role, so calls the
	// function makes carry its role's identity (customer trust policies name that role).
	// Nil gives every process static dummy keys.
	Credentials func(roleArn, sessionName string) (aws.Credentials, error)
	// Output receives every process's stdout and stderr, line by line, prefixed
	// "[<ByocName>] " (the function's name in functions/).
	// Nil means os.Stderr.
	Output io.Writer
	// Concurrency is AWS_LAMBDA_MAX_CONCURRENCY: how many invocations one process serves
	// at once. A workflow and an event can need the same function at the same moment;
	// 0 means 4.
	Concurrency int
	// MinBackoff and MaxBackoff bound the wait before restarting a crashed process (doubling
	// while it keeps crashing). Zero means 100 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// ReadyTimeout bounds how long Start waits for a new process to poll for work. Zero
	// means 10 s.
	ReadyTimeout time.Duration
	// Observer, when set, is told of every invocation a process completes.
	Observer func(Invocation)
	// Chaos, when armed, kills processes as they receive an invocation or answer it, or
	// times the invocation out (the local cloud's fault injection; nil injects nothing).
	Chaos *chaos.Injector
}

// Host supervises the function processes. Safe for concurrent use.
type Host struct {
	cfg   Config
	relay *relay
	out   *lineWriter
	mu    sync.Mutex
	procs map[string]*supervisor
	roots string // temporary directory of the task roots of bundles
}

// New returns a host that runs nothing yet. It listens on a loopback port of its own, the
// Runtime API its processes use (relayed to kumo's).
func New(cfg Config) (*Host, error) {
	if cfg.Output == nil {
		cfg.Output = os.Stderr
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Second
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = 10 * time.Second
	}
	// Each process runs in its binary's directory (LAMBDA_TASK_ROOT): the path must not
	// depend on the working directory.
	abs, err := filepath.Abs(cfg.BinDir)
	if err != nil {
		return nil, fmt.Errorf("lambdahost: BinDir %q: %w", cfg.BinDir, err)
	}
	cfg.BinDir = abs
	r, err := newRelay(cfg.RuntimeAPI, cfg.Observer)
	if err != nil {
		return nil, fmt.Errorf("lambdahost: %w", err)
	}
	h := &Host{cfg: cfg, relay: r, out: &lineWriter{w: cfg.Output}, procs: map[string]*supervisor{}}
	r.chaos, r.kill = cfg.Chaos, h.Kill
	return h, nil
}

// reservedEnv are the variables Lambda sets itself and refuses in a function's configuration
// (https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime).
var reservedEnv = []string{
	"_HANDLER", "_X_AMZN_TRACE_ID", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_EXECUTION_ENV",
	"AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_LAMBDA_FUNCTION_VERSION",
	"AWS_LAMBDA_INITIALIZATION_TYPE", "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME",
	"AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
	"AWS_LAMBDA_RUNTIME_API", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR",
}

var (
	functionNamePattern = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)
	envKeyPattern       = regexp.MustCompile(`^[a-zA-Z]([a-zA-Z0-9_])+$`)
)

// Validate checks a spec the way CreateFunction checks a configuration, and that its binary
// exists. Each error names the field and the rule.
func (h *Host) Validate(spec Spec) error {
	var errs []error
	if !functionNamePattern.MatchString(spec.Name) {
		errs = append(errs, fmt.Errorf("Name %q: must be 1 to 64 letters, digits, hyphens or underscores", spec.Name))
	}
	if spec.ByocName == "" || strings.ContainsAny(spec.ByocName, `/\`) || spec.ByocName == "." || spec.ByocName == ".." {
		errs = append(errs, fmt.Errorf("ByocName %q: must name a directory of functions/ (the byoc:function tag)", spec.ByocName))
	} else if st, err := os.Stat(h.binary(spec)); err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		errs = append(errs, fmt.Errorf("ByocName %q: no executable %s (run `make build` to build the functions for this machine)", spec.ByocName, h.binary(spec)))
	}
	for _, k := range sortedKeys(spec.Env) {
		if slices.Contains(reservedEnv, k) {
			errs = append(errs, fmt.Errorf("Env %s: is reserved by Lambda and cannot be set", k))
		} else if !envKeyPattern.MatchString(k) {
			errs = append(errs, fmt.Errorf("Env %q: names must start with a letter and contain only letters, digits and underscores", k))
		}
	}
	if spec.Timeout < 0 || spec.Timeout > 900*time.Second {
		errs = append(errs, fmt.Errorf("Timeout %s: must be between 1 and 900 seconds", spec.Timeout))
	}
	if spec.MemoryMB != 0 && (spec.MemoryMB < 128 || spec.MemoryMB > 10240) {
		errs = append(errs, fmt.Errorf("MemoryMB %d: must be between 128 and 10240", spec.MemoryMB))
	}
	return errors.Join(errs...)
}

func (h *Host) binary(spec Spec) string {
	return filepath.Join(h.cfg.BinDir, spec.ByocName, "bootstrap")
}

// Start runs a function and returns once its process polls for work, so an Invoke right
// after it is served. Starting a name that runs replaces its process (a stack update changed
// its configuration). An invalid spec starts nothing and leaves a running process of that
// name as it was. A process that never polls (it exits at start-up, as a function with a
// broken configuration does) is stopped, and the error says how often it exited.
func (h *Host) Start(ctx context.Context, spec Spec) error {
	if err := h.Validate(spec); err != nil {
		return fmt.Errorf("start function %s: %w", spec.Name, err)
	}
	root, err := h.taskRoot(spec)
	if err != nil {
		return fmt.Errorf("start function %s: %w", spec.Name, err)
	}
	env, err := h.environment(spec, root)
	if err != nil {
		return fmt.Errorf("start function %s: %w", spec.Name, err)
	}
	return h.launch(ctx, spec.Name, spec.ByocName, h.binary(spec), root, env)
}

// Swap runs a function from another binary (a test build of it) with the same environment
// and task root, until restore puts the function's own binary back.
func (h *Host) Swap(ctx context.Context, name, binary string) (restore func() error, err error) {
	h.mu.Lock()
	cur := h.procs[name]
	h.mu.Unlock()
	if cur == nil {
		return nil, fmt.Errorf("swap function %s: it does not run", name)
	}
	if err := h.launch(ctx, name, cur.logName, binary, cur.dir, cur.env); err != nil {
		return nil, err
	}
	return func() error { return h.launch(context.Background(), name, cur.logName, cur.binary, cur.dir, cur.env) }, nil
}

// launch starts a supervisor for a function, replacing the one it had, and waits until the
// process polls for work.
func (h *Host) launch(ctx context.Context, name, logName, binary, root string, env []string) error {
	spec := Spec{Name: name, ByocName: logName}
	s := &supervisor{
		host: h, name: spec.Name, logName: spec.ByocName, binary: binary, dir: root, env: env,
		stop: make(chan struct{}), done: make(chan struct{}), started: make(chan error, 1),
	}
	h.mu.Lock()
	old := h.procs[spec.Name]
	h.procs[spec.Name] = s
	h.mu.Unlock()
	if old != nil {
		old.halt()
	}
	h.relay.forget(spec.Name)
	ready := h.relay.pollSignal(spec.Name)
	go s.run()
	fail := func(err error) error {
		h.mu.Lock()
		if h.procs[spec.Name] == s {
			delete(h.procs, spec.Name)
		}
		h.mu.Unlock()
		s.halt()
		return fmt.Errorf("start function %s: %w", spec.Name, err)
	}
	if err := <-s.started; err != nil {
		return fail(err)
	}
	timer := time.NewTimer(h.cfg.ReadyTimeout)
	defer timer.Stop()
	select {
	case <-ready:
		return nil
	case <-ctx.Done():
		return fail(fmt.Errorf("waiting for its first poll: %w", ctx.Err()))
	case <-timer.C:
		return fail(fmt.Errorf("its process did not poll the Runtime API within %s (it exited %d times; see the [%s] lines above)",
			h.cfg.ReadyTimeout, s.exits(), spec.ByocName))
	}
}

// Kill kills a function's process, as a crash does: the invocations it held fail with
// Runtime.ExitError and the process is restarted. It reports whether the function runs.
func (h *Host) Kill(name string) bool {
	h.mu.Lock()
	s := h.procs[name]
	h.mu.Unlock()
	if s == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil {
		// A process that had already exited by itself gets no back-off on this restart:
		// harmless, and reading its exit state here would race the supervisor's Wait.
		s.killed = true
		_ = s.cmd.Process.Kill()
	}
	return true
}

// Runs reports whether a function has a process (or one being restarted).
func (h *Host) Runs(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.procs[name] != nil
}

// Invocations is how many invocations the processes have been handed.
func (h *Host) Invocations() int64 { return h.relay.invocations() }

// Stop ends a function's process. Stopping a name that does not run is not an error: the
// stack that deletes a function does not know whether it ever started.
func (h *Host) Stop(name string) error {
	h.mu.Lock()
	s := h.procs[name]
	delete(h.procs, name)
	h.mu.Unlock()
	if s != nil {
		s.halt()
		h.relay.forget(name)
	}
	return nil
}

// Close stops every process and the Runtime API relay.
func (h *Host) Close() error {
	h.mu.Lock()
	procs := h.procs
	h.procs = map[string]*supervisor{}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range procs {
		wg.Go(s.halt)
	}
	wg.Wait()
	h.relay.close()
	h.mu.Lock()
	roots := h.roots
	h.mu.Unlock()
	if roots != "" {
		return os.RemoveAll(roots)
	}
	return nil
}

// Running lists the functions that have a supervisor, sorted.
func (h *Host) Running() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return sortedKeys(h.procs)
}

// Restarts is how many times a function's process was restarted after it exited.
func (h *Host) Restarts(name string) int {
	h.mu.Lock()
	s := h.procs[name]
	h.mu.Unlock()
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// taskRoot returns the directory the process runs in: the binary's own, or, for a bundle
// with files, a directory of links to those files and to the host build as bootstrap.
func (h *Host) taskRoot(spec Spec) (string, error) {
	if spec.AssetDir == "" {
		return filepath.Dir(h.binary(spec)), nil
	}
	entries, err := os.ReadDir(spec.AssetDir)
	if err != nil {
		return "", fmt.Errorf("AssetDir %q: %w", spec.AssetDir, err)
	}
	h.mu.Lock()
	if h.roots == "" {
		if h.roots, err = os.MkdirTemp("", "byoc-lambda-"); err != nil {
			h.mu.Unlock()
			return "", err
		}
	}
	h.mu.Unlock()
	root := filepath.Join(h.roots, spec.Name)
	if err := os.RemoveAll(root); err != nil {
		return "", err
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", err
	}
	asset, err := filepath.Abs(spec.AssetDir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		if e.Name() == "bootstrap" {
			continue // the deploy build (linux/arm64): the host build replaces it
		}
		if err := os.Symlink(filepath.Join(asset, e.Name()), filepath.Join(root, e.Name())); err != nil {
			return "", err
		}
	}
	if err := os.Symlink(h.binary(spec), filepath.Join(root, "bootstrap")); err != nil {
		return "", err
	}
	return root, nil
}

// environment is what Lambda gives a provided.al2023 function, plus the template's
// variables (with /var/task mapped to the task root), plus the local cloud's endpoint.
func (h *Host) environment(spec Spec, root string) ([]string, error) {
	memory := spec.MemoryMB
	if memory == 0 {
		memory = 128
	}
	region := h.cfg.Region
	env := map[string]string{
		"PATH":                            "/usr/local/bin:/usr/bin:/bin",
		"TZ":                              ":UTC",
		"LANG":                            "en_US.UTF-8",
		"AWS_REGION":                      region,
		"AWS_DEFAULT_REGION":              region,
		"AWS_EXECUTION_ENV":               "AWS_Lambda_provided.al2023",
		"AWS_LAMBDA_FUNCTION_NAME":        spec.Name,
		"AWS_LAMBDA_FUNCTION_VERSION":     "$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": strconv.Itoa(memory),
		"AWS_LAMBDA_INITIALIZATION_TYPE":  "on-demand",
		"AWS_LAMBDA_LOG_GROUP_NAME":       "/aws/lambda/" + spec.Name,
		"AWS_LAMBDA_LOG_STREAM_NAME":      time.Now().UTC().Format("2006/01/02") + "/[$LATEST]local",
		"AWS_LAMBDA_RUNTIME_API":          h.relay.addr + "/_runtime/" + spec.Name,
		"AWS_LAMBDA_MAX_CONCURRENCY":      strconv.Itoa(h.cfg.Concurrency),
		"LAMBDA_TASK_ROOT":                root,
		"AWS_ENDPOINT_URL":                h.cfg.Endpoint,
		// A Go heap limit a little under the memory size, as the sandbox's memory is.
		"GOMEMLIMIT": strconv.Itoa(memory*9/10) + "MiB",
	}
	creds := aws.Credentials{AccessKeyID: "AKIDLOCAL", SecretAccessKey: "local"}
	if spec.Credentials.AccessKeyID != "" {
		creds = spec.Credentials
	} else if h.cfg.Credentials != nil && spec.RoleArn != "" {
		c, err := h.cfg.Credentials(spec.RoleArn, spec.Name)
		if err != nil {
			return nil, fmt.Errorf("RoleArn %q: credentials for the execution role: %w", spec.RoleArn, err)
		}
		creds = c
	}
	env["AWS_ACCESS_KEY_ID"] = creds.AccessKeyID
	env["AWS_SECRET_ACCESS_KEY"] = creds.SecretAccessKey
	if creds.SessionToken != "" {
		env["AWS_SESSION_TOKEN"] = creds.SessionToken
	}
	maps.Copy(env, h.cfg.Env)
	for k, v := range spec.Env {
		if rest, ok := strings.CutPrefix(v, lambdaTaskRoot); ok && (rest == "" || strings.HasPrefix(rest, "/")) {
			v = root + rest
		}
		env[k] = v
	}
	out := make([]string, 0, len(env))
	for _, k := range sortedKeys(env) {
		out = append(out, k+"="+env[k])
	}
	return out, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// supervisor keeps one function's process running.
type supervisor struct {
	host    *Host
	name    string
	logName string // the prefix of its output: the byoc name, which people know
	binary  string
	dir     string // the task root: the process's working directory
	env     []string
	stop    chan struct{}
	done    chan struct{}
	started chan error // the first start's outcome
	once    sync.Once

	mu       sync.Mutex
	cmd      *exec.Cmd
	restarts int
	exited   int
	killed   bool // Kill ended the process: Lambda replaces a recycled sandbox at once
}

func (s *supervisor) exits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exited
}

func (s *supervisor) halt() {
	s.once.Do(func() { close(s.stop) })
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		// Lambda sends SIGTERM to a sandbox it shuts down when an extension is registered,
		// and SIGKILL otherwise; these processes have nothing to flush.
		_ = cmd.Process.Kill()
	}
	<-s.done
}

func (s *supervisor) run() {
	defer close(s.done)
	backoff := s.host.cfg.MinBackoff
	first := true
	for {
		cmd := exec.Command(s.binary)
		cmd.Env = s.env
		cmd.Dir = s.dir
		stdout := s.host.out.prefixed(s.logName)
		cmd.Stdout, cmd.Stderr = stdout, stdout
		s.mu.Lock()
		select {
		case <-s.stop:
			s.mu.Unlock()
			if first {
				s.started <- errors.New("stopped before it started")
			}
			return
		default:
		}
		err := cmd.Start()
		if err == nil {
			s.cmd = cmd
		}
		s.mu.Unlock()
		if first {
			s.started <- err
			first = false
			if err != nil {
				return
			}
		}
		began := time.Now()
		if err == nil {
			err = cmd.Wait()
		}
		stdout.flush()
		s.mu.Lock()
		s.exited++
		s.mu.Unlock()
		s.host.relay.abandon(s.name, exitReason(err))
		select {
		case <-s.stop:
			return
		default:
		}
		if time.Since(began) > 10*time.Second {
			backoff = s.host.cfg.MinBackoff // it ran fine for a while: this is a new crash
		}
		s.mu.Lock()
		killed := s.killed
		s.killed = false
		s.mu.Unlock()
		wait := backoff
		if killed {
			// Killed from outside (fault injection), not crashing by itself: no backoff.
			wait = 0
		} else {
			backoff = min(2*backoff, s.host.cfg.MaxBackoff)
		}
		s.host.out.line(s.logName, fmt.Sprintf("process exited (%v); restarting in %s", describeExit(err), wait))
		select {
		case <-s.stop:
			return
		case <-time.After(wait):
		}
		s.mu.Lock()
		s.restarts++
		s.mu.Unlock()
	}
}

func exitReason(err error) error {
	if err == nil {
		return errors.New("exit status 0")
	}
	return err
}

func describeExit(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// lineWriter serialises whole lines from many processes onto one writer.
type lineWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lineWriter) line(name, text string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = fmt.Fprintf(l.w, "[%s] %s\n", name, text)
}

func (l *lineWriter) prefixed(name string) *prefixWriter {
	return &prefixWriter{parent: l, name: name}
}

// prefixWriter splits a process's output into lines; a partial last line waits for its end
// (or for the process to exit).
type prefixWriter struct {
	parent *lineWriter
	name   string
	mu     sync.Mutex
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := bytes.IndexByte(p.buf, '\n')
		if i < 0 {
			break
		}
		p.parent.line(p.name, string(p.buf[:i]))
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		p.parent.line(p.name, string(p.buf))
		p.buf = nil
	}
}
