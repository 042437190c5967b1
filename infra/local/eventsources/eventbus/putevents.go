package eventbus

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/byocloud/byoc/infra/local/frontdoor"
)

// IsPutEvents reports whether a request is EventBridge PutEvents: the front door sends
// those to the Bus and the rest of EventBridge (buses, rules, targets) to kumo.
func IsPutEvents(r *http.Request) bool {
	return r.Header.Get("X-Amz-Target") == "AWSEvents.PutEvents"
}

// Limits of PutEvents (https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html).
const (
	maxEntries   = 10
	maxEntrySize = 256 * 1024
)

type putEventsEntry struct {
	Source       *string
	DetailType   *string
	Detail       *string
	Resources    []string
	EventBusName *string
	Time         *json.Number // the SDKs send epoch seconds
	TraceHeader  *string
}

type resultEntry struct {
	EventID      string `json:"EventId,omitempty"`
	ErrorCode    string `json:"ErrorCode,omitempty"`
	ErrorMessage string `json:"ErrorMessage,omitempty"`
}

// Envelope is an EventBridge event as targets receive it, fields in AWS's order (the stack
// engine builds the ones CloudFormation emits with it too).
type Envelope struct {
	Version    string          `json:"version"`
	ID         string          `json:"id"`
	DetailType string          `json:"detail-type"`
	Source     string          `json:"source"`
	Account    string          `json:"account"`
	Time       string          `json:"time"`
	Region     string          `json:"region"`
	Resources  []string        `json:"resources"`
	Detail     json.RawMessage `json:"detail"`
}

// ServeHTTP answers PutEvents (AWS JSON 1.1). Each entry becomes an event of the caller's
// account and region and is delivered at once; entries that EventBridge would refuse get
// its error code, and the others still go through, as on AWS.
func (b *Bus) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !IsPutEvents(r) {
		writeError(w, http.StatusBadRequest, "UnknownOperationException", "the local event bus serves PutEvents only")
		return
	}
	var req struct {
		Entries    []putEventsEntry
		EndpointId *string //nolint:revive // the API's name
	}
	dec := json.NewDecoder(r.Body)
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "SerializationException", "the request body is not valid JSON: "+err.Error())
		return
	}
	if n := len(req.Entries); n < 1 || n > maxEntries {
		writeError(w, http.StatusBadRequest, "ValidationException",
			fmt.Sprintf("1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length between 1 and %d (got %d)", maxEntries, n))
		return
	}
	caller := b.cfg.Account
	if b.cfg.CallerAccount != nil {
		caller = b.cfg.CallerAccount(r)
	}
	region := b.cfg.Region
	if _, rg, _ := frontdoor.CredentialScope(r); rg != "" {
		region = rg
	}
	results := make([]resultEntry, len(req.Entries))
	failed := 0
	for i, e := range req.Entries {
		res := b.putOne(r.Context(), e, caller, region)
		if res.ErrorCode != "" {
			failed++
		}
		results[i] = res
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(map[string]any{"FailedEntryCount": failed, "Entries": results})
}

func (b *Bus) putOne(ctx context.Context, e putEventsEntry, caller, region string) resultEntry {
	invalid := func(param, reason string) resultEntry {
		return resultEntry{ErrorCode: "InvalidArgument", ErrorMessage: fmt.Sprintf("Parameter %s is not valid. Reason: %s", param, reason)}
	}
	switch {
	case e.Source == nil || *e.Source == "":
		return invalid("Source", "Source is a required argument.")
	case e.DetailType == nil || *e.DetailType == "":
		return invalid("DetailType", "DetailType is a required argument.")
	case e.Detail == nil || *e.Detail == "":
		return invalid("Detail", "Detail is a required argument.")
	}
	var detail map[string]any
	if err := json.Unmarshal([]byte(*e.Detail), &detail); err != nil || detail == nil {
		return resultEntry{ErrorCode: "MalformedDetail", ErrorMessage: "Detail is malformed."}
	}
	if strings.HasPrefix(*e.Source, "aws.") {
		// Only AWS services emit aws.* events; a customer's PutEvents cannot forge them.
		return resultEntry{ErrorCode: "NotAuthorizedForSourceException", ErrorMessage: "Not authorized for the source."}
	}
	at := time.Now().UTC()
	if e.Time != nil {
		secs, err := e.Time.Float64()
		if err != nil || secs < 0 {
			return invalid("Time", "Time must be a timestamp.")
		}
		whole, frac := math.Modf(secs)
		at = time.Unix(int64(whole), int64(frac*1e9)).UTC()
	}
	for _, res := range e.Resources {
		if res == "" {
			return invalid("Resources", "Resources must not contain empty strings.")
		}
	}
	name := "default"
	if e.EventBusName != nil && *e.EventBusName != "" {
		name = *e.EventBusName
	}
	if strings.HasPrefix(name, "arn:") {
		parts := strings.SplitN(name, ":", 6)
		if len(parts) != 6 || parts[4] != b.cfg.Account {
			return resultEntry{ErrorCode: "ResourceNotFoundException", ErrorMessage: fmt.Sprintf("Event bus %s does not exist.", name)}
		}
	}
	bus := busName(name)
	if caller != b.cfg.Account && (b.cfg.Admits == nil || !b.cfg.Admits(b.busArn(bus), caller, *e.Source)) {
		return resultEntry{ErrorCode: "AccessDeniedException", ErrorMessage: fmt.Sprintf(
			"User: arn:aws:iam::%s:root is not authorized to perform: events:PutEvents on resource: %s because no resource-based policy allows the events:PutEvents action", caller, b.busArn(bus))}
	}
	resources := e.Resources
	if resources == nil {
		resources = []string{}
	}
	var compact bytes.Buffer
	_ = json.Compact(&compact, []byte(*e.Detail))
	ev := Envelope{
		Version: "0", ID: uuid.NewString(), DetailType: *e.DetailType, Source: *e.Source, Account: caller,
		Time: at.Format(time.RFC3339), Region: region, Resources: resources, Detail: compact.Bytes(),
	}
	body, _ := json.Marshal(ev)
	if len(body) > maxEntrySize {
		return invalid("Entries", "Total size of the entries in the request is over the limit.")
	}
	if err := b.Deliver(ctx, bus, body); errors.Is(err, ErrNoSuchBus) {
		return resultEntry{ErrorCode: "ResourceNotFoundException", ErrorMessage: fmt.Sprintf("Event bus %s does not exist.", bus)}
	} else if err != nil {
		return resultEntry{ErrorCode: "InternalFailure", ErrorMessage: err.Error()}
	}
	return resultEntry{EventID: ev.ID}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(status)
	body, _ := json.Marshal(map[string]string{"__type": code, "message": msg})
	_, _ = w.Write(body)
}
