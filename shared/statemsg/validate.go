package statemsg

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"

	"github.com/byocloud/byoc/shared/settings"
)

// FieldError names a field of a message and the rule its value breaks.
type FieldError struct {
	Field string
	Rule  string
}

func (e FieldError) Error() string { return e.Field + ": " + e.Rule }

// InvalidError lists every broken rule of a message. It wraps ErrInvalid, so Reason reports
// "invalid".
type InvalidError struct {
	Fields []FieldError
}

func (e *InvalidError) Error() string {
	parts := make([]string, len(e.Fields))
	for i, f := range e.Fields {
		parts[i] = f.Error()
	}
	return ErrInvalid.Error() + ": " + strings.Join(parts, "; ")
}

func (e *InvalidError) Unwrap() error { return ErrInvalid }

// Field returns the rule broken by the named field, and whether it broke one.
func (e *InvalidError) Field(name string) (string, bool) {
	for _, f := range e.Fields {
		if f.Field == name {
			return f.Rule, true
		}
	}
	return "", false
}

// idPattern is the shape of deployment, service and command ids. It is also what SQS allows
// in queue names, so a deployment id can name its command channel.
var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)

// IDRule is the rule an id must follow, as error messages state it.
const IDRule = "must be 1-64 letters, digits, '-' or '_', starting with a letter or digit"

// ValidID reports whether s is a well-formed deployment, service or command id.
func ValidID(s string) bool { return idPattern.MatchString(s) }

var hostnameLabel = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)

func validHostname(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if !hostnameLabel.MatchString(label) {
			return false
		}
	}
	return true
}

// validVersion accepts any short printable version string ("24.8.1.2684", "v1.30.2-eks-1").
func validVersion(s string) bool {
	if s == "" || len(s) > MaxVersionLen {
		return false
	}
	for _, r := range s {
		if r > unicode.MaxASCII || !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// Validate checks every field of m against the version-1 rules. now bounds observedAt.
func (m Message) Validate(now time.Time) error {
	var errs []FieldError
	bad := func(field, rule string) { errs = append(errs, FieldError{Field: field, Rule: rule}) }

	if m.SchemaVersion != Version1 {
		bad("schemaVersion", fmt.Sprintf("must be %d", Version1))
	}
	if !settings.ValidDeploymentID(m.DeploymentID) {
		bad("deploymentId", "must be "+settings.DeploymentIDRule)
	}
	if !ValidID(m.ServiceID) {
		bad("serviceId", IDRule)
	}
	if !validHostname(m.Hostname) {
		bad("hostname", "must be a DNS hostname of at most 253 characters")
	}
	switch {
	case m.ObservedAt.IsZero():
		bad("observedAt", "required (RFC 3339 time)")
	case m.ObservedAt.After(now.Add(MaxClockSkew)):
		bad("observedAt", fmt.Sprintf("must not be more than %s in the future", MaxClockSkew))
	}
	if m.ExporterEpoch < 1 || m.ExporterEpoch > MaxSequence {
		bad("exporterEpoch", fmt.Sprintf("must be between 1 and %d (exporter start, Unix milliseconds)", int64(MaxSequence)))
	}
	if m.Sequence < 1 || m.Sequence > MaxSequence {
		bad("sequence", fmt.Sprintf("must be between 1 and %d", int64(MaxSequence)))
	}
	if !m.Status.Valid() {
		bad("status", fmt.Sprintf("must be one of %v", Statuses))
	}
	if !validVersion(m.Versions.ClickHouse) {
		bad("versions.clickhouse", fmt.Sprintf("required, printable ASCII without spaces, at most %d characters", MaxVersionLen))
	}
	if !validVersion(m.Versions.Operator) {
		bad("versions.operator", fmt.Sprintf("required, printable ASCII without spaces, at most %d characters", MaxVersionLen))
	}
	if !validVersion(m.Versions.Kubernetes) {
		bad("versions.kubernetes", fmt.Sprintf("required, printable ASCII without spaces, at most %d characters", MaxVersionLen))
	}
	if m.Replicas.Ready < 0 || m.Replicas.Ready > MaxReplicas {
		bad("replicas.ready", fmt.Sprintf("must be between 0 and %d", MaxReplicas))
	}
	if m.Replicas.Desired < 0 || m.Replicas.Desired > MaxReplicas {
		bad("replicas.desired", fmt.Sprintf("must be between 0 and %d", MaxReplicas))
	}
	if m.Warnings < 0 {
		bad("warnings", "must not be negative")
	}
	if m.Errors < 0 {
		bad("errors", "must not be negative")
	}
	if m.StorageBytes < 0 {
		bad("storageBytes", "must not be negative")
	}
	if len(m.Commands) > MaxCommandAcks {
		bad("commands", fmt.Sprintf("at most %d acknowledgements per message", MaxCommandAcks))
	}
	seen := make(map[string]bool, len(m.Commands))
	for i, c := range m.Commands {
		field := fmt.Sprintf("commands[%d]", i)
		if !ValidID(c.ID) {
			bad(field+".id", IDRule)
		} else if seen[c.ID] {
			bad(field+".id", "acknowledged twice in one message")
		}
		seen[c.ID] = true
		if !c.Status.Valid() {
			bad(field+".status", "must be one of accepted, succeeded, failed")
		}
		if len(c.Detail) > MaxDetailBytes {
			bad(field+".detail", fmt.Sprintf("at most %d bytes", MaxDetailBytes))
		}
	}
	if len(errs) > 0 {
		return &InvalidError{Fields: errs}
	}
	return nil
}

// FieldErrors returns the field errors of a validation error, or nil.
func FieldErrors(err error) []FieldError {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Fields
	}
	return nil
}
