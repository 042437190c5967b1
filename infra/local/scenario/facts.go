package scenario

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	cfntypes "github.com/aws/aws-sdk-go-v2/service/cloudformation/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/byocloud/byoc/infra/local/datasim"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/release"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/statemsg"
	"github.com/byocloud/byoc/shared/store"
)

// Facts are what a scenario left, read from the local cloud's own state (the table, the
// stack engine, the workflow engine, the queues, the simulated data plane's ledger), never
// from the functions' logs: what the chaos invariants compare.
type Facts struct {
	Deployment string
	Status     lifecycle.Status
	Attempts   int
	// Failure is the recorded failure's resource, "" when none.
	Failure string
	Outputs []string // output names recorded on the deployment
	// Stacks counts, per customer stack name, the stacks ever created under it (deleted ones
	// included); Final is the newest one's status.
	Stacks map[string]int
	Final  map[string]string
	// Executions counts, per workflow, the executions of the deployment; Running how many of
	// them have not ended.
	Executions map[string]int
	Running    int
	// Audit is the deployment's audit trail as "action from->to", sorted.
	Audit []string
	// Commands are the command kinds the agent applied, one entry per command id.
	Commands []string
	// Unsettled lists what is left in an intermediate state (a deployment still working, a
	// command not final, a message on the state queue).
	Unsettled []string
	// Lost lists reports the data plane sent whose state the control plane does not hold.
	Lost []string
	// Health is the deployment's stored health and each service's, "service=health" sorted
	// (when a data plane ran).
	Health []string
	// Maintenance is the last maintenance run's outcome and failed step ("" without one);
	// Versions the infrastructure stack's version parameters, "name=value" sorted.
	Maintenance string
	Versions    []string
	// DeadLetters is how many messages the state queue's DLQ holds (from every run so far:
	// a message there is accounted for, not lost).
	DeadLetters int
}

// workflowOutputs are the workflows whose executions Facts counts.
var workflowOutputs = map[string]string{"provision": outProvisionMachine, "command": OutputCommandMachine, "upgrade": OutputUpgradeMachine}

// Facts reads what a scenario left for a deployment (id "" reads only the customer's stacks).
// ledger is the data plane's own record, when one ran.
var peeringStackVpc = regexp.MustCompile(`-peering-[0-9a-f]{8,17}$`)

func (r *Runner) Facts(ctx context.Context, customer, id string, ledger *datasim.Ledger) (Facts, error) {
	f := Facts{Deployment: id, Stacks: map[string]int{}, Final: map[string]string{}, Executions: map[string]int{}}
	var summaries []cfntypes.StackSummary
	pages := cloudformation.NewListStacksPaginator(cloudformation.NewFromConfig(r.Cloud.WatchConfigAs(customer)), &cloudformation.ListStacksInput{})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return f, fmt.Errorf("list the customer's stacks: %w", err)
		}
		summaries = append(summaries, page.StackSummaries...)
	}
	// ListStacks answers newest first.
	for _, s := range summaries {
		name := aws.ToString(s.StackName)
		if id != "" {
			// Runs differ in their deployment's id (and a peering stack in its peer VPC's);
			// the stacks are compared by role.
			name = peeringStackVpc.ReplaceAllString(strings.ReplaceAll(name, id, "<deployment>"), "-peering-<vpc>")
		}
		if f.Stacks[name] == 0 {
			f.Final[name] = string(s.StackStatus)
		}
		f.Stacks[name]++
	}
	if id == "" {
		return f, nil
	}
	db := cloud.NewDynamoDB(r.Cloud.WatchConfig())
	st := store.New(db, r.ControlPlane.Outputs[outTable])
	d, err := st.Get(ctx, id)
	if err != nil {
		return f, fmt.Errorf("read deployment %s: %w", id, err)
	}
	f.Status, f.Attempts = d.Status, d.ProvisionAttempts
	if d.Failure != nil {
		f.Failure = d.Failure.Resource
		if f.Failure == "" {
			f.Failure = "(no resource)"
		}
	}
	f.Outputs = slices.Sorted(maps.Keys(d.Outputs))
	if d.Maintenance != nil && d.Maintenance.Last != nil {
		f.Maintenance = d.Maintenance.Last.Outcome
		if d.Maintenance.Last.Step != "" {
			// Each run publishes newer versions: the step is compared without its numbers.
			f.Maintenance += " at " + versionNumber.ReplaceAllString(d.Maintenance.Last.Step, "<version>")
		}
	}
	// Each run publishes newer versions than the last: a version is compared as "the
	// catalogue's" (or not), not by its number.
	rs, err := st.Releases(ctx)
	if err != nil {
		return f, fmt.Errorf("read the release catalogue: %w", err)
	}
	cat := store.Catalogue(rs)
	for k, v := range d.StackVersions {
		if v != "" && v == catalogueVersion(cat, k) {
			v = "<catalogue>"
		}
		f.Versions = append(f.Versions, k+"="+v)
	}
	sort.Strings(f.Versions)
	switch d.Status {
	case lifecycle.Provisioning, lifecycle.Updating, lifecycle.Deleting:
		f.Unsettled = append(f.Unsettled, "deployment "+id+" is "+string(d.Status))
	}
	trail, err := st.AuditTrail(ctx, id)
	if err != nil {
		return f, fmt.Errorf("read the audit trail of %s: %w", id, err)
	}
	for _, a := range trail {
		f.Audit = append(f.Audit, fmt.Sprintf("%s %s->%s", a.Action, a.From, a.To))
	}
	sort.Strings(f.Audit)
	for workflow, output := range workflowOutputs {
		execs, err := r.Cloud.States.Engine.ListExecutions(r.ControlPlane.Outputs[output], "")
		if err != nil {
			return f, fmt.Errorf("list the %s executions: %w", workflow, err)
		}
		for _, x := range execs {
			if !strings.Contains(x.Name, id) {
				continue
			}
			f.Executions[workflow]++
			if x.Status == "RUNNING" {
				f.Running++
			}
		}
	}
	if ledger != nil {
		if err := r.dataPlaneFacts(ctx, &f, *ledger); err != nil {
			return f, err
		}
	}
	return f, nil
}

// dataPlaneFacts compares the data plane's ledger with what the control plane holds: every
// command the agent applied, each service's last report, the queues.
func (r *Runner) dataPlaneFacts(ctx context.Context, f *Facts, ledger datasim.Ledger) error {
	repo := servicestate.New(cloud.NewDynamoDB(r.Cloud.WatchConfig()), r.ControlPlane.Outputs[outTable])
	for _, c := range ledger.Applied {
		f.Commands = append(f.Commands, string(c.Kind))
		rec, err := repo.Command(ctx, f.Deployment, c.ID)
		switch {
		case err != nil:
			f.Unsettled = append(f.Unsettled, fmt.Sprintf("command %s applied by the agent has no record: %v", c.ID, err))
		case !rec.Status.Final():
			f.Unsettled = append(f.Unsettled, fmt.Sprintf("command %s is %s", c.ID, rec.Status))
		}
	}
	svcs, err := repo.Services(ctx, f.Deployment)
	if err != nil {
		return fmt.Errorf("read the services of %s: %w", f.Deployment, err)
	}
	held := map[string]string{}
	for _, s := range svcs {
		held[s.ServiceID] = s.OrderKey
		f.Health = append(f.Health, s.ServiceID+"="+string(s.Health))
		if s.RefreshedCause != s.ChangeCause {
			f.Unsettled = append(f.Unsettled, fmt.Sprintf("service %s: the deployment's refresh after %q is undone", s.ServiceID, s.ChangeCause))
		}
	}
	dh, err := repo.DeploymentHealth(ctx, f.Deployment)
	if err != nil {
		return fmt.Errorf("read the health of %s: %w", f.Deployment, err)
	}
	f.Health = append(f.Health, "deployment="+string(dh.Health))
	sort.Strings(f.Health)
	q := sqs.NewFromConfig(r.Cloud.WatchConfig())
	queue := r.ControlPlane.Outputs[outStateQueueURL]
	waiting, dlqURL, err := queueDepths(ctx, q, queue)
	if err != nil {
		return err
	}
	if waiting > 0 {
		f.Unsettled = append(f.Unsettled, fmt.Sprintf("%d message(s) still on the state queue", waiting))
	}
	dead, err := deadLetters(ctx, q, dlqURL)
	if err != nil {
		return err
	}
	f.DeadLetters = len(dead)
	// The last report of each service is held by the control plane (so every earlier one
	// was applied or superseded), or it waits in the DLQ for an operator. (Order keys compare
	// as strings; a newer one is held when a send whose answer was lost was applied.)
	for _, svc := range slices.Sorted(maps.Keys(ledger.LastSent)) {
		sent := ledger.LastSent[svc]
		if held[svc] < sent && !dead[f.Deployment+"/"+svc+"/"+sent] {
			f.Lost = append(f.Lost, fmt.Sprintf("service %s: last report sent %s, held %q and not in the DLQ", svc, sent, held[svc]))
		}
	}
	return nil
}

// deadLetters reads the state messages in the DLQ, keyed "<deployment>/<service>/<order
// key>", and leaves them there, visible.
func deadLetters(ctx context.Context, q *sqs.Client, url string) (map[string]bool, error) {
	dead := map[string]bool{}
	if url == "" {
		return dead, nil
	}
	seen := map[string]bool{}
	for range 100 {
		out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(url), MaxNumberOfMessages: 10, VisibilityTimeout: 0})
		if err != nil {
			return nil, fmt.Errorf("read the dead-letter queue: %w", err)
		}
		fresh := 0
		var back []sqstypes.ChangeMessageVisibilityBatchRequestEntry
		for i, m := range out.Messages {
			back = append(back, sqstypes.ChangeMessageVisibilityBatchRequestEntry{Id: aws.String(fmt.Sprint(i)), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0})
			if seen[aws.ToString(m.MessageId)] {
				continue
			}
			seen[aws.ToString(m.MessageId)], fresh = true, fresh+1
			if msg, err := statemsg.Parse([]byte(aws.ToString(m.Body)), time.Now()); err == nil {
				dead[msg.DeploymentID+"/"+msg.ServiceID+"/"+msg.OrderKey()] = true
			}
		}
		if len(back) > 0 {
			defer func(entries []sqstypes.ChangeMessageVisibilityBatchRequestEntry) {
				_, _ = q.ChangeMessageVisibilityBatch(ctx, &sqs.ChangeMessageVisibilityBatchInput{QueueUrl: aws.String(url), Entries: entries})
			}(back)
		}
		if fresh == 0 {
			break
		}
	}
	return dead, nil
}

// queueDepths returns how many messages a queue holds (visible or in flight) and its
// dead-letter queue's URL ("" when it has none).
func queueDepths(ctx context.Context, q *sqs.Client, url string) (waiting int, dlqURL string, err error) {
	depth := func(url string) (int, map[string]string, error) {
		out, err := q.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll}})
		if err != nil {
			return 0, nil, fmt.Errorf("read the attributes of %s: %w", url, err)
		}
		n := 0
		for _, a := range []string{"ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"} {
			var v int
			_, _ = fmt.Sscan(out.Attributes[a], &v)
			n += v
		}
		return n, out.Attributes, nil
	}
	waiting, attrs, err := depth(url)
	if err != nil {
		return 0, "", err
	}
	var redrive struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	}
	if json.Unmarshal([]byte(attrs["RedrivePolicy"]), &redrive) != nil || redrive.DeadLetterTargetArn == "" {
		return waiting, "", nil
	}
	name := redrive.DeadLetterTargetArn[strings.LastIndex(redrive.DeadLetterTargetArn, ":")+1:]
	u, err := q.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		return 0, "", fmt.Errorf("find the dead-letter queue %s: %w", name, err)
	}
	return waiting, aws.ToString(u.QueueUrl), nil
}

// Violation is an invariant a chaos run broke.
type Violation struct {
	Invariant string
	Detail    string
}

func (v Violation) String() string { return v.Invariant + ": " + v.Detail }

// The invariants.
const (
	SameOutcome      = "same outcome as the fault-free run"
	StackOncePerTry  = "each customer stack created once per attempt"
	OneExecution     = "one workflow execution per trigger"
	CommandOnce      = "each command applied once"
	NoMessageLost    = "every state message applied, rejected or dead-lettered"
	AuditMatches     = "every audit entry matches a state change"
	NothingUnsettled = "nothing left in an intermediate state"
)

// Compare checks a run's facts against the fault-free run's.
func Compare(want, got Facts) []Violation {
	var vs []Violation
	add := func(inv, format string, args ...any) { vs = append(vs, Violation{inv, fmt.Sprintf(format, args...)}) }
	if got.Status != want.Status || got.Attempts != want.Attempts || got.Failure != want.Failure {
		add(SameOutcome, "deployment %s is %s after %d attempt(s) (failure %q); the fault-free run ended %s after %d (failure %q)",
			got.Deployment, got.Status, got.Attempts, got.Failure, want.Status, want.Attempts, want.Failure)
	}
	if !slices.Equal(got.Health, want.Health) {
		add(SameOutcome, "health %v, want %v", got.Health, want.Health)
	}
	if got.Maintenance != want.Maintenance || !slices.Equal(got.Versions, want.Versions) {
		add(SameOutcome, "maintenance %q on versions %v, want %q on %v", got.Maintenance, got.Versions, want.Maintenance, want.Versions)
	}
	if !slices.Equal(got.Outputs, want.Outputs) {
		add(SameOutcome, "outputs %v, want %v", got.Outputs, want.Outputs)
	}
	if !maps.Equal(got.Final, want.Final) {
		add(SameOutcome, "customer stacks end %v, want %v", got.Final, want.Final)
	}
	if !maps.Equal(got.Stacks, want.Stacks) {
		add(StackOncePerTry, "stacks created per name %v, the fault-free run created %v", got.Stacks, want.Stacks)
	}
	if !maps.Equal(got.Executions, want.Executions) {
		add(OneExecution, "executions per workflow %v, want %v", got.Executions, want.Executions)
	}
	if !slices.Equal(got.Commands, want.Commands) {
		add(CommandOnce, "the agent applied %v, want %v", got.Commands, want.Commands)
	}
	if len(got.Lost) > 0 {
		add(NoMessageLost, "%s (%d message(s) in the DLQ)", strings.Join(got.Lost, "; "), got.DeadLetters)
	}
	if !slices.Equal(got.Audit, want.Audit) {
		add(AuditMatches, "audit trail %v, want %v", got.Audit, want.Audit)
	}
	if len(got.Unsettled) > 0 || got.Running > 0 {
		add(NothingUnsettled, "%s; %d execution(s) still running", strings.Join(got.Unsettled, "; "), got.Running)
	}
	return vs
}

// catalogueVersion is the catalogue's target for an infrastructure version parameter.
func catalogueVersion(cat release.Catalogue, param string) string {
	switch param {
	case contract.InfraParamKubernetesVersion, contract.InfraParamNodeKubernetesVersion:
		return cat.Target(release.Kubernetes)
	case contract.InfraParamNodeReleaseVersion:
		return cat.Target(release.Nodes)
	}
	for _, a := range release.Addons {
		if param == contract.InfraParamAddonVersion(a) {
			return cat.Target(a)
		}
	}
	return ""
}

// versionNumber matches the version numbers in a step's description.
var versionNumber = regexp.MustCompile(`v?\d+(\.\d+)+(-[\w.]+)?`)
