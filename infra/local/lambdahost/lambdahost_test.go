package lambdahost

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
	ltypes "github.com/aws/aws-sdk-go-v2/service/lambda/types"

	"github.com/byocloud/byoc/infra/local/chaos"
	"github.com/byocloud/byoc/shared/cloud/cloudtest"
)

// binDir holds testdata/echo built once for all tests as <binDir>/echo/bootstrap.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "lambdahost-bin")
	if err != nil {
		panic(err)
	}
	binDir = dir
	build := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", filepath.Join(dir, "echo", "bootstrap"), "./testdata/echo")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build the test function:", err)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects the host's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	env    *cloudtest.Env
	host   *Host
	out    *syncBuffer
	lambda *lambda.Client
}

func newFixture(t *testing.T, creds func(string, string) (aws.Credentials, error), observe func(Invocation)) *fixture {
	t.Helper()
	env := cloudtest.Start(t)
	out := &syncBuffer{}
	h, err := New(Config{
		BinDir:      binDir,
		RuntimeAPI:  strings.TrimPrefix(env.URL, "http://"),
		Endpoint:    "http://127.0.0.1:4566",
		Region:      "eu-west-1",
		Credentials: creds,
		Output:      out,
		MinBackoff:  20 * time.Millisecond,
		Observer:    observe,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	return &fixture{env: env, host: h, out: out, lambda: lambda.NewFromConfig(env.Config)}
}

// createFunction registers a function in kumo (the stack engine does this for the template's
// functions); kumo only needs a zip, the code that runs is the host's binary.
func (f *fixture) createFunction(t *testing.T, timeout int32) string {
	t.Helper()
	name := cloudtest.UniqueName("echo")
	var zipped bytes.Buffer
	zw := zip.NewWriter(&zipped)
	w, _ := zw.Create("bootstrap")
	_, _ = w.Write([]byte("unused"))
	_ = zw.Close()
	_, err := f.lambda.CreateFunction(context.Background(), &lambda.CreateFunctionInput{
		FunctionName: aws.String(name),
		Runtime:      ltypes.RuntimeProvidedal2023,
		Handler:      aws.String("bootstrap"),
		Role:         aws.String("arn:aws:iam::000000000000:role/echo"),
		Code:         &ltypes.FunctionCode{ZipFile: zipped.Bytes()},
		Timeout:      aws.Int32(timeout),
	})
	if err != nil {
		t.Fatalf("create function: %v", err)
	}
	return name
}

// invoke calls the function and returns its payload and function error ("" on success).
func (f *fixture) invoke(t *testing.T, name, payload string) (map[string]string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := f.lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(name), Payload: []byte(payload)}, func(o *lambda.Options) {
		o.RetryMaxAttempts = 1
	})
	if err != nil {
		t.Fatalf("invoke %s: %v", name, err)
	}
	if out.FunctionError != nil {
		return nil, *out.FunctionError + ": " + string(out.Payload)
	}
	var env map[string]string
	if err := json.Unmarshal(out.Payload, &env); err != nil {
		t.Fatalf("payload %s: %v", out.Payload, err)
	}
	return env, ""
}

func TestRunsTheBinaryWithLambdasEnvironment(t *testing.T) {
	var issuedFor []string
	creds := func(roleArn, session string) (aws.Credentials, error) {
		issuedFor = append(issuedFor, roleArn+" "+session)
		return aws.Credentials{AccessKeyID: "ASIAROLE", SecretAccessKey: "s", SessionToken: "tok"}, nil
	}
	f := newFixture(t, creds, nil)
	name := f.createFunction(t, 5)
	err := f.host.Start(context.Background(), Spec{
		Name: name, ByocName: "echo", MemoryMB: 256, Timeout: 5 * time.Second,
		RoleArn: "arn:aws:iam::000000000000:role/EchoRole",
		Env:     map[string]string{"TABLE_NAME": "byoc-table"},
	})
	if err != nil {
		t.Fatal(err)
	}
	env, fnErr := f.invoke(t, name, `{}`)
	if fnErr != "" {
		t.Fatalf("function error: %s", fnErr)
	}
	want := map[string]string{
		"TABLE_NAME":                      "byoc-table",
		"AWS_LAMBDA_FUNCTION_NAME":        name,
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
		"AWS_ENDPOINT_URL":                "http://127.0.0.1:4566",
		"AWS_REGION":                      "eu-west-1",
		"AWS_ACCESS_KEY_ID":               "ASIAROLE",
		"AWS_SESSION_TOKEN":               "tok",
		"GOMEMLIMIT":                      "230MiB",
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	// Credentials given with the spec win over issuing new ones.
	given := f.createFunction(t, 5)
	if err := f.host.Start(context.Background(), Spec{Name: given, ByocName: "echo", RoleArn: "arn:aws:iam::000000000000:role/EchoRole",
		Credentials: aws.Credentials{AccessKeyID: "ASIAGIVEN", SecretAccessKey: "g", SessionToken: "gt"}}); err != nil {
		t.Fatal(err)
	}
	if genv, fnErr := f.invoke(t, given, `{}`); fnErr != "" || genv["AWS_ACCESS_KEY_ID"] != "ASIAGIVEN" || genv["AWS_SESSION_TOKEN"] != "gt" {
		t.Errorf("given credentials: key %q token %q (%s)", genv["AWS_ACCESS_KEY_ID"], genv["AWS_SESSION_TOKEN"], fnErr)
	}
	if api := env["AWS_LAMBDA_RUNTIME_API"]; !strings.HasPrefix(api, "127.0.0.1:") || !strings.HasSuffix(api, "/_runtime/"+name) {
		t.Errorf("AWS_LAMBDA_RUNTIME_API = %q, want the host's relay to kumo, path /_runtime/%s", api, name)
	}
	if len(issuedFor) != 1 || issuedFor[0] != "arn:aws:iam::000000000000:role/EchoRole "+name {
		t.Errorf("credentials issued for %v, want one session of EchoRole named after the function", issuedFor)
	}
	if got := f.host.Running(); len(got) != 2 || !slices.Contains(got, name) {
		t.Errorf("Running() = %v", got)
	}
}

func TestCrashedProcessIsRestartedAndLogsArePrefixed(t *testing.T) {
	f := newFixture(t, nil, nil)
	name := f.createFunction(t, 30)
	if err := f.host.Start(context.Background(), Spec{Name: name, ByocName: "echo"}); err != nil {
		t.Fatal(err)
	}
	if _, fnErr := f.invoke(t, name, `{"log":"hello from the handler"}`); fnErr != "" {
		t.Fatalf("function error: %s", fnErr)
	}
	// The crash: the process exits mid-invocation; the caller gets Lambda's error at once.
	began := time.Now()
	_, fnErr := f.invoke(t, name, `{"crash":true}`)
	if !strings.Contains(fnErr, `"errorType":"Runtime.ExitError"`) || !strings.Contains(fnErr, "Runtime exited with error: exit status 3") {
		t.Fatalf("an invocation whose process exits must fail with Runtime.ExitError, got %q", fnErr)
	}
	if waited := time.Since(began); waited > 10*time.Second {
		t.Errorf("the crash was reported after %s: the caller must not wait out the function timeout", waited)
	}
	deadline := time.Now().Add(30 * time.Second)
	for f.host.Restarts(name) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the crashed process was not restarted")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, fnErr := f.invoke(t, name, `{}`); fnErr != "" {
		t.Fatalf("after the restart the function must serve again: %s", fnErr)
	}
	out := f.out.String()
	for _, want := range []string{
		"[echo] hello from the handler\n",
		"[echo] crashing on request\n",
		"[echo] process exited (exit status 3); restarting in",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestStopEndsTheProcessAndStartReplacesIt(t *testing.T) {
	f := newFixture(t, nil, nil)
	name := f.createFunction(t, 3)
	if err := f.host.Start(context.Background(), Spec{Name: name, ByocName: "echo", Env: map[string]string{"VERSION": "1"}}); err != nil {
		t.Fatal(err)
	}
	if err := f.host.Start(context.Background(), Spec{Name: name, ByocName: "echo", Env: map[string]string{"VERSION": "2"}}); err != nil {
		t.Fatal(err)
	}
	for range 3 { // only the new process polls: every invocation sees version 2
		if env, fnErr := f.invoke(t, name, `{}`); fnErr != "" || env["VERSION"] != "2" {
			t.Fatalf("after replacement VERSION = %q (error %q), want 2", env["VERSION"], fnErr)
		}
	}
	if err := f.host.Stop(name); err != nil {
		t.Fatal(err)
	}
	if got := f.host.Running(); len(got) != 0 {
		t.Errorf("Running() after Stop = %v", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := f.lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(name), Payload: []byte(`{}`)}, func(o *lambda.Options) { o.RetryMaxAttempts = 1 })
	if err == nil {
		t.Error("a stopped function must not answer")
	}
	if err := f.host.Stop("never-started"); err != nil {
		t.Errorf("stopping an unknown function: %v", err)
	}
}

func TestInvalidSpecStartsNothing(t *testing.T) {
	h, err := New(Config{BinDir: binDir, RuntimeAPI: "127.0.0.1:1", Output: &syncBuffer{}})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	cases := []struct {
		spec Spec
		want string
	}{
		{Spec{Name: "ok", ByocName: "missing"}, `ByocName "missing": no executable ` + filepath.Join(binDir, "missing", "bootstrap") + " (run `make build`"},
		{Spec{Name: "ok", ByocName: "../echo"}, `ByocName "../echo": must name a directory of functions/`},
		{Spec{Name: "bad name!", ByocName: "echo"}, `Name "bad name!": must be 1 to 64 letters`},
		{Spec{Name: "ok", ByocName: "echo", Env: map[string]string{"AWS_REGION": "x"}}, "Env AWS_REGION: is reserved by Lambda"},
		{Spec{Name: "ok", ByocName: "echo", Env: map[string]string{"1BAD": "x"}}, `Env "1BAD": names must start with a letter`},
		{Spec{Name: "ok", ByocName: "echo", Timeout: 901 * time.Second}, "Timeout 15m1s: must be between 1 and 900 seconds"},
		{Spec{Name: "ok", ByocName: "echo", MemoryMB: 64}, "MemoryMB 64: must be between 128 and 10240"},
	}
	for _, c := range cases {
		err := h.Start(context.Background(), c.spec)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Start(%+v) error = %v, want %q", c.spec, err, c.want)
		}
		if got := h.Running(); len(got) != 0 {
			t.Fatalf("a refused spec left %v running", got)
		}
	}
	credsErr, err := New(Config{BinDir: binDir, RuntimeAPI: "127.0.0.1:1", Output: &syncBuffer{}, Credentials: func(string, string) (aws.Credentials, error) {
		return aws.Credentials{}, fmt.Errorf("no such role")
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer credsErr.Close()
	if err := credsErr.Start(context.Background(), Spec{Name: "ok", ByocName: "echo", RoleArn: "arn:aws:iam::000000000000:role/x"}); err == nil || !strings.Contains(err.Error(), "no such role") {
		t.Errorf("credential failure: error = %v", err)
	}
	if got := credsErr.Running(); len(got) != 0 {
		t.Errorf("credential failure left %v running", got)
	}
}

func TestInvalidReplacementKeepsTheRunningProcess(t *testing.T) {
	f := newFixture(t, nil, nil)
	name := f.createFunction(t, 3)
	if err := f.host.Start(context.Background(), Spec{Name: name, ByocName: "echo", Env: map[string]string{"VERSION": "1"}}); err != nil {
		t.Fatal(err)
	}
	if err := f.host.Start(context.Background(), Spec{Name: name, ByocName: "echo", Env: map[string]string{"AWS_REGION": "x"}}); err == nil {
		t.Fatal("a reserved variable must be refused")
	}
	if env, fnErr := f.invoke(t, name, `{}`); fnErr != "" || env["VERSION"] != "1" {
		t.Errorf("the running process must be untouched: VERSION=%q error=%q", env["VERSION"], fnErr)
	}
}

func TestObserverSeesEveryInvocation(t *testing.T) {
	var mu sync.Mutex
	var seen []Invocation
	f := newFixture(t, nil, func(inv Invocation) {
		mu.Lock()
		seen = append(seen, inv)
		mu.Unlock()
	})
	name := f.createFunction(t, 3)
	if err := f.host.Start(context.Background(), Spec{Name: name, ByocName: "echo", Env: map[string]string{"MARK": "m"}}); err != nil {
		t.Fatal(err)
	}
	f.invoke(t, name, `{"log":"one"}`)
	f.invoke(t, name, `{"crash":true}`)
	deadline := time.Now().Add(30 * time.Second)
	for f.host.Invocations() < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := f.host.Invocations(); got != 2 {
		t.Errorf("Invocations() = %d, want 2", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Fatalf("observed %d completed invocations, want 2: %+v", len(seen), seen)
	}
	inv := seen[0]
	if inv.Function != name || string(inv.Payload) != `{"log":"one"}` || inv.Failed || !strings.Contains(string(inv.Response), `"MARK":"m"`) || inv.RequestID == "" {
		t.Errorf("observed %+v", inv)
	}
	if crash := seen[1]; !crash.Failed || !strings.Contains(string(crash.Response), "Runtime.ExitError") {
		t.Errorf("the crashed invocation must be observed as failed with Runtime.ExitError: %+v", crash)
	}
}

func TestProcessThatNeverPollsFailsStart(t *testing.T) {
	env := cloudtest.Start(t)
	out := &syncBuffer{}
	h, err := New(Config{
		BinDir: binDir, RuntimeAPI: strings.TrimPrefix(env.URL, "http://"), Output: out,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, ReadyTimeout: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	err = h.Start(context.Background(), Spec{Name: "broken", ByocName: "echo", Env: map[string]string{"ECHO_EXIT_AT_START": "1"}})
	if err == nil || !strings.Contains(err.Error(), "start function broken: its process did not poll the Runtime API within 300ms") {
		t.Fatalf("error = %v, want the did-not-poll rule", err)
	}
	if got := h.Running(); len(got) != 0 {
		t.Errorf("a function that never became ready is left running: %v", got)
	}
	if !strings.Contains(out.String(), "[echo] bad configuration") || !strings.Contains(err.Error(), "see the [echo] lines") {
		t.Errorf("its output must be shown, prefixed:\n%s", out.String())
	}
}

func TestBundleFilesAreServedFromTheTaskRoot(t *testing.T) {
	f := newFixture(t, nil, nil)
	asset := t.TempDir()
	if err := os.WriteFile(filepath.Join(asset, "infrastructure.template.json"), []byte(`{"Resources":{}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	// The deploy build in the bundle is for another platform: it must not be what runs.
	if err := os.WriteFile(filepath.Join(asset, "bootstrap"), []byte("not this machine's binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	name := f.createFunction(t, 3)
	err := f.host.Start(context.Background(), Spec{Name: name, ByocName: "echo", AssetDir: asset,
		Env: map[string]string{"INFRA_TEMPLATE_PATH": "/var/task/infrastructure.template.json", "OTHER": "/var/taskforce"}})
	if err != nil {
		t.Fatal(err)
	}
	env, fnErr := f.invoke(t, name, `{}`)
	path := env["INFRA_TEMPLATE_PATH"]
	if fnErr != "" || !strings.HasSuffix(path, "/"+name+"/infrastructure.template.json") || env["OTHER"] != "/var/taskforce" {
		t.Fatalf("INFRA_TEMPLATE_PATH = %q, OTHER = %q (%s): /var/task must map to the task root, and only it", path, env["OTHER"], fnErr)
	}
	env, fnErr = f.invoke(t, name, `{"read":"`+path+`"}`)
	if fnErr != "" || env["READ"] != `{"Resources":{}}` || env["LAMBDA_TASK_ROOT"] != filepath.Dir(path) || env["PWD"] != filepath.Dir(path) {
		t.Errorf("READ=%q LAMBDA_TASK_ROOT=%q PWD=%q (%s)", env["READ"], env["LAMBDA_TASK_ROOT"], env["PWD"], fnErr)
	}
	err = f.host.Start(context.Background(), Spec{Name: name, ByocName: "echo", AssetDir: filepath.Join(asset, "missing")})
	if err == nil || !strings.Contains(err.Error(), "AssetDir") {
		t.Errorf("a missing bundle: error = %v", err)
	}
}

// Chaos at the host: a process killed as it receives an invocation (its handler never
// runs), killed after its handler (the side effects done, the answer lost), or the
// invocation timed out after its side effects. Lambda's errors come back at once, and the
// killed process is replaced without the crash back-off.
func TestChaosKillsAndTimesOutInvocations(t *testing.T) {
	for _, c := range []struct {
		fault      chaos.Fault
		errorType  string
		handlerRan bool
	}{
		{chaos.KillBefore, "Runtime.ExitError", false},
		{chaos.KillAfter, "Runtime.ExitError", true},
		{chaos.Timeout, "Sandbox.Timedout", true},
	} {
		t.Run(string(c.fault), func(t *testing.T) {
			f := newFixture(t, nil, nil)
			in := chaos.New(nil)
			f.host.relay.chaos = in
			name := f.createFunction(t, 30)
			if err := f.host.Start(context.Background(), Spec{Name: name, ByocName: "echo"}); err != nil {
				t.Fatal(err)
			}
			in.Arm(1, chaos.Profile{Name: "t", Rates: map[chaos.Fault]float64{c.fault: 1}, FirstOnly: true})
			_, fnErr := f.invoke(t, name, `{"log":"the handler ran"}`)
			if !strings.Contains(fnErr, `"errorType":"`+c.errorType+`"`) {
				t.Fatalf("invocation under %s: %q, want %s", c.fault, fnErr, c.errorType)
			}
			if ran := strings.Contains(f.out.String(), "the handler ran"); ran != c.handlerRan {
				t.Fatalf("handler ran = %v under %s, want %v:\n%s", ran, c.fault, c.handlerRan, f.out.String())
			}
			if in.Report().Injected[c.fault] != 1 {
				t.Fatalf("report %s", in.Report())
			}
			in.Disarm()
			deadline := time.Now().Add(30 * time.Second)
			for f.host.Restarts(name) < 1 {
				if time.Now().After(deadline) {
					t.Fatal("the killed process was not restarted")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if !strings.Contains(f.out.String(), "restarting in 0s") {
				t.Errorf("a killed process must be replaced at once:\n%s", f.out.String())
			}
			if _, fnErr := f.invoke(t, name, `{}`); fnErr != "" {
				t.Fatalf("after the restart the function must serve again: %s", fnErr)
			}
		})
	}
}
