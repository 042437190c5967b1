package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/byocloud/byoc/infra/operator/console"
)

// The web console in a real headless Chromium, against the local cloud's API: the fleet page
// lists the deployment, its page shows the service, a service action asks for confirmation
// and round-trips (the agent applies it, the page follows the workflow to its end), and an
// error from the API is shown to the operator, not swallowed.
//
// BYOC_SCREENSHOTS=<dir> also saves the two pages (docs/ holds the ones the README shows).
func TestConsoleInChromium(t *testing.T) {
	browser := chromium(t)
	tn := onboard(t)
	defer shared.runner.Retire(context.Background(), tn.dep.ID)
	sim := simulate(t, tn, "svc-a", "svc-b")
	defer sim.Remove(tn.dep.ID)
	// The agent and exporter keep working while the test clicks.
	stepCtx, stopSteps := context.WithCancel(context.Background())
	stepped := make(chan struct{})
	go func() {
		defer close(stepped)
		for stepCtx.Err() == nil {
			_, _ = sim.Step(stepCtx)
			select {
			case <-stepCtx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	defer func() { stopSteps(); <-stepped }()

	ln, err := console.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: console.New(shared.runner.API(), ln.Addr().String())}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	base := "http://" + ln.Addr().String()

	ctx, cancel := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.Headless, chromedp.DisableGPU, chromedp.WindowSize(1400, 900))...)
	defer cancel()
	ctx, cancel = chromedp.NewContext(ctx)
	defer cancel()
	// The browser lives as long as the context of the first call: no timeout on that one.
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	// Every confirmation is accepted, as the operator would.
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for _, err := range dialogs {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: true})
		}
	}()
	step, cancelSteps := context.WithTimeout(ctx, 2*time.Minute)
	defer cancelSteps()
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(step, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	id := tn.dep.ID
	row := fmt.Sprintf(`#fleet tr[data-id="%s"]`, id)
	if err := chromedp.Do(step, chromedp.Navigate(base+"/"), chromedp.WaitVisible(chromedp.CSS(row))); err != nil {
		t.Fatalf("fleet page: %v", err)
	}
	if fleet := text("#fleet"); !strings.Contains(fleet, id) || !strings.Contains(fleet, "ready") {
		t.Fatalf("fleet page lists %q, want %s ready", fleet, id)
	}
	screenshot(t, step, "console-fleet.png")

	service := `#services tr[data-service="svc-a"]`
	if err := chromedp.Do(step, chromedp.Click(chromedp.CSS(row+" a")), chromedp.WaitVisible(chromedp.CSS(service))); err != nil {
		t.Fatalf("deployment page: %v", err)
	}
	if settings := text("#settings"); !strings.Contains(settings, tn.customer) {
		t.Fatalf("deployment page settings %q lack the account %s", settings, tn.customer)
	}
	screenshot(t, step, "console-deployment.png")

	// An action, confirmed, round-trips: the page follows the command workflow to its end and
	// shows the service stopped.
	if err := chromedp.Do(step,
		chromedp.Click(chromedp.CSS(service+` button[data-command="stop"]`)),
		waitText(`#notice`, "SUCCEEDED"),
		waitText(service+" td:nth-child(2)", "stopped"),
	); err != nil {
		t.Fatalf("stop svc-a from the console: %v", err)
	}
	if notice := text("#notice"); !strings.Contains(notice, "command stop-") {
		t.Fatalf("notice %q, want the command workflow followed", notice)
	}
	// An error from the API reaches the operator: retrying a ready deployment is refused.
	if err := chromedp.Do(step, chromedp.Click(chromedp.CSS(`#retry`)), waitText(`#error`, "409")); err != nil {
		t.Fatalf("retry from the console: %v", err)
	}
	if shown := text("#error"); !strings.Contains(shown, "only a failed provisioning is retried") {
		t.Fatalf("the error shown is %q, want the API's 409 and its reason", shown)
	}

	// A fleet longer than a page: the counts are the whole fleet's, and the pages follow each
	// other without a deployment shown twice.
	seedDeleted(t, 101)
	firstRow := `#fleet tbody tr:first-child`
	filter := `const f = document.getElementById("filter"); f.value = "deleted"; f.dispatchEvent(new Event("change")); void 0;`
	if err := chromedp.Do(step, chromedp.Navigate(base+"/#/"), chromedp.WaitVisible(chromedp.CSS(`#filter`)),
		chromedp.Evaluate[chromedp.Void](filter), waitText(firstRow, "deleted"), chromedp.WaitVisible(chromedp.CSS(`#next`))); err != nil {
		t.Fatalf("the deleted deployments' first page: %v", err)
	}
	deleted := regexp.MustCompile(`^(\d+)deleted$`).FindStringSubmatch(text(`#counts [data-status="deleted"]`))
	if n, _ := strconv.Atoi(append(deleted, "", "")[1]); n < 101 {
		t.Fatalf("the deleted count is %q, want the whole fleet's (at least 101)", deleted)
	}
	first := text(firstRow)
	if err := chromedp.Do(step, chromedp.Click(chromedp.CSS(`#next`)), waitText(`#pages`, "page 2"), chromedp.WaitVisible(chromedp.CSS(`#previous`))); err != nil {
		t.Fatalf("the next page: %v", err)
	}
	if second := text(firstRow); second == first || !strings.Contains(second, "deleted") {
		t.Fatalf("page 2 starts with %q, page 1 with %q: want another deleted deployment", second, first)
	}
	if err := chromedp.Do(step, chromedp.Click(chromedp.CSS(`#previous`)), waitText(`#pages`, "page 1")); err != nil {
		t.Fatalf("back to the first page: %v", err)
	}
	if again := text(firstRow); again != first {
		t.Fatalf("back on page 1, the first row is %q, was %q", again, first)
	}
}

// waitText waits until the element is visible and its text contains want.
func waitText(sel, want string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		last := ""
		for {
			inner, cancel := context.WithTimeout(ctx, time.Second)
			text, err := chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible)(inner, tg)
			cancel()
			if err == nil {
				if strings.Contains(text, want) {
					return chromedp.Void{}, nil
				}
				last = text
			}
			select {
			case <-ctx.Done():
				return chromedp.Void{}, fmt.Errorf("%s never said %q (last %q): %w", sel, want, last, ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	dir := os.Getenv("BYOC_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// chromium is Debian's Chromium, which .ci/run installs: the test needs a real browser.
func chromium(t *testing.T) string {
	for _, p := range []string{os.Getenv("BYOC_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	t.Fatal("no Chromium: install Debian's chromium package (.ci/run does), or set BYOC_CHROMIUM")
	return ""
}
