package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/infra/local/scenario"
	"github.com/byocloud/byoc/infra/operator/apiclient"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/store"
)

// operatorStore is the control plane's table, read and written as a test (not counted).
func operatorStore() *store.Store {
	return store.New(cloud.NewDynamoDB(shared.cloud.WatchConfig()), shared.runner.ControlPlane.Outputs["TableName"])
}

// apiCall is one call through the operator API as the vendor's root user; it fails the test
// on a transport error and returns the answer whatever its status.
func apiCall(t *testing.T, method, path string, body any, key string) *apiclient.Response {
	t.Helper()
	r, err := shared.runner.API().Do(context.Background(), method, path, body, key)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return r
}

func wantStatus(t *testing.T, r *apiclient.Response, status int, contains string) {
	t.Helper()
	msg := r.Error + r.Message
	if r.Status != status || !strings.Contains(msg, contains) {
		t.Fatalf("answer %d %q, want %d containing %q", r.Status, msg, status, contains)
	}
	if status >= 400 && r.RequestID == "" && r.Message == "" {
		t.Fatalf("error answer without a requestId: %+v", r)
	}
}

// The scenario drives the whole teardown through the API; the timeline shows the order: the
// services terminated, then the infrastructure stack deleted, then the deployment deleted.
func TestTeardownThroughTheAPI(t *testing.T) {
	res, rec := run(t, scenario.Options{Scenario: scenario.Teardown})
	td := res.Teardown
	if !strings.Contains(td.Refusal, "ch-analytics, ch-primary") || len(td.Terminated) != 2 || td.Operation.Name != "teardown-"+res.Deployment.ID+"-1" {
		t.Fatalf("teardown result %+v", td)
	}
	d := res.Deployment
	peeringStack := fmt.Sprintf("%s-%s-peering-%s", d.Settings.ResourcePrefix, d.ID, strings.TrimPrefix(td.Peered, "vpc-"))
	order(t, rec,
		customerStack(res.Customer, peeringStack, "CREATE_COMPLETE"),
		workflow("terminate-", "SUCCEEDED"),
		customerStack(res.Customer, peeringStack, "DELETE_COMPLETE"), // the network first
		customerStack(res.Customer, d.StackName, "DELETE_COMPLETE"),
		workflow("teardown-"+d.ID, "SUCCEEDED"),
	)
	if p := d.Network.Peerings; len(p) != 1 || p[0].State != "deleted" {
		t.Fatalf("the deleted deployment's peerings: %+v, want the one peering deleted", p)
	}
	entries, _, err := operatorStore().AuditPage(context.Background(), d.ID, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if entries[0].Action != "teardown.complete" || entries[0].To != lifecycle.Deleted || !strings.Contains(entries[0].Detail, "retained") {
		t.Fatalf("newest audit entry %+v, want teardown.complete -> deleted naming the retained bucket", entries[0])
	}
	// The record stays, and the account may be invited again.
	if _, err := shared.runner.Invite(context.Background(), res.Customer); err != nil {
		t.Fatalf("invite the account again after its deployment was deleted: %v", err)
	}
}

// A teardown that stops (a resource CloudFormation cannot delete yet) leaves the deployment
// failed naming the resource and CloudFormation's reason; one killed midway leaves it
// wherever it was. Deleting again resumes from there, and ends with nothing left.
func TestTeardownStoppedOrKilledMidwayIsResumed(t *testing.T) {
	res, rec := run(t, scenario.Options{Scenario: scenario.Onboard})
	d := res.Deployment
	path := "/v1/deployments/" + d.ID
	const reason = "resource sg-0a1b2c3d4e5f67890 has a dependent object"
	shared.cloud.Stacks.InjectDeleteFailure(res.Customer, d.StackName, "PrivateLbPeersSecurityGroup", reason)

	first := operation(t, apiCall(t, http.MethodDelete, path, map[string]any{}, ""))
	if first.Name != "teardown-"+d.ID+"-1" || !first.Started {
		t.Fatalf("first delete: %+v", first)
	}
	if end := waitOperation(t, first); end.Status != "FAILED" {
		t.Fatalf("teardown with an undeletable resource ended %s", end.Status)
	}
	failed, err := operatorStore().Get(context.Background(), d.ID)
	if err != nil {
		t.Fatal(err)
	}
	if failed.Status != lifecycle.Failed || failed.Failure == nil || failed.Failure.Status != contract.FailureTeardown ||
		failed.Failure.Resource != "PrivateLbPeersSecurityGroup" || !strings.Contains(failed.Failure.Reason, reason) {
		t.Fatalf("after the failed teardown: %s %+v, want failed naming the security group and CloudFormation's reason", failed.Status, failed.Failure)
	}
	// A failed teardown is not a failed provisioning: retry is refused, delete resumes.
	wantStatus(t, apiCall(t, http.MethodPost, path+"/retry", map[string]any{}, ""), http.StatusConflict, "delete it again")

	// Killed midway: the second teardown owns the deployment and waits on the stack's
	// deletion (held in progress) when it is stopped.
	release := shared.cloud.Stacks.HoldDelete(res.Customer, d.StackName)
	defer release()
	second := operation(t, apiCall(t, http.MethodDelete, path, map[string]any{}, ""))
	if second.Name != "teardown-"+d.ID+"-2" {
		t.Fatalf("second delete: %+v", second)
	}
	until(t, time.Minute, "the second teardown to wait on the stack's deletion", func() (bool, string) {
		cur, err := operatorStore().Get(context.Background(), d.ID)
		return err == nil && cur.Status == lifecycle.Deleting && strings.HasSuffix(cur.Execution, second.Name) && stackStatusIs(t, res.Customer, d.StackName, "DELETE_IN_PROGRESS"),
			string(cur.Status) + " " + cur.Execution
	})
	// A delete while it runs is answered with it: nothing new starts.
	during := operation(t, apiCall(t, http.MethodDelete, path, map[string]any{}, ""))
	if during.Name != second.Name || during.Started || during.Status != "RUNNING" {
		t.Fatalf("delete while %s runs: %+v, want it, not started again", second.Name, during)
	}
	arn := executionArnOf(t, second.Name)
	if _, err := sfn.NewFromConfig(shared.cloud.WatchConfig()).StopExecution(context.Background(), &sfn.StopExecutionInput{
		ExecutionArn: aws.String(arn), Error: aws.String("Killed"), Cause: aws.String("the test stops it midway")}); err != nil {
		t.Fatalf("stop %s: %v", arn, err)
	}
	if end := waitOperation(t, second); end.Status != "ABORTED" {
		t.Fatalf("stopped teardown ended %s", end.Status)
	}
	release() // the stack's deletion ends while no execution waits on it
	third := operation(t, apiCall(t, http.MethodDelete, path, map[string]any{}, ""))
	if third.Name != "teardown-"+d.ID+"-3" {
		t.Fatalf("third delete: %+v", third)
	}
	if end := waitOperation(t, third); end.Status != "SUCCEEDED" {
		t.Fatalf("resumed teardown ended %s %s %s", end.Status, end.Error, end.Cause)
	}
	done, err := operatorStore().Get(context.Background(), d.ID)
	if err != nil || done.Status != lifecycle.Deleted {
		t.Fatalf("after the resumed teardown: %s %v", done.Status, err)
	}
	order(t, rec,
		customerStack(res.Customer, d.StackName, "DELETE_FAILED"),
		workflow("teardown-"+d.ID+"-1", "FAILED"),
		customerStack(res.Customer, d.StackName, "DELETE_COMPLETE"),
		workflow("teardown-"+d.ID+"-3", "SUCCEEDED"),
	)
	entries, _, err := operatorStore().AuditPage(context.Background(), d.ID, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	took := false
	for _, e := range entries {
		took = took || (e.Action == "teardown.takeover" && strings.Contains(e.Detail, "resumes the teardown of") && strings.Contains(e.Detail, second.Name))
	}
	if !took {
		t.Fatalf("the third teardown did not record taking over from %s: %+v", second.Name, entries)
	}
	// Deleting a deleted deployment changes nothing and says so.
	again := operation(t, apiCall(t, http.MethodDelete, path, map[string]any{}, ""))
	if again.Started || again.Status != "SUCCEEDED" {
		t.Fatalf("delete of a deleted deployment: %+v", again)
	}
}

// A customer who removed byoc's access first (the bootstrap stack deleted) cannot be torn
// down: every step that opens their account is refused. Abandon retires the vendor side and
// leaves what byoc built there to the customer, named in the record and the notice; while the
// management role still works, abandon is refused and nothing changes.
func TestTeardownAbandonsAnAccountThatLocksByocOut(t *testing.T) {
	res, _ := run(t, scenario.Options{Scenario: scenario.Onboard})
	d := res.Deployment
	path := "/v1/deployments/" + d.ID
	abandon := map[string]any{"abandon": true}

	refused := operation(t, apiCall(t, http.MethodDelete, path, abandon, ""))
	if end := waitOperation(t, refused); end.Status != "FAILED" {
		t.Fatalf("abandon while the role works: %s", end.Status)
	}
	if cur, err := operatorStore().Get(context.Background(), d.ID); err != nil || cur.Status != lifecycle.Ready || cur.Teardown != nil {
		t.Fatalf("after the refused abandon: %s %+v %v, want it ready and untouched", cur.Status, cur.Teardown, err)
	}
	if entries, _, err := operatorStore().AuditPage(context.Background(), d.ID, 1, ""); err != nil || len(entries) != 1 || entries[0].Action != "teardown.refused" ||
		!strings.Contains(entries[0].Detail, "still lets byoc in") {
		t.Fatalf("newest audit entry %+v (%v), want the refusal and its reason", entries, err)
	}

	// The customer deletes the bootstrap stack, and with it byoc's management role.
	cfn := cloudformation.NewFromConfig(shared.cloud.ConfigAs(res.Customer))
	if _, err := cfn.DeleteStack(context.Background(), &cloudformation.DeleteStackInput{StackName: aws.String(contract.BootstrapStackName)}); err != nil {
		t.Fatal(err)
	}
	until(t, time.Minute, "the bootstrap stack to be deleted", func() (bool, string) {
		_, err := cfn.DescribeStacks(context.Background(), &cloudformation.DescribeStacksInput{StackName: aws.String(contract.BootstrapStackName)})
		return err != nil && strings.Contains(err.Error(), "does not exist"), fmt.Sprint(err)
	})
	locked := operation(t, apiCall(t, http.MethodDelete, path, map[string]any{}, ""))
	if end := waitOperation(t, locked); end.Status != "FAILED" {
		t.Fatalf("teardown of a locked account ended %s", end.Status)
	}
	if cur, err := operatorStore().Get(context.Background(), d.ID); err != nil || cur.Status != lifecycle.Failed || cur.Failure == nil ||
		cur.Failure.Status != contract.FailureTeardown || !strings.Contains(cur.Failure.Reason, "AccessDenied") {
		t.Fatalf("after the locked-out teardown: %s %+v %v, want failed with the access denial", cur.Status, cur.Failure, err)
	}

	gone := operation(t, apiCall(t, http.MethodDelete, path, abandon, ""))
	if end := waitOperation(t, gone); end.Status != "SUCCEEDED" {
		t.Fatalf("abandoning teardown ended %s %s %s", end.Status, end.Error, end.Cause)
	}
	done, err := operatorStore().Get(context.Background(), d.ID)
	if err != nil || done.Status != lifecycle.Deleted || done.Teardown == nil || !slices.Equal(done.Teardown.Abandoned, []string{d.StackName}) ||
		done.Teardown.RetainedBucket == "" {
		t.Fatalf("after abandoning: %s %+v %v, want deleted, the infrastructure stack and bucket left to the customer", done.Status, done.Teardown, err)
	}
	if !stackStatusIs(t, res.Customer, d.StackName, "CREATE_COMPLETE") {
		t.Fatal("the abandoned infrastructure stack was touched")
	}
	entries, _, err := operatorStore().AuditPage(context.Background(), d.ID, 10, "")
	if err != nil || len(entries) == 0 {
		t.Fatal(err, entries)
	}
	if entries[0].Action != "teardown.complete" || !strings.Contains(entries[0].Detail, "left to the customer") {
		t.Fatalf("newest audit entry %+v, want teardown.complete naming what was left", entries[0])
	}
	// The vendor side is retired: the account+region claim is released.
	if _, err := shared.runner.Invite(context.Background(), res.Customer); err != nil {
		t.Fatalf("invite the account again after abandoning its deployment: %v", err)
	}
}

// A teardown that told the customer what it left (its finish stopped after the notice) is
// finished as announced by the next delete, whatever that one asks: the stacks and bucket
// left stay recorded, and the customer's account is not opened again.
func TestTeardownResumedAfterItsNoticeFinishesAsAnnounced(t *testing.T) {
	res, _ := run(t, scenario.Options{Scenario: scenario.Onboard})
	ctx := context.Background()
	d, err := operatorStore().Get(ctx, res.Deployment.ID)
	if err != nil {
		t.Fatal(err)
	}
	told := store.Teardown{Abandon: true, Abandoned: []string{d.StackName}, RetainedBucket: "bucket-left-" + d.ID, Announced: true, Actor: "test"}
	next := d
	next.Status, next.Execution, next.Teardown = lifecycle.Deleting, executionArnOf(t, "teardown-"+d.ID+"-1"), &told
	if _, err = operatorStore().Update(ctx, d, next, store.Audit{Actor: "test", Action: "teardown.announcing", Detail: "a finish that stopped after the notice"}); err != nil {
		t.Fatal(err)
	}
	resumed := operation(t, apiCall(t, http.MethodDelete, "/v1/deployments/"+d.ID, map[string]any{"deleteData": true}, ""))
	if end := waitOperation(t, resumed); end.Status != "SUCCEEDED" {
		t.Fatalf("resumed teardown ended %s %s %s", end.Status, end.Error, end.Cause)
	}
	done, err := operatorStore().Get(ctx, d.ID)
	if err != nil || done.Status != lifecycle.Deleted || done.Teardown == nil || !slices.Equal(done.Teardown.Abandoned, told.Abandoned) ||
		done.Teardown.RetainedBucket != told.RetainedBucket || done.Teardown.DeleteData {
		t.Fatalf("after the resumed teardown: %s %+v %v, want deleted as announced", done.Status, done.Teardown, err)
	}
	if !stackStatusIs(t, res.Customer, d.StackName, "CREATE_COMPLETE") {
		t.Fatal("the resumed teardown deleted a stack it had told the customer it left")
	}
}

// stackStatusIs reports whether a customer stack is in a status.
func stackStatusIs(t *testing.T, account, name, status string) bool {
	out, err := cloudformation.NewFromConfig(shared.cloud.WatchConfigAs(account)).DescribeStacks(context.Background(),
		&cloudformation.DescribeStacksInput{StackName: aws.String(name)})
	return err == nil && len(out.Stacks) == 1 && string(out.Stacks[0].StackStatus) == status
}

func executionArnOf(t *testing.T, name string) string {
	t.Helper()
	out, err := sfn.NewFromConfig(shared.cloud.WatchConfig()).ListStateMachines(context.Background(), &sfn.ListStateMachinesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range out.StateMachines {
		if strings.Contains(aws.ToString(m.Name), "Teardown") {
			return strings.Replace(aws.ToString(m.StateMachineArn), ":stateMachine:", ":execution:", 1) + ":" + name
		}
	}
	t.Fatal("no teardown state machine")
	return ""
}

func operation(t *testing.T, r *apiclient.Response) apiclient.Operation {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("answer %d %s%s, want an operation", r.Status, r.Error, r.Message)
	}
	var op apiclient.Operation
	if err := json.Unmarshal(r.Result, &op); err != nil || op.Name == "" {
		t.Fatalf("not an operation: %s (%v)", r.Result, err)
	}
	return op
}

func waitOperation(t *testing.T, op apiclient.Operation) apiclient.Operation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	end, err := shared.runner.API().Wait(ctx, op, 100*time.Millisecond, nil)
	if err != nil {
		t.Fatalf("follow %s %s: %v", op.Workflow, op.Name, err)
	}
	return end
}

// A failed provisioning is retried through the API as the next execution, which starts
// with a fresh budget of attempts; a deployment that is not failed is not retried.
func TestRetryOfAFailedProvisioning(t *testing.T) {
	res, _ := run(t, scenario.Options{Scenario: scenario.InfraFails, FailResource: scenario.DefaultFailResource, FailReason: scenario.DefaultFailReason})
	d := res.Deployment
	op := operation(t, apiCall(t, http.MethodPost, "/v1/deployments/"+d.ID+"/retry", map[string]any{}, ""))
	if op.Workflow != "provision" || op.Name != fmt.Sprintf("provision-%s-%d", d.ID, res.Executions+1) || !op.Started {
		t.Fatalf("retry answered %+v, want provision-%s-%d started", op, d.ID, res.Executions+1)
	}
	if end := waitOperation(t, op); end.Status != "SUCCEEDED" {
		t.Fatalf("retried provisioning ended %s %s", end.Status, end.Cause)
	}
	ready, err := operatorStore().Get(context.Background(), d.ID)
	if err != nil || ready.Status != lifecycle.Ready || ready.Execution == "" || !strings.HasSuffix(ready.Execution, op.Name) {
		t.Fatalf("after the retry: %s by %s (%v), want ready by %s", ready.Status, ready.Execution, err, op.Name)
	}
	wantStatus(t, apiCall(t, http.MethodPost, "/v1/deployments/"+d.ID+"/retry", map[string]any{}, ""), http.StatusConflict, "only a failed provisioning is retried")
	shared.runner.Retire(context.Background(), d.ID)
}

// API Gateway's IAM check, as the local cloud plays it: an unsigned request, a wrong secret,
// an unknown key, an expired signature and another account's valid signature are refused
// with 403 before the API function runs.
func TestOperatorAPIRefusesUnsignedWrongAndForeignCallers(t *testing.T) {
	rec := shared.record(t)
	url := shared.cloud.URL + "/v1/deployments"
	send := func(creds *aws.Credentials, at time.Time) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if creds != nil {
			sum := sha256.Sum256(nil)
			if err := v4.NewSigner().SignHTTP(context.Background(), *creds, req, hex.EncodeToString(sum[:]), "execute-api", shared.cloud.Region, at); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body struct{ Message string }
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body.Message
	}
	vendor := accounts.AdminCredentials(localcloud.VendorAccount)
	wrong := vendor
	wrong.SecretAccessKey = "not-the-secret"
	unknown := aws.Credentials{AccessKeyID: "AKIAIOSFODNN7EXAMPLE", SecretAccessKey: "x"}
	customer := accounts.AdminCredentials("123456789013")
	// A session's key signed without its token, or with a token of its own making.
	session, err := shared.cloud.Accounts.FunctionCredentials("arn:aws:iam::"+localcloud.VendorAccount+":role/operator", "operator", 0)
	if err != nil {
		t.Fatal(err)
	}
	tokenless, forged := session, session
	tokenless.SessionToken = ""
	forged.SessionToken = "IQoJb3JpZ2luX2VjEforged"
	cases := []struct {
		name  string
		creds *aws.Credentials
		at    time.Time
		want  string
	}{
		{"unsigned", nil, time.Now(), "Missing Authentication Token"},
		{"wrong secret", &wrong, time.Now(), "signature we calculated does not match"},
		{"unknown key", &unknown, time.Now(), "security token included in the request is invalid"},
		{"session key without its token", &tokenless, time.Now(), "security token included in the request is invalid"},
		{"session key with a forged token", &forged, time.Now(), "security token included in the request is invalid"},
		{"expired", &vendor, time.Now().Add(-20 * time.Minute), "Signature expired"},
		{"another account", &customer, time.Now(), "is not authorized to perform: execute-api:Invoke"},
	}
	for _, c := range cases {
		if status, msg := send(c.creds, c.at); status != http.StatusForbidden || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %q, want 403 %q", c.name, status, msg, c.want)
		}
	}
	for _, e := range rec.all() {
		if e.Kind == localcloud.KindInvoke && e.Subject == contract.FunctionAPI {
			t.Fatalf("a refused request reached the API function: %s", e)
		}
	}
	// The vendor's own signed request goes through.
	if status, msg := send(&vendor, time.Now()); status != http.StatusOK {
		t.Fatalf("the vendor's signed request: %d %s", status, msg)
	}
}

// Every error is the envelope with the status, the rule broken and the request id; a bad
// request changes nothing.
func TestOperatorAPIErrors(t *testing.T) {
	res, _ := run(t, scenario.Options{Scenario: scenario.Onboard})
	id := res.Deployment.ID
	defer shared.runner.Retire(context.Background(), id)
	for _, c := range []struct {
		method, path string
		body         any
		status       int
		contains     string
	}{
		{"GET", "/v1/deployments/nosuchdeployment", nil, 404, "deployment nosuchdeployment does not exist"},
		{"GET", "/v1/deployments/Not_An_Id", nil, 400, "id: \"Not_An_Id\" must be " + settings.DeploymentIDRule},
		{"GET", "/v1/deployments?limit=0", nil, 400, "limit: \"0\" must be a whole number from 1 to 100"},
		{"GET", "/v1/deployments?status=gone", nil, 400, "status: \"gone\" is not one of"},
		{"GET", "/v1/deployments?nextToken=zzz", nil, 400, "nextToken: not a token of this list"},
		{"GET", "/v1/nothing-here", nil, 404, "no resource GET /v1/nothing-here"},
		{"POST", "/v1/deployments/" + id + "/retry", map[string]any{}, 409, "is ready: only a failed provisioning is retried"},
		{"DELETE", "/v1/deployments/" + id, map[string]any{"deleteData": "yes"}, 400, "deleteData: must be bool"},
		{"POST", "/v1/deployments/" + id + "/retry", map[string]any{"force": true}, 400, "\"force\": not a field of this request"},
		{"GET", "/v1/deployments/" + id + "/services/ch-nope", nil, 404, "has no service ch-nope"},
		{"PATCH", "/v1/deployments/" + id + "/services/ch-nope/state", map[string]any{"command": "reboot"}, 400, "command: \"reboot\" must be start, stop, terminate or idle"},
		{"PATCH", "/v1/deployments/" + id + "/services/ch-nope/scaling", map[string]any{"replicas": 0}, 400, "replicas: required, a whole number from 1 to 1000"},
		{"GET", "/v1/operations/upgrade/x", nil, 404, "workflow \"upgrade\""},
		{"GET", "/v1/operations/provision/provision-" + id + "-9", nil, 404, "no provision execution"},
		{"POST", "/v1/invitations", map[string]any{"customerId": "acme", "accountId": "12", "region": "us-east-1"}, 400, "accountId"},
		{"POST", "/v1/invitations", map[string]any{"customerId": "acme", "accountId": "222233334444", "region": "us-east-1", "purpose": "open"}, 400, "purpose: not a field of this request"},
		// The scenario took the deployment off maintenance (a later test's clock jumps must not
		// reach its window): the maintenance function refuses, and Refused is 409.
		{"PATCH", "/v1/deployments/" + id + "/maintenance", map[string]any{"channel": "fast"}, 409, "set a window first"},
		{"POST", "/v1/releases", map[string]any{"release": map[string]any{"component": "clickhouse"}}, 400, "version"},
		{"POST", "/v1/deployments/" + id + "/peerings", map[string]any{"peerAccount": "1"}, 400, "peer"},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			wantStatus(t, apiCall(t, c.method, c.path, c.body, ""), c.status, c.contains)
		})
	}
	// Nothing was created by the refused invitations.
	for _, account := range []string{"222233334444"} {
		if _, err := operatorStore().ByAccount(context.Background(), account, "us-east-1"); err == nil {
			t.Errorf("a refused invitation created a deployment of %s", account)
		}
	}
	// A deployment another workflow is changing is not deleted under it.
	busy := deploymentWith(t, fmt.Sprintf("busy%d", time.Now().UnixNano()%1e12), lifecycle.Provisioning)
	wantStatus(t, apiCall(t, http.MethodDelete, "/v1/deployments/"+busy.ID, map[string]any{}, ""), http.StatusConflict, "is provisioning: delete it once that workflow ends")
	// Off the sweep's list of working deployments (no workflow runs for it).
	failed := busy
	failed.Status = lifecycle.Failed
	if _, err := operatorStore().Update(context.Background(), busy, failed, store.Audit{Actor: "test", Action: "test"}); err != nil {
		t.Fatal(err)
	}
}

// deploymentWith stores a deployment in a status, as if a workflow had it there.
func deploymentWith(t *testing.T, id string, status lifecycle.Status) store.Deployment {
	t.Helper()
	account := fmt.Sprintf("9%011d", time.Now().UnixNano()%1e11)
	d := store.Deployment{ID: id, Status: status, ExternalID: strings.Repeat("e", 40), StackName: "clickhouse-cloud-" + id + "-infra",
		Settings: settings.Settings{CustomerID: "test", AccountID: account, Region: shared.cloud.Region, VPCCIDR: "10.0.0.0/16",
			ZoneIDs: []string{"use1-az1", "use1-az2", "use1-az4"}, ResourcePrefix: "clickhouse-cloud"}}
	stored, err := operatorStore().Create(context.Background(), d, store.Audit{Actor: "test", Action: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return stored
}

// Idempotency-Key: the same request again gets the first answer (replayed, nothing done
// twice); another request under the key is 422; a copy while the first runs is 409.
func TestOperatorAPIIdempotencyKeys(t *testing.T) {
	account := fmt.Sprintf("8%011d", time.Now().UnixNano()%1e11)
	invite := map[string]any{"customerId": "acme-idem", "accountId": account, "region": shared.cloud.Region}
	first := apiCall(t, http.MethodPost, "/v1/invitations", invite, "invite-"+account)
	wantStatus(t, first, http.StatusOK, "")
	again := apiCall(t, http.MethodPost, "/v1/invitations", invite, "invite-"+account)
	if again.Status != http.StatusOK || !again.Replayed || again.RequestID != first.RequestID || !bytes.Equal(again.Result, first.Result) {
		t.Fatalf("replay: %d replayed %t request %s (first %s)", again.Status, again.Replayed, again.RequestID, first.RequestID)
	}
	other := map[string]any{"customerId": "acme-other", "accountId": account, "region": shared.cloud.Region}
	wantStatus(t, apiCall(t, http.MethodPost, "/v1/invitations", other, "invite-"+account), http.StatusUnprocessableEntity, "already used for another request")
	var inv struct {
		DeploymentID string `json:"deploymentId"`
	}
	_ = json.Unmarshal(first.Result, &inv)
	if d, err := operatorStore().ByAccount(context.Background(), account, shared.cloud.Region); err != nil || d.ID != inv.DeploymentID {
		t.Fatalf("the account's deployment: %+v %v, want the one invitation %s", d.ID, err, inv.DeploymentID)
	}
	// The first request under a key still running (its claim held): a copy is 409.
	body, _ := json.Marshal(map[string]any{"customerId": "acme-running", "accountId": "777766665555", "region": shared.cloud.Region})
	caller := "arn:aws:iam::" + localcloud.VendorAccount + ":root"
	// The claim is made on the cloud's clock (the functions read it; earlier tests jumped it).
	st := operatorStore()
	st.Now = shared.clock.Now
	runningKey := "running-" + account
	if _, err := st.ClaimKey(context.Background(), caller, runningKey, store.RequestHash(http.MethodPost, "/v1/invitations", body), time.Hour); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, apiCall(t, http.MethodPost, "/v1/invitations", json.RawMessage(body), runningKey), http.StatusConflict, "still running")
	wantStatus(t, apiCall(t, http.MethodPost, "/v1/invitations", invite, "not a key!"), http.StatusBadRequest, "Idempotency-Key: 1 to 128 characters")
}

// The fleet list pages through 250 deployments (and whatever else the cloud holds) with
// nextToken: every one listed once, a status filter lists only its status.
func TestFleetPaginationOver250Deployments(t *testing.T) {
	mine := seedDeleted(t, 250)
	for _, status := range []string{"", "deleted"} {
		seen := map[string]int{}
		pages, token := 0, ""
		for {
			path := "/v1/deployments?limit=100"
			if status != "" {
				path += "&status=" + status
			}
			if token != "" {
				path += "&nextToken=" + token
			}
			r := apiCall(t, http.MethodGet, path, nil, "")
			wantStatus(t, r, http.StatusOK, "")
			var page struct {
				Deployments []struct{ ID, Status, Health string }
				NextToken   string
			}
			if err := json.Unmarshal(r.Result, &page); err != nil {
				t.Fatal(err)
			}
			pages++
			if len(page.Deployments) > 100 {
				t.Fatalf("a page of %d", len(page.Deployments))
			}
			for _, d := range page.Deployments {
				seen[d.ID]++
				if status != "" && d.Status != status {
					t.Fatalf("status %s listed %s %s", status, d.ID, d.Status)
				}
				if d.Health == "" {
					t.Fatalf("%s listed without its health", d.ID)
				}
			}
			if page.NextToken == "" {
				break
			}
			token = page.NextToken
		}
		for id := range mine {
			if seen[id] != 1 {
				t.Fatalf("status %q: %s listed %d times over %d pages", status, id, seen[id], pages)
			}
		}
		if pages < 3 {
			t.Fatalf("status %q: %d pages for at least 250 deployments at 100 a page", status, pages)
		}
	}
	// The counts are the whole fleet's, not a page's. (Other tests' deployments count too,
	// and one may be deleted meanwhile: at least these 250, and the total their sum.)
	r := apiCall(t, http.MethodGet, "/v1/fleet", nil, "")
	wantStatus(t, r, http.StatusOK, "")
	var counts struct {
		Total    int
		ByStatus map[string]int
	}
	if err := json.Unmarshal(r.Result, &counts); err != nil {
		t.Fatal(err)
	}
	sum := 0
	for _, n := range counts.ByStatus {
		sum += n
	}
	if counts.ByStatus["deleted"] < len(mine) || counts.Total != sum || len(counts.ByStatus) != len(lifecycle.All()) {
		t.Fatalf("fleet counts %+v: want at least %d deleted, every status, the total their sum", counts, len(mine))
	}
}

// seedDeleted writes n deleted deployments straight into the store, for lists longer than a
// page. Deleted: on no sweep's list (an invited one would be reported stalled once a later
// test's clock jump passes a day).
func seedDeleted(t *testing.T, n int) map[string]bool {
	t.Helper()
	st := operatorStore()
	ids := map[string]bool{}
	stamp := time.Now().UnixNano() % 1e6
	for i := range n {
		id := fmt.Sprintf("fleet%06d%04d", stamp, i)
		d := store.Deployment{ID: id, Status: lifecycle.Deleted, ExternalID: strings.Repeat("f", 40), StackName: "x",
			Settings: settings.Settings{CustomerID: "fleet", AccountID: fmt.Sprintf("6%05d%06d", stamp%1e5, i), Region: "eu-west-1",
				VPCCIDR: "10.0.0.0/16", ZoneIDs: []string{"euw1-az1", "euw1-az2", "euw1-az3"}, ResourcePrefix: "clickhouse-cloud"}}
		if _, err := st.Create(context.Background(), d, store.Audit{Actor: "test", Action: "fleet"}); err != nil {
			t.Fatal(err)
		}
		ids[id] = true
	}
	return ids
}

// The workflow checks again what the API checked: a teardown started while services run (a
// service started between the API's check and the workflow's first step, or a teardown
// started outside the API) is refused by its first step; the deployment is untouched and
// the refusal is in its audit trail.
func TestTeardownRefusesRunningServicesItself(t *testing.T) {
	tn := onboard(t)
	defer shared.runner.Retire(context.Background(), tn.dep.ID)
	sim := simulate(t, tn, "svc-a")
	defer sim.Remove(tn.dep.ID)
	tick(t, sim)
	until(t, 30*time.Second, "svc-a to be reported", func() (bool, string) {
		r := apiCall(t, http.MethodGet, "/v1/deployments/"+tn.dep.ID+"/services/svc-a", nil, "")
		return r.Status == http.StatusOK, r.Error
	})
	name := "teardown-" + tn.dep.ID + "-1"
	input, _ := json.Marshal(map[string]any{"deploymentId": tn.dep.ID, "force": false, "deleteData": false, "abandon": false, "actor": "test"})
	arn := executionArnOf(t, name)
	if _, err := sfn.NewFromConfig(shared.cloud.WatchConfig()).StartExecution(context.Background(), &sfn.StartExecutionInput{
		StateMachineArn: aws.String(strings.Replace(arn[:strings.LastIndex(arn, ":")], ":execution:", ":stateMachine:", 1)),
		Name:            aws.String(name), Input: aws.String(string(input))}); err != nil {
		t.Fatal(err)
	}
	if end := waitOperation(t, apiclient.Operation{Workflow: "teardown", Name: name, Status: "RUNNING"}); end.Status != "FAILED" {
		t.Fatalf("teardown with a running service ended %s", end.Status)
	}
	d, err := operatorStore().Get(context.Background(), tn.dep.ID)
	if err != nil || d.Status != lifecycle.Ready {
		t.Fatalf("deployment after the refused teardown: %s %v, want ready", d.Status, err)
	}
	entries, _, err := operatorStore().AuditPage(context.Background(), tn.dep.ID, 5, "")
	if err != nil || entries[0].Action != "teardown.refused" || !strings.Contains(entries[0].Detail, "services not terminated: svc-a") {
		t.Fatalf("newest audit entry %+v (%v), want teardown.refused naming svc-a", entries[0], err)
	}
}
