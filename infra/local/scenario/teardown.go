package scenario

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/infra/operator/apiclient"
	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/connectivity"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/store"
)

// Teardown: onboard with the data plane running, and peer (through the API) with a second
// account's VPC; deleting the deployment through the operator API is refused while its
// services are not terminated; the services are terminated through the API; the
// deployment is deleted; the customer's account holds no byoc stack (its bucket is kept with
// the data) and the vendor side holds nothing of it but its record and audit trail.
const Teardown = "teardown"

// LifecycleScenarios are the scenarios of the operator surface.
var LifecycleScenarios = []string{Teardown}

// TeardownResult is what the teardown scenario saw.
type TeardownResult struct {
	Peered     string   // the peer VPC of the peering the teardown removed with the deployment
	Refusal    string   // why the first delete was refused (services running)
	Terminated []string // the services terminated through the API
	Operation  apiclient.Operation
	// What is left: the customer's byoc stacks not deleted, and the vendor-side leftovers.
	CustomerStacks []string
	Leftovers      []string
	RetainedBucket string
}

// API is an operator API client acting as the vendor's root user: what the byoc CLI is
// against the local cloud.
func (r *Runner) API() *apiclient.Client {
	return apiclient.WithConfig(r.Cloud.OperatorConfig(localcloud.VendorAccount), r.Cloud.URL)
}

func (r *Runner) teardown(ctx context.Context, o Options, res Result) (Result, error) {
	m := &maint{r: r, o: o, id: res.Deployment.ID, res: &MaintenanceResult{},
		st:   store.New(cloud.NewDynamoDB(r.Cloud.WatchConfig()), r.ControlPlane.Outputs[outTable]),
		repo: servicestate.New(cloud.NewDynamoDB(r.Cloud.WatchConfig()), r.ControlPlane.Outputs[outTable])}
	t := &TeardownResult{}
	res.Teardown = t
	fail := func(format string, a ...any) (Result, error) {
		if m.stop != nil {
			m.stop()
		}
		return res, &Failure{Scenario: o.Scenario, Reason: fmt.Sprintf(format, a...)}
	}
	if err := m.startDataPlane(ctx, res.Deployment, baseClickHouse); err != nil {
		return fail("%v", err)
	}
	api := r.API()
	path := "/v1/deployments/" + res.Deployment.ID
	// A peering, asked through the API, so the teardown has a network stack to remove first.
	c := &conn{maint: m, peer: peerAccountOf(o.Customer), res: &ConnectivityResult{Peerings: map[string]connectivity.Peering{}}}
	app, err := c.appNetwork(ctx, "app-network", "10.1.0.0/16")
	if err != nil {
		return fail("%v", err)
	}
	access, err := c.peerStack(ctx, peerAccessStack(app["Vpc"]), &cloudformation.CreateStackInput{
		TemplateURL: aws.String(r.ControlPlane.Outputs[contract.OutputPeerAccessTemplateURL]), Parameters: peerParams(o.Customer, app["Vpc"], nil)})
	if err != nil {
		return fail("%v", err)
	}
	if _, err := operate(ctx, api, http.MethodPost, path+"/peerings", map[string]any{"peerAccount": c.peer, "peerVpcId": app["Vpc"],
		"peerRegion": r.Cloud.Region, "peerCidrs": []string{"10.1.0.0/16"}, "accepterRoleArn": access[contract.PeerAccessOutputRoleArn], "name": "analytics"},
		"peer-"+res.Deployment.ID); err != nil {
		return fail("request a peering: %v", err)
	}
	if _, err := c.peering(ctx, app["Vpc"], "active", state(connectivity.Active)); err != nil {
		return fail("%v", err)
	}
	t.Peered = app["Vpc"]
	m.progress("peered with %s", app["Vpc"])
	resp, err := operate(ctx, api, http.MethodDelete, path, map[string]any{}, "teardown-refused-"+res.Deployment.ID)
	if err != nil {
		return fail("%v", err)
	}
	if resp.Status != http.StatusConflict || !strings.Contains(resp.Error, "services not terminated") {
		return fail("delete with services running answered %d %q, want 409 naming them", resp.Status, resp.Error)
	}
	t.Refusal = resp.Error
	m.progress("delete refused: %s", resp.Error)
	for _, svc := range DataPlaneServices {
		op, err := operation(ctx, api, http.MethodPatch, path+"/services/"+svc+"/state", map[string]string{"command": "terminate"}, "terminate-"+svc+"-"+res.Deployment.ID)
		if err != nil {
			return fail("terminate %s: %v", svc, err)
		}
		if op, err = follow(ctx, api, op); err != nil || op.Status != "SUCCEEDED" {
			return fail("terminate %s: %s %s %v", svc, op.Status, op.Cause, err)
		}
		t.Terminated = append(t.Terminated, svc)
	}
	if err := m.until(ctx, "every service terminated", func(ss []servicestate.Service) bool {
		return len(ss) == len(DataPlaneServices) && all(ss, func(s servicestate.Service) bool { return s.Status == "terminated" })
	}); err != nil {
		return fail("%v", err)
	}
	m.stop()
	m.stop = nil
	m.progress("services terminated: %s", strings.Join(t.Terminated, ", "))

	op, err := operation(ctx, api, http.MethodDelete, path, map[string]any{}, "teardown-"+res.Deployment.ID)
	if err != nil {
		return fail("delete: %v", err)
	}
	if t.Operation, err = follow(ctx, api, op); err != nil || t.Operation.Status != "SUCCEEDED" {
		return fail("teardown %s ended %s (%s %s) %v", op.Name, t.Operation.Status, t.Operation.Error, t.Operation.Cause, err)
	}
	m.progress("teardown %s succeeded", op.Name)
	d, err := m.st.Get(ctx, res.Deployment.ID)
	if err != nil {
		return fail("%v", err)
	}
	res.Deployment = d
	if d.Teardown != nil {
		t.RetainedBucket = d.Teardown.RetainedBucket
	}
	if t.CustomerStacks, err = r.byocStacks(ctx, o.Customer); err != nil {
		return fail("%v", err)
	}
	if t.Leftovers, err = r.leftovers(ctx, o.Customer, d); err != nil {
		return fail("%v", err)
	}
	switch {
	case d.Status != lifecycle.Deleted:
		return fail("deployment %s is %s after its teardown, want deleted", d.ID, d.Status)
	case len(t.CustomerStacks) > 0:
		return fail("the customer's account still holds byoc stacks: %v", t.CustomerStacks)
	case len(t.Leftovers) > 0:
		return fail("the vendor side still holds: %v", t.Leftovers)
	case t.RetainedBucket == "":
		return fail("the customer's bucket is not reported retained")
	}
	// Retained means there: the bucket outlived its stack, with the customer's data.
	if kept, err := cloud.NewS3(r.Cloud.WatchConfigAs(o.Customer)).BucketExists(ctx, t.RetainedBucket); err != nil || !kept {
		return fail("bucket %s reported retained, but it exists: %t (%v)", t.RetainedBucket, kept, err)
	}
	return res, nil
}

// operate calls the API as an operator's script does: a request that got no answer, a 5xx,
// a 429 or a 409 for its key's first request still running is sent again under the same
// Idempotency-Key, which gives the first answer if the first request was done.
func operate(ctx context.Context, api *apiclient.Client, method, path string, body any, key string) (*apiclient.Response, error) {
	var resp *apiclient.Response
	var err error
	for try := 0; try < 20; try++ {
		resp, err = api.Do(ctx, method, path, body, key)
		retry := err != nil || resp.Status >= 500 || resp.Status == http.StatusTooManyRequests ||
			(resp.Status == http.StatusConflict && strings.Contains(resp.Error, "still running"))
		if !retry || ctx.Err() != nil {
			return resp, err
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(try+1) * 100 * time.Millisecond):
		}
	}
	return resp, err
}

// operation is operate for a request whose answer is an operation.
func operation(ctx context.Context, api *apiclient.Client, method, path string, body any, key string) (apiclient.Operation, error) {
	resp, err := operate(ctx, api, method, path, body, key)
	if err != nil {
		return apiclient.Operation{}, err
	}
	if err := resp.Err(); err != nil {
		return apiclient.Operation{}, err
	}
	var op apiclient.Operation
	if err := json.Unmarshal(resp.Result, &op); err != nil {
		return op, err
	}
	return op, nil
}

// follow waits for an operation to end, looking again after a failed look.
func follow(ctx context.Context, api *apiclient.Client, op apiclient.Operation) (apiclient.Operation, error) {
	for {
		end, err := api.Wait(ctx, op, 200*time.Millisecond, nil)
		if err == nil || ctx.Err() != nil {
			return end, err
		}
		select {
		case <-ctx.Done():
			return end, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// byocStacks are the customer account's stacks byoc made that are not deleted (the
// bootstrap stack is the customer's own).
func (r *Runner) byocStacks(ctx context.Context, customer string) ([]string, error) {
	out, err := cloudformation.NewFromConfig(r.Cloud.WatchConfigAs(customer)).ListStacks(ctx, &cloudformation.ListStacksInput{})
	if err != nil {
		return nil, err
	}
	var live []string
	for _, s := range out.StackSummaries {
		if name := aws.ToString(s.StackName); s.StackStatus != cfntypes.StackStatusDeleteComplete && name != contract.BootstrapStackName {
			live = append(live, name+" "+string(s.StackStatus))
		}
	}
	return live, nil
}

// leftovers lists what the vendor side still holds of a deleted deployment: its command
// queue, its data plane's admission, its account's admission to the vendor bus, its
// maintenance schedule, its account+region claim.
func (r *Runner) leftovers(ctx context.Context, customer string, d store.Deployment) ([]string, error) {
	cfg := r.Cloud.WatchConfig()
	var left []string
	name, _ := channel.QueueName(d.ID)
	if _, err := sqs.NewFromConfig(cfg).GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)}); err == nil {
		left = append(left, "command queue "+name)
	} else if !channel.QueueMissing(err) {
		return nil, err
	}
	repo := servicestate.New(cloud.NewDynamoDB(cfg), r.ControlPlane.Outputs[outTable])
	if _, err := repo.DataPlane(ctx, d.ID); err == nil {
		left = append(left, "data plane (exporter admission)")
	} else if !servicestate.IsNotFound(err) {
		return nil, err
	}
	busArn := fmt.Sprintf("arn:aws:events:%s:%s:event-bus/%s", r.Cloud.Region, localcloud.VendorAccount, r.ControlPlane.Outputs[outVendorBusName])
	if r.Cloud.Stacks.BusAdmits(busArn, customer, contract.SourceCloudFormation) {
		left = append(left, "vendor bus admission of "+customer)
	}
	group := r.ControlPlane.Outputs[outMaintenanceSchedule]
	if _, err := scheduler.NewFromConfig(cfg).GetSchedule(ctx, &scheduler.GetScheduleInput{Name: aws.String(d.ID), GroupName: aws.String(group)}); err == nil {
		left = append(left, "maintenance schedule")
	}
	st := store.New(cloud.NewDynamoDB(cfg), r.ControlPlane.Outputs[outTable])
	if _, err := st.ByAccount(ctx, d.Settings.AccountID, d.Settings.Region); err == nil {
		left = append(left, "account+region claim")
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	return left, nil
}
