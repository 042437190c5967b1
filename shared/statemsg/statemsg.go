// Package statemsg is the contract of State Exporter messages: the JSON a deployment's State
// Exporter sends to the vendor's state queue, one message per ClickHouse service per report.
//
// The contract is versioned by the schemaVersion field. A reader accepts exactly the versions
// it knows and rejects the rest (ErrUnknownVersion) rather than guessing; within a version the
// shape is closed (unknown fields are rejected), so adding a field means a new version. That
// strictness is deliberate: this is the one input the control plane takes from customer
// clusters, and a typo ("serviceID") must fail loudly, not silently drop a field.
package statemsg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Version1 is the only schema version this package reads and writes.
const Version1 = 1

// MaxBytes bounds a message body. A report is well under 2 KiB; the bound keeps a broken or
// hostile exporter from making the control plane parse and store megabytes per message.
const MaxBytes = 16 * 1024

// MaxClockSkew is how far in the future observedAt may be, relative to the receiver's clock.
// Ordering does not depend on clocks (it uses exporterEpoch and sequence); the bound only
// rejects reports whose timestamps would make staleness and history meaningless.
const MaxClockSkew = 5 * time.Minute

// MaxSequence keeps sequence and exporterEpoch exact in every JSON implementation (2^53-1,
// the largest integer a float64 holds exactly), so no reader rounds two reports together.
const MaxSequence = 1<<53 - 1

// Limits of the report's counters and lists.
const (
	MaxReplicas    = 1000
	MaxCommandAcks = 16
	MaxDetailBytes = 1024
	MaxVersionLen  = 64
)

// Status is what the exporter reports about a service.
type Status string

const (
	StatusHealthy   Status = "healthy"
	StatusDegraded  Status = "degraded"
	StatusUnhealthy Status = "unhealthy"
	StatusStopped   Status = "stopped" // stopped on purpose (a stop command); not a fault
	StatusIdle      Status = "idle"    // scaled to zero while unused; not a fault
	// StatusTerminated: removed on purpose (a terminate command, before a teardown); its last
	// report, kept so the record says what happened to it.
	StatusTerminated Status = "terminated"
)

// Statuses lists every reportable status.
var Statuses = []Status{StatusHealthy, StatusDegraded, StatusUnhealthy, StatusStopped, StatusIdle, StatusTerminated}

// Valid reports whether s is a reportable status.
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if s == v {
			return true
		}
	}
	return false
}

// Message is one report of one service, schema version 1.
type Message struct {
	SchemaVersion int    `json:"schemaVersion"`
	DeploymentID  string `json:"deploymentId"`
	ServiceID     string `json:"serviceId"`
	Hostname      string `json:"hostname"`
	// ObservedAt is when the exporter observed the service (exporter's clock).
	ObservedAt time.Time `json:"observedAt"`
	// ExporterEpoch and Sequence order the reports of a deployment's exporter. Sequence grows
	// by one per message the exporter sends; ExporterEpoch is the exporter's start time in
	// Unix milliseconds, so a restarted exporter (sequence back to 1) still sorts after its
	// previous life. Together they are the order key: see OrderKey.
	ExporterEpoch int64    `json:"exporterEpoch"`
	Sequence      int64    `json:"sequence"`
	Status        Status   `json:"status"`
	Versions      Versions `json:"versions"`
	Replicas      Replicas `json:"replicas"`
	// Warnings and Errors count the alerts currently firing for the service (not cumulative
	// totals): a service whose report says healthy but which has errors firing is degraded.
	Warnings     int   `json:"warnings"`
	Errors       int   `json:"errors"`
	StorageBytes int64 `json:"storageBytes"`
	// Commands acknowledges control-plane commands (see package channel) that concern this
	// service: the agent reports each command's progress in the next state message.
	Commands []CommandAck `json:"commands,omitempty"`
}

// Versions are the software versions running the service.
type Versions struct {
	ClickHouse string `json:"clickhouse"`
	Operator   string `json:"operator"`
	Kubernetes string `json:"kubernetes"`
}

// Replicas are the service's ready and desired server replicas.
type Replicas struct {
	Ready   int `json:"ready"`
	Desired int `json:"desired"`
}

// AckStatus is a command's progress as the in-cluster agent reports it.
type AckStatus string

const (
	AckAccepted  AckStatus = "accepted"  // received and being applied
	AckSucceeded AckStatus = "succeeded" // applied
	AckFailed    AckStatus = "failed"    // could not be applied; Detail says why
)

// Valid reports whether a is a known acknowledgement status.
func (a AckStatus) Valid() bool {
	return a == AckAccepted || a == AckSucceeded || a == AckFailed
}

// Final reports whether no later acknowledgement can change the command's outcome.
func (a AckStatus) Final() bool { return a == AckSucceeded || a == AckFailed }

// CommandAck is the agent's acknowledgement of one command.
type CommandAck struct {
	ID     string    `json:"id"`
	Status AckStatus `json:"status"`
	Detail string    `json:"detail,omitempty"`
}

// OrderKey orders the reports of one exporter: a report with a greater key is newer. It is a
// fixed-width string so that DynamoDB can compare it in a condition expression ("stored key <
// incoming key") and so it sorts history items.
func (m Message) OrderKey() string {
	return OrderKey(m.ExporterEpoch, m.Sequence)
}

// OrderKey builds the order key of an exporter epoch and sequence.
func OrderKey(epoch, sequence int64) string {
	return fmt.Sprintf("%016x.%016x", epoch, sequence)
}

// Reasons a message is rejected. Every rejection error wraps exactly one of them; Reason
// returns its name for logs, audit records and metrics.
var (
	ErrOversized      = errors.New("oversized")
	ErrMalformed      = errors.New("malformed")
	ErrUnknownVersion = errors.New("unknown schema version")
	ErrInvalid        = errors.New("invalid")
)

// Reason names the rejection reason of err ("oversized", "malformed", "unknown-version",
// "invalid"), or "" when err is not a rejection from this package.
func Reason(err error) string {
	switch {
	case errors.Is(err, ErrOversized):
		return "oversized"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrUnknownVersion):
		return "unknown-version"
	case errors.Is(err, ErrInvalid):
		return "invalid"
	}
	return ""
}

// Parse reads and validates a message body. now is the receiver's clock, used only to bound
// observedAt in the future. The error wraps one of the rejection reasons above and names the
// offending field and the rule it breaks.
func Parse(body []byte, now time.Time) (Message, error) {
	if len(body) > MaxBytes {
		return Message{}, fmt.Errorf("%w: body is %d bytes, the limit is %d", ErrOversized, len(body), MaxBytes)
	}
	var head struct {
		SchemaVersion *json.RawMessage `json:"schemaVersion"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return Message{}, fmt.Errorf("%w: body is not a JSON object: %v", ErrMalformed, err)
	}
	if head.SchemaVersion == nil {
		return Message{}, fmt.Errorf("%w: schemaVersion: required", ErrMalformed)
	}
	var version int
	if err := json.Unmarshal(*head.SchemaVersion, &version); err != nil {
		return Message{}, fmt.Errorf("%w: schemaVersion: must be an integer, got %s", ErrMalformed, *head.SchemaVersion)
	}
	if version != Version1 {
		return Message{}, fmt.Errorf("%w: schemaVersion %d (this reader knows %d)", ErrUnknownVersion, version, Version1)
	}

	// encoding/json matches field names case-insensitively, so DisallowUnknownFields alone
	// would let "serviceID" through as serviceId: the exact names are checked first.
	if err := checkFieldNames(body); err != nil {
		return Message{}, err
	}
	var m Message
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := m.Validate(now); err != nil {
		return Message{}, err
	}
	return m, nil
}

// Encode validates m and returns its body, as an exporter (or the local data-plane
// simulator) sends it.
func Encode(m Message, now time.Time) ([]byte, error) {
	if m.SchemaVersion == 0 {
		m.SchemaVersion = Version1
	}
	if m.SchemaVersion != Version1 {
		return nil, fmt.Errorf("%w: schemaVersion %d (this writer knows %d)", ErrUnknownVersion, m.SchemaVersion, Version1)
	}
	if err := m.Validate(now); err != nil {
		return nil, err
	}
	body, err := json.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode state message: %w", err)
	}
	if len(body) > MaxBytes {
		return nil, fmt.Errorf("%w: body is %d bytes, the limit is %d", ErrOversized, len(body), MaxBytes)
	}
	return body, nil
}
