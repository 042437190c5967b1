// Package channel is the control plane's side of the queues between it and a deployment's
// data plane: the command channel (one SQS FIFO queue per deployment, readable only by that
// deployment's in-cluster agent role) and the admission policy of the state queue (which
// only the state exporter roles of onboarded deployments may send to).
//
// A command has an id; the agent acknowledges it in its next state messages
// (statemsg.CommandAck), and ingest records the acknowledgement on the command's record
// (package servicestate), where a workflow can wait for it.
package channel

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/statemsg"
)

// CommandVersion is the schema version of commands on the channel.
const CommandVersion = 1

// Kind is what a command asks the agent to do.
type Kind string

const (
	ApplyRelease Kind = "apply-release" // params: clickhouseVersion and/or operatorVersion
	Start        Kind = "start"
	Stop         Kind = "stop"
	Idle         Kind = "idle"      // scale to zero until the next query (ClickHouse Cloud's idling)
	Terminate    Kind = "terminate" // remove the service and its data; what a teardown asks first
	Scale        Kind = "scale"     // params: replicas
	Backup       Kind = "backup"    // params: backupId (optional; the agent names one otherwise)
	Restore      Kind = "restore"   // params: backupId
	// Connectivity (deployment-wide but for access lists). For private-lb the agent runs the
	// internal NLB, attaches byoc's security group to it besides the controller's own (the
	// peers' ingress is on byoc's), turns off the enforcement of inbound rules on PrivateLink
	// traffic (PrivateLink is governed by the endpoint service's principals and acceptance),
	// and acknowledges with the load balancer, as JSON in the acknowledgement's detail
	// (connectivity.LoadBalancer: dnsName, securityGroupId, arn).
	PrivateLoadBalancer Kind = "private-lb"     // params: enabled ("true"), securityGroupId (byoc's group to attach to it)
	PublicLoadBalancer  Kind = "public-lb"      // params: enabled ("true" or "false")
	AccessList          Kind = "ip-access-list" // params: cidr.0 ... cidr.99 (none: open to all)
)

// Kinds lists every command kind.
var Kinds = []Kind{ApplyRelease, Start, Stop, Idle, Terminate, Scale, Backup, Restore, PrivateLoadBalancer, PublicLoadBalancer, AccessList}

// deploymentWide are the kinds that concern no one service.
var deploymentWide = []Kind{ApplyRelease, PrivateLoadBalancer, PublicLoadBalancer}

var securityGroupPattern = regexp.MustCompile(`^sg-([0-9a-f]{8}|[0-9a-f]{17})$`)

// AccessListParam is the parameter of an access list's i-th CIDR.
func AccessListParam(i int) string { return "cidr." + strconv.Itoa(i) }

// Command is one instruction to a deployment's agent, as it travels on the channel.
type Command struct {
	SchemaVersion int    `json:"schemaVersion"`
	ID            string `json:"id"`
	DeploymentID  string `json:"deploymentId"`
	// ServiceID is the service the command is for; empty only for a deployment-wide
	// apply-release (an operator upgrade, for example).
	ServiceID string            `json:"serviceId,omitempty"`
	Kind      Kind              `json:"kind"`
	Params    map[string]string `json:"params,omitempty"`
	IssuedAt  time.Time         `json:"issuedAt"`
}

// NewID returns a fresh command id. Callers that may retry (a workflow step) should instead
// derive the id from what they are doing (execution and step), so the retry is recognised.
func NewID() string {
	return "cmd-" + strings.ToLower(rand.Text()[:20])
}

// ErrInvalidCommand is the error of a command that breaks a rule (Validate).
var ErrInvalidCommand = errors.New("invalid command")

// Validate checks a command; the error (ErrInvalidCommand) names each field and its rule.
func (c Command) Validate() error {
	var bad []string
	if c.SchemaVersion != CommandVersion {
		bad = append(bad, fmt.Sprintf("schemaVersion: must be %d", CommandVersion))
	}
	if !statemsg.ValidID(c.ID) {
		bad = append(bad, "id: "+statemsg.IDRule)
	}
	if !settings.ValidDeploymentID(c.DeploymentID) {
		bad = append(bad, "deploymentId: must be "+settings.DeploymentIDRule)
	} else if _, err := QueueName(c.DeploymentID); err != nil {
		bad = append(bad, "deploymentId: "+err.Error())
	}
	if c.ServiceID != "" && !statemsg.ValidID(c.ServiceID) {
		bad = append(bad, "serviceId: "+statemsg.IDRule)
	}
	if c.IssuedAt.IsZero() {
		bad = append(bad, "issuedAt: required")
	}
	p := c.Params
	switch c.Kind {
	case ApplyRelease:
		if p["clickhouseVersion"] == "" && p["operatorVersion"] == "" {
			bad = append(bad, "params: apply-release needs clickhouseVersion or operatorVersion")
		}
	case Start, Stop, Idle, Terminate, Backup:
	case Scale:
		n, err := strconv.Atoi(p["replicas"])
		if err != nil || n < 1 || n > statemsg.MaxReplicas {
			bad = append(bad, fmt.Sprintf("params.replicas: scale needs a number of replicas between 1 and %d", statemsg.MaxReplicas))
		}
	case Restore:
		if !statemsg.ValidID(p["backupId"]) {
			bad = append(bad, "params.backupId: restore needs a backup id that "+statemsg.IDRule)
		}
	case PrivateLoadBalancer:
		if p["enabled"] != "true" || !securityGroupPattern.MatchString(p["securityGroupId"]) || len(p) != 2 {
			bad = append(bad, `params: private-lb takes enabled: "true" and securityGroupId (sg-...), the group to attach`)
		}
	case PublicLoadBalancer:
		if (p["enabled"] != "true" && p["enabled"] != "false") || len(p) != 1 {
			bad = append(bad, `params: public-lb takes only enabled: "true" or "false"`)
		}
	case AccessList:
		for i := range len(p) {
			if _, err := netip.ParsePrefix(p[AccessListParam(i)]); err != nil {
				bad = append(bad, fmt.Sprintf("params: ip-access-list takes CIDRs as %s to %s", AccessListParam(0), AccessListParam(len(p)-1)))
				break
			}
		}
	default:
		bad = append(bad, fmt.Sprintf("kind: must be one of %v", Kinds))
	}
	if c.ServiceID != "" && slices.Contains(deploymentWide, c.Kind) && c.Kind != ApplyRelease {
		bad = append(bad, fmt.Sprintf("serviceId: %s is deployment-wide and names no service", c.Kind))
	}
	if !slices.Contains(deploymentWide, c.Kind) && c.Kind != "" && c.ServiceID == "" {
		bad = append(bad, fmt.Sprintf("serviceId: required for %s", c.Kind))
	}
	for k, v := range p {
		if len(k) > 64 || len(v) > 256 {
			bad = append(bad, fmt.Sprintf("params.%.64s: names at most 64 and values at most 256 characters", k))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidCommand, strings.Join(bad, "; "))
	}
	return nil
}

// Encode validates a command and returns its message body.
func Encode(c Command) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(c)
}

// ParseCommand reads a command from a message body, as the agent does.
func ParseCommand(body []byte) (Command, error) {
	var c Command
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Command{}, fmt.Errorf("malformed command: %w", err)
	}
	if err := c.Validate(); err != nil {
		return Command{}, err
	}
	return c, nil
}
