// Package sqsgate is the local cloud's SQS front: it knows who sends a message and enforces
// queue policies, two things kumo's SQS does not do.
//
//   - SendMessage and SendMessageBatch: every message gets the message attribute
//     contract.LocalSenderIDAttribute set to the caller's UserID ("<role id>:<session>" for a
//     role session, the account id for a root user), replacing whatever the caller put there,
//     so a sender cannot be forged. The local SQS event source moves it into the record's
//     SenderId (package esm), and ReceiveMessage answers it as the SenderId system attribute.
//   - Every queue operation is authorized against the queue's Policy attribute with the
//     accounts policy evaluator, as SQS does: an explicit Deny refuses; a caller of another
//     account than the queue's owner needs an Allow, and may never use the queue-management
//     actions; a caller of the owner account is allowed otherwise (identity policies are not
//     evaluated, see docs/local-cloud.md). Denials are answered as SQS answers them:
//     AccessDenied, HTTP 403, in the JSON protocol.
//
// kumo holds every queue in one account, accounts.VendorAccount (its queue URLs read
// http://localhost:4566/000000000000/<name>, its ARNs arn:aws:sqs:us-east-1:000000000000:<name>),
// and resolves a queue by its URL's path. The gate takes the owner from that path. A
// GetQueueUrl names the owner with QueueOwnerAWSAccountId, by default the caller's account:
// queues of customer accounts do not exist in the local cloud, so such a lookup answers
// QueueDoesNotExist.
//
// The local cloud is plain HTTP but counts as TLS: aws:SecureTransport is "true", so the
// "deny insecure transport" statements byoc writes do not refuse it. Calls the local cloud
// makes on its own behalf (frontdoor.InternalHeader: event source pollers, the stack engine)
// are not gated.
package sqsgate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/google/uuid"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/frontdoor"
	"github.com/byocloud/byoc/shared/channel"
	"github.com/byocloud/byoc/shared/contract"
)

// MaxMessageAttributes is SQS's limit on a message's own attributes. The stamped sender
// attribute is not counted: a message with ten attributes of its own is accepted, as SQS
// accepts it, and carries an eleventh in kumo.
const MaxMessageAttributes = 10

// maxBody bounds what the gate reads of a request: SQS messages are at most 1 MiB, a batch
// of ten at most 1 MiB in total; JSON escaping can double that.
const maxBody = 4 << 20

// Config wires a gate.
type Config struct {
	Accounts *accounts.Accounts
	// Next serves the requests the gate admits (kumo, through the door's proxy).
	Next http.Handler
	// AWS reads queue policies (GetQueueAttributes). Its requests must not come back
	// through the gate as gated calls: point it at kumo, or mark it internal
	// (frontdoor.InternalClient).
	AWS aws.Config
	// VendorAccount is the account kumo's queues belong to; accounts.VendorAccount by default.
	VendorAccount string
	// PolicyTTL is how long a queue's policy is cached. Policy changes through the door
	// (SetQueueAttributes, AddPermission, RemovePermission, DeleteQueue, CreateQueue) clear
	// it at once, whoever makes them; the TTL covers changes made around the door. Default
	// one second; a negative value disables the cache.
	PolicyTTL time.Duration
	Logger    *slog.Logger
}

// Gate is the SQS handler of the front door. Safe for concurrent use.
type Gate struct {
	cfg Config
	sqs *sqs.Client
	log *slog.Logger

	mu    sync.Mutex
	cache map[string]queueFacts // queue URL path -> facts
	// attempts are FIFO receives by ReceiveRequestAttemptId: a retry within five minutes
	// gets the same messages and receipt handles, as SQS answers it.
	attempts map[string]receiveAttempt
}

type receiveAttempt struct {
	status int
	header http.Header
	body   []byte
	at     time.Time
}

// attemptWindow is how long SQS deduplicates a FIFO ReceiveMessage by its
// ReceiveRequestAttemptId.
const attemptWindow = 5 * time.Minute

type queueFacts struct {
	arn     string
	policy  *accounts.Policy // nil: no policy
	fetched time.Time
	missing bool // the queue does not exist
}

// New returns a gate.
func New(cfg Config) *Gate {
	if cfg.VendorAccount == "" {
		cfg.VendorAccount = accounts.VendorAccount
	}
	if cfg.PolicyTTL == 0 {
		cfg.PolicyTTL = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Gate{cfg: cfg, sqs: sqs.NewFromConfig(cfg.AWS), log: cfg.Logger, cache: map[string]queueFacts{}, attempts: map[string]receiveAttempt{}}
}

// IsRequest reports whether r is an SQS request in the JSON protocol, the one kumo speaks
// (the door's route matcher: HandleIf("sqs", IsRequest, gate)).
func IsRequest(r *http.Request) bool {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
	return ok && op != ""
}

// actions maps an operation to the IAM action it is authorized as (batch operations as
// their single form). Operations not listed (CreateQueue, ListQueues) name no queue.
var actions = map[string]string{
	"SendMessage": "sqs:SendMessage", "SendMessageBatch": "sqs:SendMessage",
	"ReceiveMessage": "sqs:ReceiveMessage",
	"DeleteMessage":  "sqs:DeleteMessage", "DeleteMessageBatch": "sqs:DeleteMessage",
	"ChangeMessageVisibility": "sqs:ChangeMessageVisibility", "ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
	"GetQueueAttributes": "sqs:GetQueueAttributes", "GetQueueUrl": "sqs:GetQueueUrl",
	"PurgeQueue": "sqs:PurgeQueue", "ListDeadLetterSourceQueues": "sqs:ListDeadLetterSourceQueues",
	// Queue management: never granted to another account.
	"SetQueueAttributes": "sqs:SetQueueAttributes", "DeleteQueue": "sqs:DeleteQueue",
	"TagQueue": "sqs:TagQueue", "UntagQueue": "sqs:UntagQueue", "ListQueueTags": "sqs:ListQueueTags",
	"AddPermission": "sqs:AddPermission", "RemovePermission": "sqs:RemovePermission",
}

// sameAccountOnly are the actions SQS does not let a queue policy grant to other accounts.
var sameAccountOnly = map[string]bool{
	"sqs:SetQueueAttributes": true, "sqs:DeleteQueue": true, "sqs:TagQueue": true, "sqs:UntagQueue": true,
	"sqs:ListQueueTags": true, "sqs:AddPermission": true, "sqs:RemovePermission": true,
}

// policyWrites change what the cache holds.
var policyWrites = map[string]bool{
	"SetQueueAttributes": true, "AddPermission": true, "RemovePermission": true, "DeleteQueue": true, "CreateQueue": true,
}

// request is the part of an SQS JSON request the gate reads. The body is kept raw and only
// the fields the gate changes are rewritten.
type request struct {
	QueueURL   string `json:"QueueUrl"`
	QueueName  string `json:"QueueName"`
	QueueOwner string `json:"QueueOwnerAWSAccountId"`
}

// ServeHTTP gates one SQS request.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	op := strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AmazonSQS.")
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	_ = r.Body.Close()
	if err != nil || len(body) > maxBody {
		writeError(w, http.StatusBadRequest, "InvalidParameterValue", "com.amazonaws.sqs#InvalidParameterValue",
			"the request body could not be read or exceeds "+strconv.Itoa(maxBody)+" bytes")
		return
	}
	var req request
	_ = json.Unmarshal(body, &req) // a malformed body is kumo's to refuse
	internal := r.Header.Get(frontdoor.InternalHeader) != ""

	if policyWrites[op] {
		defer g.forget(req)
	}
	if internal {
		g.forward(w, r, body)
		return
	}
	caller := g.cfg.Accounts.Caller(r)
	if action, ok := actions[op]; ok {
		queueURL := req.QueueURL
		if op == "GetQueueUrl" {
			owner := req.QueueOwner
			if owner == "" {
				owner = caller.Account
			}
			if owner != g.cfg.VendorAccount {
				writeError(w, http.StatusBadRequest, "AWS.SimpleQueueService.NonExistentQueue", "com.amazonaws.sqs#QueueDoesNotExist",
					"The specified queue does not exist.")
				return
			}
			queueURL = "/" + owner + "/" + req.QueueName
		}
		if denied, why := g.denies(r.Context(), caller, action, queueURL); denied {
			g.log.Info("sqs: access denied", "caller", caller.Arn, "operation", op, "queue", queueURL, "why", why)
			writeError(w, http.StatusForbidden, "AccessDenied", "com.amazon.coral.service#AccessDeniedException",
				"Access to the resource https://sqs."+regionOf(r)+".amazonaws.com/ is denied.")
			return
		}
	}
	switch op {
	case "SendMessage", "SendMessageBatch":
		stamped, err := stamp(op, body, caller.UserID)
		if err != nil {
			writeError(w, http.StatusBadRequest, "InvalidParameterValue", "com.amazonaws.sqs#InvalidParameterValue", err.Error())
			return
		}
		g.forward(w, r, stamped)
	case "ReceiveMessage":
		g.receive(w, r, body, caller)
	default:
		g.forward(w, r, body)
	}
}

func (g *Gate) forward(w http.ResponseWriter, r *http.Request, body []byte) {
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.Header.Set("Content-Length", strconv.Itoa(len(body)))
	g.cfg.Next.ServeHTTP(w, r)
}

// denies decides an action on a queue; queueURL may be a full URL or just its path.
func (g *Gate) denies(ctx context.Context, caller accounts.Principal, action, queueURL string) (bool, string) {
	path := urlPath(queueURL)
	owner, _, ok := strings.Cut(strings.TrimPrefix(path, "/"), "/")
	if !ok || owner == "" {
		return false, "" // not a queue URL: kumo answers it
	}
	facts, err := g.facts(ctx, path)
	if err != nil {
		// Fail closed: a policy that cannot be read cannot admit anyone.
		return true, "the queue policy could not be read: " + err.Error()
	}
	if facts.missing {
		return false, "" // kumo answers QueueDoesNotExist
	}
	crossAccount := caller.Account != owner
	if crossAccount && sameAccountOnly[action] {
		return true, action + " is never granted to another account"
	}
	if facts.policy == nil {
		if crossAccount {
			return true, "the queue has no policy and the caller is in account " + caller.Account
		}
		return false, ""
	}
	d := facts.policy.Evaluate(accounts.Request{
		Principal: caller, Action: action, Resource: facts.arn,
		// The local cloud is plain HTTP on the loopback; it stands for AWS's TLS endpoints.
		Context: map[string][]string{"aws:SecureTransport": {"true"}},
	}, true)
	switch {
	case d.Denied:
		return true, d.Reason
	case crossAccount && !d.Allowed:
		return true, "another account needs an Allow: " + d.Reason
	}
	return false, ""
}

// facts returns a queue's ARN and policy, cached.
func (g *Gate) facts(ctx context.Context, path string) (queueFacts, error) {
	g.mu.Lock()
	f, ok := g.cache[path]
	g.mu.Unlock()
	if ok && g.cfg.PolicyTTL > 0 && time.Since(f.fetched) < g.cfg.PolicyTTL {
		return f, nil
	}
	out, err := g.sqs.GetQueueAttributes(ctx, &sqs.GetQueueAttributesInput{
		// kumo resolves a queue by its URL's path, whatever the host.
		QueueUrl:       aws.String("http://localhost:4566" + path),
		AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn, sqstypes.QueueAttributeNamePolicy},
	})
	f = queueFacts{fetched: time.Now()}
	switch {
	case channel.QueueMissing(err):
		f.missing = true
	case err != nil:
		return queueFacts{}, err
	default:
		f.arn = out.Attributes[string(sqstypes.QueueAttributeNameQueueArn)]
		if raw := out.Attributes[string(sqstypes.QueueAttributeNamePolicy)]; raw != "" {
			p, err := accounts.ParsePolicy(json.RawMessage(raw))
			if err != nil {
				return queueFacts{}, fmt.Errorf("policy of %s: %w", f.arn, err)
			}
			f.policy = p
		}
	}
	g.mu.Lock()
	g.cache[path] = f
	g.mu.Unlock()
	return f, nil
}

// forget drops a queue's cached facts after a request that may change them.
func (g *Gate) forget(req request) {
	path := urlPath(req.QueueURL)
	if req.QueueURL == "" && req.QueueName != "" { // CreateQueue
		path = "/" + g.cfg.VendorAccount + "/" + req.QueueName
	}
	g.mu.Lock()
	delete(g.cache, path)
	g.mu.Unlock()
}

func urlPath(queueURL string) string {
	if u, err := url.Parse(queueURL); err == nil && u.Path != "" {
		return u.Path
	}
	return queueURL
}

func regionOf(r *http.Request) string {
	if _, region, _ := frontdoor.CredentialScope(r); region != "" {
		return region
	}
	return "us-east-1"
}

// writeError answers in SQS's JSON protocol: the query-compatible code in
// x-amzn-query-error (what SDKs report as the error code), the shape in __type.
func writeError(w http.ResponseWriter, status int, queryCode, typ, message string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	w.Header().Set("x-amzn-RequestId", uuid.NewString())
	w.Header().Set("x-amzn-query-error", queryCode+";Sender")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": message})
}

// attrValue is a message attribute as SQS's JSON protocol writes it.
type attrValue struct {
	DataType         string   `json:"DataType"`
	StringValue      *string  `json:"StringValue,omitempty"`
	BinaryValue      []byte   `json:"BinaryValue,omitempty"`
	StringListValues []string `json:"StringListValues,omitempty"`
	BinaryListValues [][]byte `json:"BinaryListValues,omitempty"`
}

func (a attrValue) sdk() sqstypes.MessageAttributeValue {
	return sqstypes.MessageAttributeValue{DataType: aws.String(a.DataType), StringValue: a.StringValue, BinaryValue: a.BinaryValue}
}

// stamp sets the sender attribute on every message of a SendMessage or SendMessageBatch
// body, replacing one the caller set. Other fields pass unchanged.
func stamp(op string, body []byte, userID string) ([]byte, error) {
	var msg map[string]json.RawMessage
	if err := json.Unmarshal(body, &msg); err != nil {
		return body, nil // kumo refuses it as SQS would
	}
	if op == "SendMessage" {
		if err := stampOne(msg, userID); err != nil {
			return nil, err
		}
		return json.Marshal(msg)
	}
	var entries []map[string]json.RawMessage
	if err := json.Unmarshal(msg["Entries"], &entries); err != nil {
		return body, nil
	}
	for i, e := range entries {
		if err := stampOne(e, userID); err != nil {
			return nil, fmt.Errorf("entry %d: %w", i+1, err)
		}
	}
	raw, err := json.Marshal(entries)
	if err != nil {
		return nil, err
	}
	msg["Entries"] = raw
	return json.Marshal(msg)
}

func stampOne(msg map[string]json.RawMessage, userID string) error {
	attrs := map[string]json.RawMessage{}
	if raw, ok := msg["MessageAttributes"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &attrs); err != nil {
			return fmt.Errorf("MessageAttributes must be an object")
		}
	}
	delete(attrs, contract.LocalSenderIDAttribute) // a forged sender does not survive
	if n := len(attrs); n > MaxMessageAttributes {
		return fmt.Errorf("Number of message attributes [%d] exceeds the allowed maximum [%d].", n, MaxMessageAttributes)
	}
	v, err := json.Marshal(attrValue{DataType: "String", StringValue: aws.String(userID)})
	if err != nil {
		return err
	}
	attrs[contract.LocalSenderIDAttribute] = v
	raw, err := json.Marshal(attrs)
	if err != nil {
		return err
	}
	msg["MessageAttributes"] = raw
	return nil
}

// receive serves ReceiveMessage to a caller outside the local cloud as SQS would: the
// sender attribute is not a message attribute there but the SenderId system attribute,
// answered when asked for (SenderId or All). kumo computes no attribute digests, so none
// needs fixing.
func (g *Gate) receive(w http.ResponseWriter, r *http.Request, body []byte, caller accounts.Principal) {
	var in struct {
		QueueURL                    string   `json:"QueueUrl"`
		AttributeNames              []string `json:"AttributeNames"`
		MessageSystemAttributeNames []string `json:"MessageSystemAttributeNames"`
		AttemptID                   string   `json:"ReceiveRequestAttemptId"`
	}
	_ = json.Unmarshal(body, &in)
	// A FIFO receive retried with its ReceiveRequestAttemptId (its answer was lost) gets the
	// first answer again: its messages are in flight, and a fresh receive would find their
	// group locked until their visibility timeout ends.
	key := ""
	if in.AttemptID != "" && strings.HasSuffix(in.QueueURL, ".fifo") {
		key = caller.UserID + " " + urlPath(in.QueueURL) + " " + in.AttemptID
		if a, ok := g.attempt(key); ok {
			write(w, a.status, a.header, a.body)
			return
		}
	}
	wantSender := false
	for _, n := range append(in.AttributeNames, in.MessageSystemAttributeNames...) {
		wantSender = wantSender || n == "All" || n == "SenderId"
	}
	rec := httptest.NewRecorder()
	g.forward(rec, r, body)
	res := rec.Result()
	out, _ := io.ReadAll(res.Body)
	if res.StatusCode == http.StatusOK {
		if rewritten, ok := moveSender(out, wantSender); ok {
			out = rewritten
		}
		var got struct {
			Messages []json.RawMessage `json:"Messages"`
		}
		if key != "" && json.Unmarshal(out, &got) == nil && len(got.Messages) > 0 {
			g.remember(key, receiveAttempt{status: res.StatusCode, header: res.Header.Clone(), body: out, at: time.Now()})
		}
	}
	write(w, res.StatusCode, res.Header, out)
}

// write answers status, the headers (but Content-Length) and body.
func write(w http.ResponseWriter, status int, header http.Header, body []byte) {
	for k, v := range header {
		if k != "Content-Length" {
			w.Header()[k] = v
		}
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// attempt returns the answer of a receive attempt within its window.
func (g *Gate) attempt(key string) (receiveAttempt, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	a, ok := g.attempts[key]
	return a, ok && time.Since(a.at) < attemptWindow
}

// remember keeps a receive attempt's answer, forgetting the ones past their window.
func (g *Gate) remember(key string, a receiveAttempt) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, old := range g.attempts {
		if time.Since(old.at) >= attemptWindow {
			delete(g.attempts, k)
		}
	}
	g.attempts[key] = a
}

// moveSender takes the sender attribute out of each received message's attributes and,
// when wanted, answers it as Attributes.SenderId.
func moveSender(body []byte, wantSender bool) ([]byte, bool) {
	var resp map[string]json.RawMessage
	if json.Unmarshal(body, &resp) != nil {
		return nil, false
	}
	var msgs []map[string]json.RawMessage
	if json.Unmarshal(resp["Messages"], &msgs) != nil || len(msgs) == 0 {
		return nil, false
	}
	for _, m := range msgs {
		var attrs map[string]attrValue
		if json.Unmarshal(m["MessageAttributes"], &attrs) != nil {
			continue
		}
		sender, ok := attrs[contract.LocalSenderIDAttribute]
		if !ok {
			continue
		}
		delete(attrs, contract.LocalSenderIDAttribute)
		if len(attrs) == 0 {
			delete(m, "MessageAttributes")
			delete(m, "MD5OfMessageAttributes")
		} else {
			sdk := map[string]sqstypes.MessageAttributeValue{}
			for k, v := range attrs {
				sdk[k] = v.sdk()
			}
			m["MessageAttributes"], _ = json.Marshal(attrs)
			m["MD5OfMessageAttributes"], _ = json.Marshal(MessageAttributesMD5(sdk))
		}
		if wantSender {
			system := map[string]string{}
			_ = json.Unmarshal(m["Attributes"], &system)
			system["SenderId"] = aws.ToString(sender.StringValue)
			m["Attributes"], _ = json.Marshal(system)
		}
	}
	var err error
	if resp["Messages"], err = json.Marshal(msgs); err != nil {
		return nil, false
	}
	out, err := json.Marshal(resp)
	return out, err == nil
}
