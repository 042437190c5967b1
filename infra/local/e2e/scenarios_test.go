package e2e

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/infra/local/scenario"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/lifecycle"
)

// run runs a scenario on the shared cloud and fails the test if its outcome is wrong.
func run(t *testing.T, o scenario.Options) (scenario.Result, *recording) {
	t.Helper()
	rec := shared.record(t)
	o.Timeout = time.Minute
	res, err := shared.runner.Run(context.Background(), o)
	if err != nil {
		t.Fatalf("%v\nresult: %+v", err, res)
	}
	return res, rec
}

// order checks that events matching the predicates happened in this order.
func order(t *testing.T, rec *recording, steps ...struct {
	what  string
	match func(localcloud.Event) bool
}) {
	t.Helper()
	events := rec.all()
	i := 0
	for _, s := range steps {
		for i < len(events) && !s.match(events[i]) {
			i++
		}
		if i == len(events) {
			t.Fatalf("the timeline lacks %q (in this order)", s.what)
		}
		i++
	}
}

type step = struct {
	what  string
	match func(localcloud.Event) bool
}

func stackStatus(account, stackPrefix, status string) step {
	return step{stackPrefix + " " + status, func(e localcloud.Event) bool {
		return e.Kind == localcloud.KindStack && e.Account == account && strings.HasPrefix(e.Subject, stackPrefix) && e.Status == status
	}}
}

func invoked(fn string) step {
	return step{fn + " invoked", func(e localcloud.Event) bool { return e.Kind == localcloud.KindInvoke && e.Subject == fn && !e.Failed }}
}

func delivered(account, status, fn string) step {
	return step{status + " delivered to " + fn, func(e localcloud.Event) bool {
		return e.Kind == localcloud.KindEvent && e.Account == account && strings.Contains(e.Status, status) && e.Detail == "to "+fn
	}}
}

func workflow(id, status string) step {
	return step{"workflow " + status, func(e localcloud.Event) bool {
		return e.Kind == localcloud.KindExecution && strings.Contains(e.Detail, id) && e.Status == status
	}}
}

func TestOnboarding(t *testing.T) {
	res, rec := run(t, scenario.Options{Scenario: scenario.Onboard})
	d, c := res.Deployment, res.Customer
	if d.Status != lifecycle.Ready || d.Outputs[contract.InfraOutputClusterName] == "" || d.StackID == "" || d.ProvisionAttempts != 1 {
		t.Errorf("deployment %+v: want ready with the infrastructure outputs after one attempt", d)
	}
	order(t, rec,
		invoked(contract.FunctionInvite),
		stackStatus(c, contract.BootstrapStackName, "CREATE_IN_PROGRESS"),
		stackStatus(c, contract.BootstrapStackName, "CREATE_COMPLETE"),
		delivered(c, contract.BootstrapStackName+" CREATE_COMPLETE", contract.FunctionOnboard),
		workflow(d.ID, "RUNNING"),
		stackStatus(c, d.StackName, "CREATE_IN_PROGRESS"),
		stackStatus(c, d.StackName, "CREATE_COMPLETE"),
		delivered(c, d.StackName+" CREATE_COMPLETE", contract.FunctionStackEvents),
		workflow(d.ID, "SUCCEEDED"),
	)
	if got := res.CustomerStacks; got[contract.BootstrapStackName] != "CREATE_COMPLETE" || got[d.StackName] != "CREATE_COMPLETE" || len(got) != 2 {
		t.Errorf("customer stacks %v", got)
	}
	if res.Counters.LambdaInvocations == 0 || res.Counters.StateTransitions == 0 || res.Counters.AWSCalls == 0 {
		t.Errorf("counters %+v: every count must move", res.Counters)
	}
}

func TestInfrastructureStackFails(t *testing.T) {
	res, rec := run(t, scenario.Options{Scenario: scenario.InfraFails})
	d := res.Deployment
	if d.Status != lifecycle.Failed || d.Failure == nil || d.Failure.Resource != "Cluster (AWS::EKS::Cluster)" ||
		!strings.Contains(d.Failure.Reason, "does not currently have sufficient capacity") {
		t.Fatalf("deployment %+v, failure %+v: want failed with the cluster's reason recorded", d, d.Failure)
	}
	if d.ProvisionAttempts != 3 {
		t.Errorf("attempts = %d, want MAX_PROVISION_ATTEMPTS (3) before giving up", d.ProvisionAttempts)
	}
	if st := res.CustomerStacks[d.StackName]; st != "ROLLBACK_COMPLETE" {
		t.Errorf("infrastructure stack is %q, want ROLLBACK_COMPLETE", st)
	}
	order(t, rec,
		stackStatus(res.Customer, d.StackName, "CREATE_FAILED"),
		stackStatus(res.Customer, d.StackName, "ROLLBACK_COMPLETE"),
		workflow(d.ID, "FAILED"),
	)
}

func TestRollbackCompleteStackIsDeletedAndRecreated(t *testing.T) {
	res, rec := run(t, scenario.Options{Scenario: scenario.RollbackRetry})
	d, c := res.Deployment, res.Customer
	if d.Status != lifecycle.Ready || d.ProvisionAttempts != 2 || d.Failure != nil {
		t.Fatalf("deployment %+v: want ready after a second attempt, no failure left", d)
	}
	order(t, rec,
		stackStatus(c, d.StackName, "ROLLBACK_COMPLETE"),
		stackStatus(c, d.StackName, "DELETE_IN_PROGRESS"),
		stackStatus(c, d.StackName, "DELETE_COMPLETE"),
		stackStatus(c, d.StackName, "CREATE_IN_PROGRESS"),
		stackStatus(c, d.StackName, "CREATE_COMPLETE"),
		workflow(d.ID, "SUCCEEDED"),
	)
	// The record names the recreated instance; the rolled-back one is deleted.
	cfn := cloudformation.NewFromConfig(shared.cloud.ConfigAs(c))
	live, err := cfn.DescribeStacks(context.Background(), &cloudformation.DescribeStacksInput{StackName: aws.String(d.StackName)})
	if err != nil || len(live.Stacks) != 1 || aws.ToString(live.Stacks[0].StackId) != d.StackID {
		t.Errorf("the deployment names stack %s; the live stack is %+v (%v)", d.StackID, live, err)
	}
	gone, err := cfn.ListStacks(context.Background(), &cloudformation.ListStacksInput{StackStatusFilter: []cfntypes.StackStatus{cfntypes.StackStatusDeleteComplete}})
	if err != nil {
		t.Fatal(err)
	}
	deleted := 0
	for _, s := range gone.StackSummaries {
		if aws.ToString(s.StackName) == d.StackName && aws.ToString(s.StackId) != d.StackID {
			deleted++
		}
	}
	if deleted != 1 {
		t.Errorf("%d deleted instances of %s, want the one rolled back", deleted, d.StackName)
	}
}

func TestWrongExternalIDFailsOnboardingAndCreatesNothing(t *testing.T) {
	res, _ := run(t, scenario.Options{Scenario: scenario.WrongExternalID})
	d := res.Deployment
	if d.Status != lifecycle.Failed || d.Failure == nil || !strings.Contains(d.Failure.Reason, "AccessDenied") ||
		!strings.Contains(d.Failure.Reason, contract.ManagementRoleName) {
		t.Fatalf("deployment %+v, failure %+v: want failed with sts:AssumeRole's AccessDenied on the management role", d, d.Failure)
	}
	if names := keys(res.CustomerStacks); !slices.Equal(names, []string{contract.BootstrapStackName}) {
		t.Errorf("customer stacks %v: only the customer's own bootstrap may exist", names)
	}
}

func TestSameForwardedEventTwiceStartsOneWorkflow(t *testing.T) {
	res, rec := run(t, scenario.Options{Scenario: scenario.DuplicateEvent})
	d := res.Deployment
	if d.Status != lifecycle.Ready || res.Executions != 1 {
		t.Fatalf("deployment %s is %q with %d executions; want ready with one", d.ID, d.Status, res.Executions)
	}
	ids := map[string]int{}
	for _, e := range rec.all() {
		if e.Kind == localcloud.KindEvent && e.Account == res.Customer && e.Detail == "to "+contract.FunctionOnboard {
			ids[e.EventID]++
		}
	}
	if len(ids) != 1 {
		t.Fatalf("onboard received events %v: want one event id", ids)
	}
	for id, n := range ids {
		if n != 2 {
			t.Errorf("event %s reached onboard %d times, want twice", id, n)
		}
	}
}

func TestMalformedEventIsRefusedAndChangesNothing(t *testing.T) {
	res, rec := run(t, scenario.Options{Scenario: scenario.MalformedEvent})
	if res.Executions != 0 || res.Deployment.ID != "" {
		t.Errorf("result %+v: a malformed event must not start anything", res)
	}
	refused := false
	for _, e := range rec.all() {
		if e.Kind == localcloud.KindInvoke && e.Subject == contract.FunctionOnboard && e.Failed && strings.Contains(e.Detail, `"BOOTSTRAPPED" is not a CloudFormation stack status`) {
			refused = true
		}
	}
	if !refused {
		t.Error("onboard must refuse the event, naming the bad status")
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
