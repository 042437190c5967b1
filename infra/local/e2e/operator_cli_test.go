package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/byocloud/byoc/infra/local/datasim"
	"github.com/byocloud/byoc/infra/local/scenario"
	"github.com/byocloud/byoc/infra/operator/cli"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/scrape"
	"github.com/byocloud/byoc/shared/store"
)

// byoc runs the CLI in process against the local cloud's API.
func byoc(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = cli.Execute(args, &out, &errOut, shared.runner.API())
	return code, out.String(), errOut.String()
}

// A deployment recorded before the fleet index existed is neither listed nor counted until
// `byoc admin backfill-fleet-index` gives it the index's keys; a second run changes nothing.
func TestBackfillFleetIndexFromTheCLI(t *testing.T) {
	ctx := context.Background()
	ids := seedDeleted(t, 1)
	var id string
	for one := range ids {
		id = one
	}
	table := shared.runner.ControlPlane.Outputs[contract.OutputTableName]
	if _, err := dynamodb.NewFromConfig(shared.cloud.WatchConfig()).UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName: aws.String(table), Key: store.Key(store.DeploymentPK(id), "META"),
		UpdateExpression: aws.String("REMOVE " + store.AttrFleetPK + ", " + store.AttrFleetSK)}); err != nil {
		t.Fatal(err)
	}
	if listedAs(t, id, "deleted") {
		t.Fatalf("%s is listed without its fleet keys", id)
	}
	code, out, errOut := byoc(t, "admin", "backfill-fleet-index")
	if code != cli.ExitOK || !regexp.MustCompile(`^[1-9]\d* deployments of table `).MatchString(out) || !strings.Contains(errOut, "given their fleet keys") {
		t.Fatalf("admin backfill-fleet-index: exit %d\n%s%s", code, out, errOut)
	}
	if !listedAs(t, id, "deleted") {
		t.Fatalf("%s is not listed after the backfill", id)
	}
	if code, out, _ := byoc(t, "admin", "backfill-fleet-index"); code != cli.ExitOK || !strings.HasPrefix(out, "0 deployments") {
		t.Fatalf("a second backfill: exit %d\n%s, want nothing to do", code, out)
	}
}

// listedAs reports whether the API's fleet list, filtered to status, holds the deployment.
func listedAs(t *testing.T, id, status string) bool {
	t.Helper()
	token := ""
	for {
		path := "/v1/deployments?limit=100&status=" + status
		if token != "" {
			path += "&nextToken=" + token
		}
		r := apiCall(t, http.MethodGet, path, nil, "")
		wantStatus(t, r, http.StatusOK, "")
		var page struct {
			Deployments []struct{ ID string }
			NextToken   string
		}
		if err := json.Unmarshal(r.Result, &page); err != nil {
			t.Fatal(err)
		}
		for _, d := range page.Deployments {
			if d.ID == id {
				return true
			}
		}
		if page.NextToken == "" {
			return false
		}
		token = page.NextToken
	}
}

// The CLI over the API: tables and JSON, exit codes scripts can tell apart, --help on every
// command, a refusal printed with the API's reason.
func TestByocCLI(t *testing.T) {
	res, _ := run(t, scenario.Options{Scenario: scenario.Onboard})
	id := res.Deployment.ID
	defer shared.runner.Retire(t.Context(), id)

	code, out, errOut := byoc(t, "deployments", "get", id, "-o", "json")
	var d struct{ ID, Status string }
	if code != cli.ExitOK || json.Unmarshal([]byte(out), &d) != nil || d.ID != id || d.Status != "ready" {
		t.Fatalf("deployments get -o json: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := byoc(t, "deployments", "get", id); code != cli.ExitOK || !strings.Contains(out, "STATUS") || !strings.Contains(out, "ready") {
		t.Fatalf("deployments get (table): exit %d\n%s", code, out)
	}
	if code, out, _ := byoc(t, "deployments", "list", "--status", "ready", "--limit", "100"); code != cli.ExitOK || !strings.Contains(out, id) || !strings.HasPrefix(out, "ID") {
		t.Fatalf("deployments list: exit %d\n%s", code, out)
	}
	if code, out, _ := byoc(t, "deployments", "count"); code != cli.ExitOK || !strings.HasPrefix(out, "STATUS") || !regexp.MustCompile(`(?m)^ready +[1-9]`).MatchString(out) || !strings.Contains(out, "total") {
		t.Fatalf("deployments count: exit %d\n%s", code, out)
	}
	if code, out, _ := byoc(t, "deployments", "audit", id, "--limit", "3"); code != cli.ExitOK || !strings.Contains(out, "ACTION") || !strings.Contains(out, "more: --next-token") {
		t.Fatalf("deployments audit: exit %d\n%s", code, out)
	}
	// --wait follows a workflow, with progress, to its end.
	if code, out, errOut := byoc(t, "operation", "provision", "provision-"+id+"-1", "--wait", "-o", "json"); code != cli.ExitOK ||
		!strings.Contains(errOut, "SUCCEEDED after") || !strings.Contains(out, `"status": "SUCCEEDED"`) {
		t.Fatalf("operation --wait: exit %d\n%s%s", code, out, errOut)
	}
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"deployments", "get", "nosuchdeployment"}, cli.ExitNotFound, "404 deployment nosuchdeployment does not exist"},
		{[]string{"deployments", "retry", id}, cli.ExitConflict, "409 deployment " + id + " is ready"},
		{[]string{"deployments", "list", "--limit", "1000"}, cli.ExitRefused, "400 limit"},
		{[]string{"deployments", "frobnicate"}, cli.ExitUsage, "unknown command"},
		{[]string{"deployments", "get"}, cli.ExitUsage, "accepts 1 arg"},
		{[]string{"services", "scale", id, "ch-primary"}, cli.ExitUsage, "required flag"},
		{[]string{"deployments", "list", "-o", "yaml"}, cli.ExitUsage, "--output"},
	} {
		code, _, errOut := byoc(t, c.args...)
		if code != c.code || !strings.Contains(errOut, c.says) {
			t.Errorf("byoc %s: exit %d %q, want %d saying %q", strings.Join(c.args, " "), code, errOut, c.code, c.says)
		}
	}
	// --help on every command.
	root := cli.New(&bytes.Buffer{}, &bytes.Buffer{}, nil)
	for _, group := range root.Commands() {
		for _, cmd := range append(group.Commands(), group) {
			path := strings.Fields(cmd.CommandPath())[1:]
			code, out, _ := byoc(t, append(path, "--help")...)
			if code != cli.ExitOK || !strings.Contains(out, "Usage:") || !strings.Contains(out, cmd.Short) {
				t.Errorf("byoc %s --help: exit %d\n%s", strings.Join(path, " "), code, out)
			}
		}
	}
}

// The Prometheus integration: the API gives the seed's scrape configuration and the minimal
// scraping user; the simulated service serves /metrics_all in the seed's exposition format,
// which a real Prometheus text parser reads, and refuses a scrape without the user's password.
func TestPrometheusScrapeConfigAndMetrics(t *testing.T) {
	tn := onboard(t)
	defer shared.runner.Retire(t.Context(), tn.dep.ID)
	sim := simulate(t, tn, "svc-a")
	defer sim.Remove(tn.dep.ID)
	tick(t, sim)
	path := "/v1/deployments/" + tn.dep.ID + "/services/svc-a"
	until(t, 30*time.Second, "svc-a to be reported", func() (bool, string) {
		r := apiCall(t, http.MethodGet, path, nil, "")
		return r.Status == http.StatusOK, r.Error
	})
	r := apiCall(t, http.MethodGet, path+"/prometheus", nil, "")
	wantStatus(t, r, http.StatusOK, "")
	var c scrape.Config
	if err := json.Unmarshal(r.Result, &c); err != nil {
		t.Fatal(err)
	}
	target := "svc-a." + tn.dep.ID + ".byoc.local:8443"
	for _, want := range []string{`- job_name: "clickhouse-svc-a"`, `targets: ["` + target + `"]`, "scheme: https", `metrics_path: "/metrics_all"`,
		"basic_auth:", `username: "scraping_user"`, "honor_labels: true"} {
		if !strings.Contains(c.YAML, want) {
			t.Errorf("scrape configuration lacks %q:\n%s", want, c.YAML)
		}
	}
	if c.Private || c.Target != target || !strings.Contains(strings.Join(c.SQL, "\n"), "GRANT REMOTE ON *.* TO scraping_user\nGRANT SELECT ON system.custom_metrics TO scraping_user") {
		t.Errorf("config %+v", c)
	}
	if code, out, _ := byoc(t, "prometheus-config", tn.dep.ID, "svc-a"); code != cli.ExitOK || !strings.Contains(out, "GRANT SELECT ON system.custom_metrics TO scraping_user;") || !strings.Contains(out, `metrics_path: "/metrics_all"`) {
		t.Errorf("byoc prometheus-config: exit %d\n%s", code, out)
	}

	srv := httptest.NewServer(sim.MetricsHandler(tn.dep.ID, "svc-a", scrape.User, "s3cret"))
	defer srv.Close()
	get := func(user, password string) *http.Response {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+datasim.MetricsPath, nil)
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, creds := range [][2]string{{"", ""}, {scrape.User, "wrong"}, {"default", "s3cret"}} {
		if resp := get(creds[0], creds[1]); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("scrape as %q/%q: %d, want 401", creds[0], creds[1], resp.StatusCode)
		}
	}
	resp := get(scrape.User, "s3cret")
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the Prometheus text parser refuses /metrics_all: %v", err)
	}
	for name, typ := range map[string]string{
		"ClickHouse_CustomMetric_StorageSystemTablesS3DiskBytes": "GAUGE", "ClickHouse_CustomMetric_NumberOfBrokenDetachedParts": "GAUGE",
		"ClickHouse_CustomMetric_LostPartCount": "GAUGE", "ClickHouse_CustomMetric_NumberOfWarnings": "GAUGE",
		"ClickHouse_CustomMetric_TotalNumberOfErrors": "GAUGE", "ClickHouseErrorMetric_FILE_DOESNT_EXIST": "COUNTER",
	} {
		f := families[name]
		if f == nil || f.GetType().String() != typ || len(f.GetMetric()) == 0 {
			t.Errorf("family %s: %v, want a %s with a sample per replica", name, f, typ)
			continue
		}
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) == 0 || m.GetLabel()[0].GetName() != "hostname" {
				t.Errorf("%s sample without its hostname label: %v", name, m)
			}
		}
	}
}
