package channel

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"

	"github.com/byocloud/byoc/shared/clock"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/settings"
)

// SQS is the part of the SQS client the channels use.
type SQS interface {
	CreateQueue(ctx context.Context, in *sqs.CreateQueueInput, optFns ...func(*sqs.Options)) (*sqs.CreateQueueOutput, error)
	GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	GetQueueAttributes(ctx context.Context, in *sqs.GetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.GetQueueAttributesOutput, error)
	SetQueueAttributes(ctx context.Context, in *sqs.SetQueueAttributesInput, optFns ...func(*sqs.Options)) (*sqs.SetQueueAttributesOutput, error)
	DeleteQueue(ctx context.Context, in *sqs.DeleteQueueInput, optFns ...func(*sqs.Options)) (*sqs.DeleteQueueOutput, error)
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
}

var _ SQS = (*sqs.Client)(nil)

// Reader is what an agent needs to consume its channel.
type Reader interface {
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, optFns ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, optFns ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
}

// ErrNoChannel says a deployment has no command queue (it was never opened, or was closed).
var ErrNoChannel = errors.New("no command channel")

// Command queue settings. Commands are small and few; what matters is that they are kept
// long enough for an agent that was down to catch up, and that a command an agent is
// applying is not handed out again while it works.
const (
	commandRetention   = 4 * 24 * time.Hour
	commandVisibility  = 5 * time.Minute
	attrPolicy         = "Policy"
	attrQueueArn       = "QueueArn"
	attrFifo           = "FifoQueue"
	attrContentDedup   = "ContentBasedDeduplication"
	attrSSE            = "SqsManagedSseEnabled"
	attrRetention      = "MessageRetentionPeriod"
	attrVisibility     = "VisibilityTimeout"
	messageGroupDeploy = "deployment"
)

// Open creates a deployment's command queue (or finds it) and sets its policy so that only
// agentRoleARN can read it. It is idempotent and also repairs the policy when the agent role
// changed; it returns the queue URL.
func Open(ctx context.Context, client SQS, deploymentID, agentRoleARN string) (string, error) {
	name, err := QueueName(deploymentID)
	if err != nil {
		return "", fmt.Errorf("open channel of %q: deploymentId %w", deploymentID, err)
	}
	if !settings.ValidDeploymentID(deploymentID) {
		return "", fmt.Errorf("open channel of %q: deploymentId must be %s", deploymentID, settings.DeploymentIDRule)
	}
	if _, ok := servicestate.RoleARNAccount(agentRoleARN); !ok {
		return "", fmt.Errorf("open channel of %s: agentRoleArn: must be an IAM role ARN, got %q", deploymentID, agentRoleARN)
	}
	created, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{
		QueueName: aws.String(name),
		Attributes: map[string]string{
			attrFifo: "true", attrContentDedup: "false", attrSSE: "true",
			attrRetention:  strconv.Itoa(int(commandRetention.Seconds())),
			attrVisibility: strconv.Itoa(int(commandVisibility.Seconds())),
		},
		Tags: map[string]string{"byoc:deployment": deploymentID},
	})
	if err != nil {
		return "", fmt.Errorf("create command queue %s: %w", name, err)
	}
	url := aws.ToString(created.QueueUrl)
	attrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(url), AttributeNames: []sqstypes.QueueAttributeName{attrQueueArn, attrPolicy},
	})
	if err != nil {
		return "", fmt.Errorf("read command queue %s: %w", name, err)
	}
	want, err := CommandQueuePolicy(attrs.Attributes[attrQueueArn], agentRoleARN)
	if err != nil {
		return "", err
	}
	if attrs.Attributes[attrPolicy] != want {
		if _, err := client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{
			QueueUrl: aws.String(url), Attributes: map[string]string{attrPolicy: want},
		}); err != nil {
			return "", fmt.Errorf("set policy of command queue %s: %w", name, err)
		}
	}
	return url, nil
}

// Close deletes a deployment's command queue (at teardown). Closing a channel that does not
// exist is not an error.
func Close(ctx context.Context, client SQS, deploymentID string) error {
	url, err := queueURL(ctx, client, deploymentID)
	if errors.Is(err, ErrNoChannel) {
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := client.DeleteQueue(ctx, &sqs.DeleteQueueInput{QueueUrl: aws.String(url)}); err != nil && !QueueMissing(err) {
		return fmt.Errorf("delete command queue of %s: %w", deploymentID, err)
	}
	return nil
}

// Disconnect undoes what provisioning connected (at teardown), in the order that leaves the
// shortest window for a removed exporter: the data plane is forgotten, then the state queue's
// policy is rewritten without its exporter (when stateQueueURL is set), so SQS refuses its
// messages once the policy has propagated (on AWS, up to a minute; a provisioning racing the
// rewrite is corrected by the next sweep), which also bounds what stateingest's one-minute
// sender cache can still accept; then the command channel is closed. Every step is idempotent: a repeated Disconnect finishes what a stopped one left.
func Disconnect(ctx context.Context, client SQS, repo *servicestate.Repo, stateQueueURL, deploymentID string) error {
	if err := repo.RemoveDataPlane(ctx, deploymentID); err != nil && !servicestate.IsNotFound(err) {
		return err
	}
	if stateQueueURL != "" {
		planes, err := repo.DataPlanes(ctx)
		if err != nil {
			return err
		}
		if _, err := AdmitExporters(ctx, client, stateQueueURL, planes); err != nil {
			return err
		}
	}
	return Close(ctx, client, deploymentID)
}

func queueURL(ctx context.Context, client SQS, deploymentID string) (string, error) {
	name, err := QueueName(deploymentID)
	if err != nil {
		return "", fmt.Errorf("channel of %q: deploymentId %w", deploymentID, err)
	}
	out, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if QueueMissing(err) {
		return "", fmt.Errorf("%s: %w", deploymentID, ErrNoChannel)
	}
	if err != nil {
		return "", fmt.Errorf("find command queue of %s: %w", deploymentID, err)
	}
	return aws.ToString(out.QueueUrl), nil
}

// QueueMissing recognises SQS's "no such queue" under both of its codes: QueueDoesNotExist
// (JSON protocol) and AWS.SimpleQueueService.NonExistentQueue (the query protocol's code,
// which some emulators, kumo among them, still return).
func QueueMissing(err error) bool {
	var dne *sqstypes.QueueDoesNotExist
	return errors.As(err, &dne) || cloud.ErrorCode(err) == "AWS.SimpleQueueService.NonExistentQueue"
}

// Recorder is where commands are recorded (servicestate.Repo).
type Recorder interface {
	CreateCommand(ctx context.Context, c servicestate.CommandRecord) (servicestate.CommandRecord, bool, error)
	AdvanceCommand(ctx context.Context, deploymentID, id string, status servicestate.CommandStatus, detail, serviceID string) (bool, error)
}

// Sender sends commands to deployments' agents.
type Sender struct {
	SQS      SQS
	Recorder Recorder
	Now      func() time.Time

	mu   sync.Mutex
	urls map[string]string // deployment -> queue URL
}

// Send records a command and puts it on its deployment's channel, and returns its record.
// A deployment without a channel is refused with ErrNoChannel and nothing is recorded.
// It is idempotent by command id: sending the same command again (a retried workflow step)
// sends nothing new once the first send is recorded, and a send interrupted between the two
// steps is repeated with the same SQS deduplication id, so the FIFO queue drops the copy
// (within its five-minute window; agents also ignore ids they have handled). A command
// reusing an id for a different request is refused (servicestate.ErrConflict) and nothing
// is sent.
func (s *Sender) Send(ctx context.Context, c Command) (servicestate.CommandRecord, error) {
	if c.SchemaVersion == 0 {
		c.SchemaVersion = CommandVersion
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = s.now()
	}
	body, err := Encode(c)
	if err != nil {
		return servicestate.CommandRecord{}, err
	}
	// The channel first: a deployment without one (never provisioned, or torn down) gets
	// no command record either.
	url, err := s.url(ctx, c.DeploymentID)
	if err != nil {
		return servicestate.CommandRecord{}, err
	}
	rec, _, err := s.Recorder.CreateCommand(ctx, servicestate.CommandRecord{
		ID: c.ID, DeploymentID: c.DeploymentID, ServiceID: c.ServiceID, Kind: string(c.Kind), Params: c.Params,
	})
	if err != nil {
		return servicestate.CommandRecord{}, err
	}
	if rec.Status != servicestate.CommandPending {
		return rec, nil // sent before
	}
	group := c.ServiceID // commands of one service run in order; services proceed independently
	if group == "" {
		group = messageGroupDeploy
	}
	if _, err := s.SQS.SendMessage(ctx, &sqs.SendMessageInput{
		QueueUrl: aws.String(url), MessageBody: aws.String(string(body)),
		MessageGroupId: aws.String(group), MessageDeduplicationId: aws.String(c.ID),
	}); QueueMissing(err) {
		// The channel was closed since its URL was cached (the deployment was torn down):
		// forget it, and end the command, which no agent will ever receive.
		s.forget(c.DeploymentID)
		if _, aerr := s.Recorder.AdvanceCommand(ctx, c.DeploymentID, c.ID, servicestate.CommandFailed, "the deployment's command channel was closed", ""); aerr != nil {
			return rec, aerr
		}
		rec.Status, rec.Detail = servicestate.CommandFailed, "the deployment's command channel was closed"
		return rec, fmt.Errorf("send command %s: %s: %w", c.ID, c.DeploymentID, ErrNoChannel)
	} else if err != nil {
		return rec, fmt.Errorf("send command %s to %s: %w", c.ID, c.DeploymentID, err)
	}
	if _, err := s.Recorder.AdvanceCommand(ctx, c.DeploymentID, c.ID, servicestate.CommandSent, "", ""); err != nil {
		return rec, err
	}
	rec.Status = servicestate.CommandSent
	return rec, nil
}

// forget drops a deployment's cached channel URL.
func (s *Sender) forget(deploymentID string) {
	s.mu.Lock()
	delete(s.urls, deploymentID)
	s.mu.Unlock()
}

func (s *Sender) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return clock.Now().UTC()
}

func (s *Sender) url(ctx context.Context, deploymentID string) (string, error) {
	s.mu.Lock()
	url, ok := s.urls[deploymentID]
	s.mu.Unlock()
	if ok {
		return url, nil
	}
	url, err := queueURL(ctx, s.SQS, deploymentID)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	if s.urls == nil {
		s.urls = map[string]string{}
	}
	s.urls[deploymentID] = url
	s.mu.Unlock()
	return url, nil
}

// Delivery is a command received by an agent, with the handle that deletes it.
type Delivery struct {
	Command       Command
	ReceiptHandle string
}

// Receive long-polls a command queue for up to wait, as the agent does. A message that is
// not a valid command is returned as an error entry's handle in bad, so the agent can delete
// it (it can never become valid) instead of receiving it forever.
func Receive(ctx context.Context, client Reader, queueURL string, max int32, wait time.Duration) (good []Delivery, bad []string, err error) {
	out, err := receive(ctx, client, queueURL, max, wait)
	if staleAttempt(err) {
		// SQS refuses an attempt id again after a throttled attempt; nothing was taken by
		// it, so a fresh attempt is safe.
		out, err = receive(ctx, client, queueURL, max, wait)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("receive commands: %w", err)
	}
	for _, m := range out.Messages {
		c, err := ParseCommand([]byte(aws.ToString(m.Body)))
		if err != nil {
			bad = append(bad, aws.ToString(m.ReceiptHandle))
			continue
		}
		good = append(good, Delivery{Command: c, ReceiptHandle: aws.ToString(m.ReceiptHandle)})
	}
	return good, bad, nil
}

// receive makes one receive attempt. Its attempt id makes the SDK's retry of a receive whose
// answer was lost (it keeps the input) get the same messages back. Without it those messages
// stay in flight for the queue's visibility timeout (5 minutes), and, the queue being FIFO, so
// does every command behind them: make chaos found a deployment's commands stuck so
// (dataplane, api, seed 15).
func receive(ctx context.Context, client Reader, queueURL string, max int32, wait time.Duration) (*sqs.ReceiveMessageOutput, error) {
	attempt, err := attemptID()
	if err != nil {
		return nil, err
	}
	return client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl: aws.String(queueURL), MaxNumberOfMessages: max, WaitTimeSeconds: int32(wait.Seconds()),
		ReceiveRequestAttemptId: aws.String(attempt),
	})
}

// staleAttempt reports SQS's refusal of an attempt id it will not honour again (after a
// throttled attempt: "The receiveRequestAttemptId is not valid anymore ...").
func staleAttempt(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "InvalidParameterValue" &&
		strings.Contains(strings.ToLower(api.ErrorMessage()), "receiverequestattemptid")
}

// attemptID is a fresh ReceiveRequestAttemptId (up to 128 characters of [a-zA-Z0-9] and
// punctuation).
func attemptID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("receive commands: attempt id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// Delete removes a handled command from its queue.
func Delete(ctx context.Context, client Reader, queueURL, receiptHandle string) error {
	if _, err := client.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(queueURL), ReceiptHandle: aws.String(receiptHandle)}); err != nil {
		return fmt.Errorf("delete command: %w", err)
	}
	return nil
}

// AdmitExporters brings the state queue's policy in line with the registered data planes:
// their exporter roles may send, no one else. It writes the policy only when it changed and
// reports whether it did. The sweep calls it on every run, so the policy converges even when
// two provisionings race to update it.
func AdmitExporters(ctx context.Context, client SQS, stateQueueURL string, planes []servicestate.DataPlane) (bool, error) {
	attrs, err := client.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(stateQueueURL), AttributeNames: []sqstypes.QueueAttributeName{attrQueueArn, attrPolicy},
	})
	if err != nil {
		return false, fmt.Errorf("read state queue: %w", err)
	}
	want, err := StateQueuePolicy(attrs.Attributes[attrQueueArn], planes)
	if err != nil {
		return false, err
	}
	if attrs.Attributes[attrPolicy] == want {
		return false, nil
	}
	if _, err := client.SetQueueAttributes(ctx, &sqs.SetQueueAttributesInput{
		QueueUrl: aws.String(stateQueueURL), Attributes: map[string]string{attrPolicy: want},
	}); err != nil {
		return false, fmt.Errorf("set state queue policy: %w", err)
	}
	return true, nil
}
