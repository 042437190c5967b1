package channel

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/servicestate"
)

// MaxPolicyBytes is SQS's limit on a queue policy.
const MaxPolicyBytes = 8192

// ErrPolicyTooLarge says the state queue cannot admit every exporter in one policy: about a
// hundred role ARNs fit. Beyond that the state queue must be sharded (see docs/state.md).
var ErrPolicyTooLarge = errors.New("queue policy exceeds SQS's 8192-byte limit")

type statement struct {
	Sid       string         `json:"Sid"`
	Effect    string         `json:"Effect"`
	Principal any            `json:"Principal"`
	Action    any            `json:"Action"`
	Resource  string         `json:"Resource"`
	Condition map[string]any `json:"Condition,omitempty"`
}

type policy struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

// denyInsecure refuses any request without TLS (the AWS Foundational Security practice for
// queues, and cdk-nag's AwsSolutions-SQS4).
func denyInsecure(queueARN string) statement {
	return statement{
		Sid: "DenyInsecureTransport", Effect: "Deny", Principal: "*", Action: "sqs:*", Resource: queueARN,
		Condition: map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
	}
}

func render(p policy) (string, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return "", err
	}
	if len(b) > MaxPolicyBytes {
		return "", fmt.Errorf("%w: %d bytes", ErrPolicyTooLarge, len(b))
	}
	return string(b), nil
}

// StateQueuePolicy is the state queue's resource policy: the state exporter role of every
// registered data plane may send, nobody else from outside the vendor account may do
// anything, and nothing goes over plain HTTP. Principals are matched by exact ARN with the
// aws:PrincipalArn condition (a Principal list would cap at 50 roles). The output is stable
// (sorted, deduplicated) so a reconciler can tell whether it changed.
func StateQueuePolicy(queueARN string, planes []servicestate.DataPlane) (string, error) {
	var arns []string
	for _, d := range planes {
		arns = append(arns, d.ExporterRoleARN)
	}
	slices.Sort(arns)
	arns = slices.Compact(arns)
	p := policy{Version: "2012-10-17", Statement: []statement{denyInsecure(queueARN)}}
	if len(arns) > 0 {
		p.Statement = append(p.Statement, statement{
			Sid: "StateExportersSend", Effect: "Allow", Principal: map[string]any{"AWS": "*"},
			Action: "sqs:SendMessage", Resource: queueARN,
			Condition: map[string]any{"ArnEquals": map[string]any{"aws:PrincipalArn": arns}},
		})
	}
	out, err := render(p)
	if err != nil {
		return "", fmt.Errorf("state queue policy for %d exporters: %w", len(arns), err)
	}
	return out, nil
}

// CommandQueuePolicy is a command channel's resource policy: the deployment's agent role may
// find the queue (GetQueueUrl with the vendor account as owner: another account's lookup
// needs the queue policy's Allow), receive, delete and extend the visibility of messages;
// no other principal, in any account, may receive (the explicit deny holds even against
// broad IAM permissions in the vendor account); nothing goes over plain HTTP. The control plane sends with its own IAM
// permissions (same account), which the policy does not need to grant.
func CommandQueuePolicy(queueARN, agentRoleARN string) (string, error) {
	return render(policy{Version: "2012-10-17", Statement: []statement{
		denyInsecure(queueARN),
		{
			Sid: "AgentReads", Effect: "Allow", Principal: map[string]any{"AWS": agentRoleARN},
			Action:   []string{"sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility", "sqs:GetQueueAttributes"},
			Resource: queueARN,
		},
		{
			Sid: "OnlyTheAgentReads", Effect: "Deny", Principal: "*",
			Action: []string{"sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"}, Resource: queueARN,
			Condition: map[string]any{"ArnNotEquals": map[string]any{"aws:PrincipalArn": agentRoleARN}},
		},
	}})
}

// QueueName is the name of a deployment's command queue. SQS names are at most 80
// characters, so deployment ids longer than 61 characters cannot have a channel.
func QueueName(deploymentID string) (string, error) {
	name := contract.CommandQueuePrefix + deploymentID + ".fifo"
	if len(name) > 80 {
		return "", fmt.Errorf("must be at most %d characters to name a command queue", 80-len(contract.CommandQueuePrefix)-len(".fifo"))
	}
	return name, nil
}
