package cfnengine

import (
	"context"
	"fmt"
	"strings"

	"github.com/byocloud/byoc/infra/local/accounts"
)

// allCapabilities is what DeployTemplate acknowledges: the caller is the local cloud
// deploying its own control plane, as `cdk deploy` acknowledges IAM changes.
var allCapabilities = []string{"CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"}

// DeployTemplate creates the stack (or updates it if it exists) in account, in the
// engine's region, and waits until the operation ends. It returns the stack's outputs and
// the warnings of the deployment (resource types the local cloud does not deploy, and the
// like). A failed deployment returns an error naming the failed resources and their reasons.
func (e *Engine) DeployTemplate(ctx context.Context, account, stackName string, templateBody []byte, params map[string]string) (outputs map[string]string, warnings []string, err error) {
	e.mu.Lock()
	s := e.find(account, e.cfg.Region, stackName)
	e.mu.Unlock()
	if s != nil {
		if err := e.waitDone(ctx, s); err != nil {
			return nil, nil, err
		}
		e.mu.Lock()
		tags := s.tags
		e.mu.Unlock()
		if _, apiErr := e.updateStack(s, accounts.RootPrincipal(account), templateBody, params, allCapabilities, tags, ""); apiErr != nil {
			if apiErr.message != "No updates are to be performed." {
				return nil, nil, apiErr
			}
		}
	} else {
		if _, apiErr := e.createStack(createInput{account: account, region: e.cfg.Region, name: stackName, body: templateBody,
			params: params, capabilities: allCapabilities}); apiErr != nil {
			return nil, nil, apiErr
		}
		e.mu.Lock()
		s = e.find(account, e.cfg.Region, stackName)
		e.mu.Unlock()
	}
	if err := e.waitDone(ctx, s); err != nil {
		return nil, nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	warnings = append([]string(nil), s.warnings...)
	if s.status != "CREATE_COMPLETE" && s.status != "UPDATE_COMPLETE" {
		return nil, warnings, fmt.Errorf("stack %s: %s: %s", stackName, s.status, failureReasons(s))
	}
	outputs = map[string]string{}
	for _, o := range s.outputs {
		outputs[o.Key] = o.Value
	}
	return outputs, warnings, nil
}

// failureReasons lists the resources that failed in the stack's last operation. Caller
// holds e.mu.
func failureReasons(s *stack) string {
	var reasons []string
	for i := len(s.events) - 1; i >= 0; i-- {
		ev := s.events[i]
		if ev.IsStack() && strings.HasSuffix(ev.ResourceStatus, "_IN_PROGRESS") && ev.ResourceStatusReason == "User Initiated" {
			break
		}
		if strings.HasSuffix(ev.ResourceStatus, "_FAILED") && !ev.IsStack() {
			reasons = append([]string{ev.LogicalResourceID + " (" + ev.ResourceType + "): " + ev.ResourceStatusReason}, reasons...)
		}
	}
	if len(reasons) == 0 {
		return s.reason
	}
	return strings.Join(reasons, "; ")
}
