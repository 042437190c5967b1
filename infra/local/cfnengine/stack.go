package cfnengine

import (
	"fmt"
	"strings"
	"time"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/cfnengine/template"
)

// stack is one stack instance. Its fields change only in the goroutine running its current
// operation, always under Engine.mu; API handlers read them under Engine.mu.
type stack struct {
	id, name, account, region string
	caller                    accounts.Principal // who created or last updated it

	description      string
	status, reason   string
	body             []byte
	tpl              *template.Template
	params           map[string]template.ParamValue
	capabilities     []string
	tags             []Tag
	notificationARNs []string
	disableRollback  bool
	onFailure        string // ROLLBACK, DO_NOTHING or DELETE
	protected        bool   // termination protection
	lastToken        string // ClientRequestToken of the last create or update, for idempotent retries
	outputs          []Output
	resources        map[string]*liveResource
	order            []string // creation order of the live resources
	events           []StackEvent
	imports          []string // export names the current template imports
	warnings         []string

	created, updated, deleted time.Time

	busy          bool // an operation is running
	pendingDelete bool // DeleteStack arrived while busy
	pendingToken  string
	done          chan struct{} // closed when the current operation ends
}

// Output is a stack output.
type Output struct {
	Key, Value, Description, ExportName string
}

// Tag is a stack tag.
type Tag struct {
	Key, Value string
}

// liveResource is a resource of a stack as created.
type liveResource struct {
	logicalID, typ      string
	physicalID          string
	facts               resourceFacts
	props               map[string]any
	status, reason      string
	updated             time.Time
	deletionPolicy      string
	updateReplacePolicy string
	description         string
}

// resolver answers Ref and GetAtt from the stack's live resources.
type resolver struct {
	e *Engine
	s *stack
}

func (r resolver) Ref(id string) (any, error) {
	lr := r.s.resources[id]
	if lr == nil {
		return nil, fmt.Errorf("Template error: resource %s is not created yet, cannot Ref it", id)
	}
	return lr.facts.Ref, nil
}

func (r resolver) GetAtt(id, attr string) (any, error) {
	lr := r.s.resources[id]
	if lr == nil {
		return nil, fmt.Errorf("Template error: resource %s is not created yet, cannot Fn::GetAtt it", id)
	}
	if v, ok := lr.facts.Attrs[attr]; ok {
		return v, nil
	}
	if _, known := typeSpecs[lr.typ]; known {
		return nil, &template.Error{Message: fmt.Sprintf("Template error: resource %s does not support attribute type %s in Fn::GetAtt", id, attr)}
	}
	// The local cloud does not know this type's attributes: a placeholder keeps the stack
	// going, and the warning says where it came from.
	placeholder := lr.physicalID + "." + attr
	r.e.warn(r.s, fmt.Sprintf("Fn::GetAtt %s.%s: %s attributes are unknown to the local cloud; using %q", id, attr, lr.typ, placeholder))
	return placeholder, nil
}

// warn records a warning on the stack (DeployTemplate returns them) and logs it.
func (e *Engine) warn(s *stack, msg string) {
	e.mu.Lock()
	for _, w := range s.warnings {
		if w == msg {
			e.mu.Unlock()
			return
		}
	}
	s.warnings = append(s.warnings, msg)
	e.mu.Unlock()
	e.logger.Warn("local CloudFormation: "+msg, "account", s.account, "stack", s.name)
}

func stackID(account, region, name, uuid string) string {
	return fmt.Sprintf("arn:%s:cloudformation:%s:%s:stack/%s/%s", partition(region), region, account, name, uuid)
}

func partition(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// updatable reports whether a stack in this status accepts UpdateStack.
func updatable(status string) bool {
	switch status {
	case "CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE", "IMPORT_ROLLBACK_COMPLETE":
		return true
	}
	return false
}
