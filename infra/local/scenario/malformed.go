package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/dynamodb/attributevalue"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/google/uuid"

	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
)

// MalformedEvent returns a Stack Status Change for the customer's bootstrap stack whose
// status CloudFormation never emits: it matches the vendor bus's rules, so it reaches
// onboard and stackevents, which must refuse it.
func malformedEvent(customer, region string) []byte {
	stackID := fmt.Sprintf("arn:aws:cloudformation:%s:%s:stack/%s/%s", region, customer, contract.BootstrapStackName, uuid.NewString())
	event, _ := json.Marshal(map[string]any{
		"version": "0", "id": uuid.NewString(), "detail-type": contract.DetailTypeStackStatusChange,
		"source": contract.SourceCloudFormation, "account": customer, "time": time.Now().UTC().Format(time.RFC3339),
		"region": region, "resources": []string{stackID},
		"detail": map[string]any{
			"stack-id":             stackID,
			"status-details":       map[string]string{"status": "BOOTSTRAPPED", "status-reason": ""},
			"client-request-token": "",
		},
	})
	return event
}

// malformed delivers a malformed event to the vendor bus, as a broken forwarder would, and
// checks that onboard refuses it and that nothing changed: no item about the customer or
// the event written, no workflow. (Items are matched, not counted: other work in the same
// cloud, a previous run's sweep or late delivery, may write meanwhile.)
func (r *Runner) malformed(ctx context.Context, o Options) (Result, error) {
	table := r.ControlPlane.Outputs[outTable]
	event := malformedEvent(o.Customer, r.Cloud.Region)
	var envelope struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(event, &envelope)
	about := []string{o.Customer, envelope.ID}
	before, err := r.itemsAbout(ctx, table, about)
	if err != nil {
		return Result{}, err
	}
	execsBefore := r.executions()
	rejected := r.expect(func(e localcloud.Event) bool {
		return e.Kind == localcloud.KindInvoke && e.Subject == contract.FunctionOnboard && e.Failed && strings.Contains(e.Detail, "Malformed")
	})
	if err := r.Cloud.Bus.Deliver(ctx, r.ControlPlane.Outputs[outVendorBusName], event); err != nil {
		return Result{}, err
	}
	if _, err := await(ctx, rejected, "onboard to refuse the malformed event"); err != nil {
		return Result{}, err
	}
	res := r.result(ctx, o, "")
	after, err := r.itemsAbout(ctx, table, about)
	if err != nil {
		return res, err
	}
	if after != before {
		return res, &Failure{Scenario: o.Scenario, Reason: fmt.Sprintf("the table changed: %d items about customer %s or event %s before, %d after", before, o.Customer, envelope.ID, after)}
	}
	if n := r.executions(); n != execsBefore {
		return res, &Failure{Scenario: o.Scenario, Reason: fmt.Sprintf("a workflow started: %d executions before, %d after", execsBefore, n)}
	}
	return res, nil
}

// itemsAbout counts the table's items any of whose keys or values contains one of needles
// (a scan: the scenario's check, not a path of the control plane).
func (r *Runner) itemsAbout(ctx context.Context, table string, needles []string) (int, error) {
	pages := dynamodb.NewScanPaginator(cloud.NewDynamoDB(r.Cloud.WatchConfig()), &dynamodb.ScanInput{
		TableName: aws.String(table), ConsistentRead: aws.Bool(true),
	})
	n := 0
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return 0, fmt.Errorf("scan the table: %w", err)
		}
		for _, item := range page.Items {
			var doc map[string]any
			if err := attributevalue.UnmarshalMap(item, &doc); err != nil {
				return 0, fmt.Errorf("read an item: %w", err)
			}
			text, _ := json.Marshal(doc)
			if slices.ContainsFunc(needles, func(s string) bool { return s != "" && strings.Contains(string(text), s) }) {
				n++
			}
		}
	}
	return n, nil
}

func (r *Runner) executions() int {
	execs, _ := r.Cloud.States.Engine.ListExecutions(r.ControlPlane.Outputs[outProvisionMachine], "")
	return len(execs)
}
