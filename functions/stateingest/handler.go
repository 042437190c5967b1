package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/byocloud/byoc/shared/clock"
	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/statemsg"
)

// Handler ingests a batch of State Exporter messages from the state queue.
//
// Each message is judged alone and the batch answers with the messages that failed
// (ReportBatchItemFailures): a failing message never makes the good ones of its batch run
// again. A message that cannot be accepted (malformed, oversized, unknown version, invalid,
// from a sender who may not speak for the deployment it names) is reported as failed every
// time it is received, so SQS keeps it untouched and moves it to the DLQ after
// maxReceiveCount; the reason is recorded once (servicestate.Rejection) and announced on
// the bus. A message that failed for a transient reason (throttling) is retried the same
// way, without a rejection record.
type Handler struct {
	Repo      *servicestate.Repo
	Publisher servicestate.Publisher
	Tasks     cloud.TaskCompleter
	Log       *slog.Logger
	Now       func() time.Time
	// Writes, when set, is the DynamoDB client the repository writes through; the batch
	// log reports its counts.
	Writes *servicestate.CountingDB

	senders senderCache
}

// Concurrency bounds the messages of one batch processed at once. A batch is at most ten
// messages (the event source's default batch size); the read-then-write of each is
// independent, and messages of one service are kept consistent by the repository's
// conditional writes, not by sequential processing.
const Concurrency = 10

// Outcome of one message, for the batch log.
type outcome string

const (
	outApplied    outcome = "applied"
	outDuplicate  outcome = "duplicate"
	outOutOfOrder outcome = "out-of-order"
	outRejected   outcome = "rejected"
	outRetry      outcome = "retry"
)

// Handle processes one SQS batch.
func (h *Handler) Handle(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
	results := make([]outcome, len(ev.Records))
	var wg sync.WaitGroup
	sem := make(chan struct{}, Concurrency)
	var writes0, reads0 int64
	if h.Writes != nil {
		writes0, reads0 = h.Writes.Writes(), h.Writes.Reads()
	}
	for i, rec := range ev.Records {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = h.process(ctx, rec)
		}()
	}
	wg.Wait()

	var resp events.SQSEventResponse
	counts := map[outcome]int{}
	for i, o := range results {
		counts[o]++
		if o == outRejected || o == outRetry {
			resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: ev.Records[i].MessageId})
		}
	}
	attrs := []any{"messages", len(ev.Records)}
	for _, o := range []outcome{outApplied, outDuplicate, outOutOfOrder, outRejected, outRetry} {
		attrs = append(attrs, string(o), counts[o])
	}
	if h.Writes != nil {
		attrs = append(attrs, "dynamodbWrites", h.Writes.Writes()-writes0, "dynamodbReads", h.Writes.Reads()-reads0)
	}
	h.Log.Info("state batch", attrs...)
	return resp, nil
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return clock.Now()
}

// Reasons recorded for messages that are not statemsg rejections.
const (
	reasonUnknownDeployment = "unknown-deployment"
	reasonNoSender          = "no-sender"
	reasonForgedSender      = "forged-sender"
)

func (h *Handler) process(ctx context.Context, rec events.SQSMessage) outcome {
	log := h.Log.With("messageId", rec.MessageId)
	body := []byte(rec.Body)
	m, err := statemsg.Parse(body, h.now())
	if err != nil {
		return h.reject(ctx, rec, servicestate.Rejection{Reason: statemsg.Reason(err), Detail: err.Error(), ClaimedDeploymentID: claimedDeployment(body)})
	}
	log = log.With("deploymentId", m.DeploymentID, "serviceId", m.ServiceID, "orderKey", m.OrderKey())

	sender := rec.Attributes["SenderId"]
	dp, err := h.senders.get(ctx, h.Repo, m.DeploymentID, false)
	if servicestate.IsNotFound(err) {
		return h.reject(ctx, rec, servicestate.Rejection{Reason: reasonUnknownDeployment, Detail: "no data plane is registered for deployment " + m.DeploymentID, ClaimedDeploymentID: m.DeploymentID, SenderID: sender})
	}
	if err != nil {
		log.Warn("cannot read the deployment's data plane; will retry", "error", err.Error())
		return outRetry
	}
	if err := dp.VerifySender(sender); err != nil {
		if errors.Is(err, servicestate.ErrForgedSender) {
			// The cached record may predate a re-registration (a recreated exporter role):
			// judge against the stored one before calling it forged.
			if fresh, ferr := h.senders.get(ctx, h.Repo, m.DeploymentID, true); ferr == nil {
				err = fresh.VerifySender(sender)
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, servicestate.ErrNoSender):
			return h.reject(ctx, rec, servicestate.Rejection{Reason: reasonNoSender, Detail: err.Error(), ClaimedDeploymentID: m.DeploymentID})
		default:
			return h.reject(ctx, rec, servicestate.Rejection{Reason: reasonForgedSender, Detail: err.Error(), Security: true, ClaimedDeploymentID: m.DeploymentID, SenderID: sender})
		}
	}

	res, err := h.Repo.Apply(ctx, m, rec.MessageId)
	if err != nil {
		log.Warn("cannot apply the report; will retry", "error", err.Error())
		return outRetry
	}
	for _, a := range res.Alerts {
		log.Info("health transition", "scope", a.Alert.Scope, "from", a.Alert.From, "to", a.Alert.To, "reason", a.Alert.Reason, "severity", a.Alert.Severity)
	}
	if err := h.Repo.Deliver(ctx, h.Publisher, res.Alerts); err != nil {
		// The alerts stay in the outbox; the sweep publishes them. Not a reason to retry.
		log.Warn("alerts left in the outbox", "error", err.Error())
	}
	acked, err := h.Repo.ApplyAcks(ctx, m)
	if err != nil {
		log.Warn("cannot record command acknowledgements; will retry", "error", err.Error())
		return outRetry
	}
	if len(acked) > 0 {
		log.Info("commands acknowledged", "commands", acked)
	}
	if res.Service.Waiters > 0 {
		n, err := h.Repo.ResumeWaiters(ctx, h.Tasks, res.Service)
		if err != nil {
			log.Warn("cannot resume waiting tasks; will retry", "error", err.Error())
			return outRetry
		}
		if n > 0 {
			log.Info("resumed waiting tasks", "tasks", n)
		}
	}
	switch res.Outcome {
	case servicestate.Duplicate:
		return outDuplicate
	case servicestate.OutOfOrder:
		log.Info("older than the stored report; ignored", "stored", res.Service.OrderKey)
		return outOutOfOrder
	}
	return outApplied
}

// reject records why a message cannot be accepted (once per message) and announces it, then
// reports the message as failed so SQS keeps it and finally moves it to the DLQ.
func (h *Handler) reject(ctx context.Context, rec events.SQSMessage, rej servicestate.Rejection) outcome {
	sum := sha256.Sum256([]byte(rec.Body))
	rej.MessageID = rec.MessageId
	rej.BodySHA256 = hex.EncodeToString(sum[:])
	rej.BodyBytes = len(rec.Body)
	rej.SentAt = sentAt(rec, h.now())
	if len(rej.Detail) > statemsg.MaxDetailBytes {
		rej.Detail = rej.Detail[:statemsg.MaxDetailBytes]
	}
	log := h.Log.With("messageId", rec.MessageId, "reason", rej.Reason, "security", rej.Security,
		"claimedDeploymentId", rej.ClaimedDeploymentID, "senderId", rej.SenderID, "detail", rej.Detail)
	pending, err := h.Repo.RecordRejection(ctx, rej)
	if err != nil {
		log.Error("cannot record the rejection", "error", err.Error())
		return outRejected
	}
	if !pending {
		return outRejected // recorded, counted and announced when it was first received
	}
	if rej.Security {
		log.Warn("state message rejected: security event")
	} else {
		log.Warn("state message rejected")
	}
	// One announcement per sender per window: the rest of the window is summed up by the
	// sweep. If counting fails, announcing is the safer mistake. Marked handled only once
	// announced as it must be, so a redelivery after a stop in between finishes the job.
	_, opened, countErr := h.Repo.CountRejection(ctx, rej)
	if countErr != nil {
		log.Error("cannot count the rejection in its sender's window; announcing it, its next delivery counts it", "error", countErr.Error())
	} else if !opened {
		h.markHandled(ctx, log, rej)
		return outRejected
	}
	if err := h.Publisher.PublishRejection(ctx, rej); err != nil {
		log.Error("cannot announce the rejection (it is recorded; its next delivery tries again)", "error", err.Error())
		return outRejected
	}
	if countErr == nil {
		h.markHandled(ctx, log, rej)
	}
	return outRejected
}

func (h *Handler) markHandled(ctx context.Context, log *slog.Logger, rej servicestate.Rejection) {
	if err := h.Repo.MarkRejectionHandled(ctx, rej); err != nil {
		log.Warn("rejection handled but not marked; its next delivery announces it again", "error", err.Error())
	}
}

// sentAt is when SQS accepted the message: the same on every redelivery, so rejections are
// keyed stably.
func sentAt(rec events.SQSMessage, fallback time.Time) time.Time {
	ms, err := strconv.ParseInt(rec.Attributes["SentTimestamp"], 10, 64)
	if err != nil || ms <= 0 {
		return fallback
	}
	return time.UnixMilli(ms).UTC()
}

// claimedDeployment is the deployment id a rejected body names, when it can be read, for
// the rejection record.
func claimedDeployment(body []byte) string {
	if len(body) > statemsg.MaxBytes {
		return ""
	}
	var head struct {
		DeploymentID string `json:"deploymentId"`
	}
	if json.Unmarshal(body, &head) != nil || !settings.ValidDeploymentID(head.DeploymentID) {
		return ""
	}
	return head.DeploymentID
}

// senderCache keeps data-plane records for a minute: they change only when a deployment is
// provisioned or updated, and reading one per message would double the reads of the steady
// path. A mismatch is re-checked against the table before a message is called forged.
type senderCache struct {
	mu      sync.Mutex
	entries map[string]senderEntry
}

type senderEntry struct {
	dp      servicestate.DataPlane
	fetched time.Time
}

const senderTTL = time.Minute

func (c *senderCache) get(ctx context.Context, repo *servicestate.Repo, deploymentID string, fresh bool) (servicestate.DataPlane, error) {
	now := time.Now()
	c.mu.Lock()
	e, ok := c.entries[deploymentID]
	c.mu.Unlock()
	if ok && !fresh && now.Sub(e.fetched) < senderTTL {
		return e.dp, nil
	}
	dp, err := repo.DataPlane(ctx, deploymentID)
	if err != nil {
		return servicestate.DataPlane{}, fmt.Errorf("data plane of %s: %w", deploymentID, err)
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]senderEntry{}
	}
	c.entries[deploymentID] = senderEntry{dp: dp, fetched: now}
	c.mu.Unlock()
	return dp, nil
}
