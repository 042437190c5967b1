package cfnengine

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/eventpattern"
	"github.com/byocloud/byoc/infra/local/eventsources/eventbus"
	"github.com/byocloud/byoc/shared/contract"
)

// forwardRule is an EventBridge rule on a customer account's default bus, created by one
// of the account's stacks. CloudFormation's status events reach the vendor only through
// such rules, exactly as on AWS.
type forwardRule struct {
	name    string
	pattern *eventpattern.Pattern
	enabled bool
	targets []ruleTarget
}

type ruleTarget struct {
	arn     string
	roleArn string // the role EventBridge assumes to put events on a bus of another account
}

// Event detail types CloudFormation emits.
const (
	detailTypeStack    = "CloudFormation Stack Status Change"
	detailTypeResource = "CloudFormation Resource Status Change"
)

// applyEffects records what a created or updated resource changes in the account beyond
// itself: IAM roles and policies (for STS), forwarding rules of customer accounts, and bus
// policies. An invalid role trust policy or event pattern fails the resource, as on AWS.
func (e *Engine) applyEffects(s *stack, r *liveResource) error {
	if networkTypes[r.typ] {
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.networkEffect(s, r)
	}
	switch r.typ {
	case "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy":
		return e.iamCreated(s.account, s.id, r)
	case "AWS::Events::Rule":
		return e.recordRule(s, r)
	case "AWS::Events::EventBusPolicy":
		return e.recordBusPolicy(s, r)
	case "AWS::Events::EventBus":
		if r.props["Policy"] != nil {
			doc, err := json.Marshal(r.props["Policy"])
			if err != nil {
				return err
			}
			return e.putBusPolicy(busArnOf(s, r), "stack:"+s.id+"/"+r.logicalID, doc)
		}
	}
	return nil
}

// undoEffects forgets what applyEffects recorded.
func (e *Engine) undoEffects(s *stack, r *liveResource) {
	if networkTypes[r.typ] {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.undoNetworkEffect(s, r)
		return
	}
	switch r.typ {
	case "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy":
		e.iamDeleted(s.account, s.id, r)
	case "AWS::Events::Rule":
		e.mu.Lock()
		delete(e.rules[regionKey{s.account, s.region}], s.id+"/"+r.logicalID)
		e.mu.Unlock()
	case "AWS::Events::EventBusPolicy", "AWS::Events::EventBus":
		e.mu.Lock()
		for _, statements := range e.busPolicies {
			delete(statements, "stack:"+s.id+"/"+r.logicalID)
		}
		e.mu.Unlock()
	}
}

// eventPattern reads a rule's EventPattern (an object, or a JSON string) and validates it.
func eventPattern(props map[string]any) (*eventpattern.Pattern, []byte, error) {
	raw, ok := props["EventPattern"]
	if !ok {
		return nil, nil, nil
	}
	var text []byte
	if s, isString := raw.(string); isString {
		text = []byte(s)
	} else {
		var err error
		if text, err = json.Marshal(raw); err != nil {
			return nil, nil, err
		}
	}
	p, err := eventpattern.Compile(text)
	if err != nil {
		return nil, nil, err
	}
	return p, text, nil
}

func (e *Engine) recordRule(s *stack, r *liveResource) error {
	pattern, _, err := eventPattern(r.props)
	if err != nil {
		return err
	}
	if pattern == nil && stringProp(r.props, "ScheduleExpression") == "" {
		return fmt.Errorf("Either EventPattern or ScheduleExpression must be specified.")
	}
	if e.isVendor(s.account) || pattern == nil || busName(stringProp(r.props, "EventBusName")) != "default" {
		// Vendor rules live in kumo; customer accounts have no buses but the default one
		// that CloudFormation's events arrive on.
		return nil
	}
	rule := &forwardRule{name: r.physicalID, pattern: pattern, enabled: stringProp(r.props, "State") != "DISABLED"}
	if list, ok := r.props["Targets"].([]any); ok {
		for _, t := range list {
			tm, _ := t.(map[string]any)
			if arn := stringProp(tm, "Arn"); arn != "" {
				rule.targets = append(rule.targets, ruleTarget{arn: arn, roleArn: stringProp(tm, "RoleArn")})
			}
		}
	}
	key := regionKey{s.account, s.region}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.rules[key] == nil {
		e.rules[key] = map[string]*forwardRule{}
	}
	e.rules[key][s.id+"/"+r.logicalID] = rule
	return nil
}

func busArnOf(s *stack, r *liveResource) string {
	if arn, ok := r.facts.Attrs["Arn"].(string); ok && r.typ == "AWS::Events::EventBus" {
		return arn
	}
	return fmt.Sprintf("arn:%s:events:%s:%s:event-bus/%s", partition(s.region), s.region, s.account, busName(stringProp(r.props, "EventBusName")))
}

// recordBusPolicy turns an AWS::Events::EventBusPolicy (Statement, or the older
// Action/Principal/Condition form) into a policy document for the bus.
func (e *Engine) recordBusPolicy(s *stack, r *liveResource) error {
	sid := stringProp(r.props, "StatementId")
	if sid == "" {
		return fmt.Errorf("Property StatementId cannot be empty.")
	}
	busArn := busArnOf(s, r)
	var statement map[string]any
	if st, ok := r.props["Statement"].(map[string]any); ok {
		statement = map[string]any{}
		for k, v := range st {
			statement[k] = v
		}
		if _, ok := statement["Sid"]; !ok {
			statement["Sid"] = sid
		}
	} else {
		principal := stringProp(r.props, "Principal")
		action := stringProp(r.props, "Action")
		if principal == "" || action == "" {
			return fmt.Errorf("Either Statement, or Action and Principal, must be specified.")
		}
		statement = map[string]any{"Sid": sid, "Effect": "Allow", "Action": action, "Resource": busArn}
		if principal == "*" {
			statement["Principal"] = "*"
		} else {
			statement["Principal"] = map[string]any{"AWS": "arn:aws:iam::" + principal + ":root"}
		}
		if c, ok := r.props["Condition"].(map[string]any); ok {
			statement["Condition"] = map[string]any{stringProp(c, "Type"): map[string]any{stringProp(c, "Key"): c["Value"]}}
		}
	}
	doc, err := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{statement}})
	if err != nil {
		return err
	}
	return e.putBusPolicy(busArn, "stack:"+s.id+"/"+r.logicalID, doc)
}

// busKey identifies a bus by account and name: kumo ignores regions (its ARNs all say
// us-east-1), so the region of an ARN must not decide which policy applies.
func busKey(busArn string) string {
	parts := strings.SplitN(busArn, ":", 6)
	if len(parts) != 6 {
		return busArn
	}
	return parts[4] + "/" + busName(busArn)
}

// putBusPolicy sets one policy document of a bus; a bus's effective policy is the union of
// its documents (statements from templates and from PutPermission).
func (e *Engine) putBusPolicy(busArn, key string, doc json.RawMessage) error {
	if _, err := accounts.ParsePolicy(doc); err != nil {
		return fmt.Errorf("event bus policy: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	k := busKey(busArn)
	if e.busPolicies[k] == nil {
		e.busPolicies[k] = map[string]json.RawMessage{}
	}
	e.busPolicies[k][key] = doc
	return nil
}

// BusAdmits reports whether the resource policy of a vendor bus (from templates and
// PutPermission) lets another account put events on it: the check EventBridge makes for a
// cross-account PutEvents.
func (e *Engine) BusAdmits(busArn, account, source string) bool {
	ok, _ := e.busAdmits(busArn, accounts.RootPrincipal(account), source)
	return ok
}

// busAdmits reports whether the policy of a vendor bus lets a principal put an event of a
// source on it. The source is the request's events:source condition key, as on AWS.
func (e *Engine) busAdmits(busArn string, principal accounts.Principal, source string) (bool, string) {
	e.mu.Lock()
	docs := make([]json.RawMessage, 0, len(e.busPolicies[busKey(busArn)]))
	for _, d := range e.busPolicies[busKey(busArn)] {
		docs = append(docs, d)
	}
	e.mu.Unlock()
	if len(docs) == 0 {
		return false, "the bus has no resource policy"
	}
	req := accounts.Request{Principal: principal, Action: "events:PutEvents", Resource: busArn,
		Context: map[string][]string{"events:source": {source}}}
	allowed := false
	reason := ""
	for _, d := range docs {
		p, err := accounts.ParsePolicy(d)
		if err != nil {
			continue
		}
		dec := p.Evaluate(req, true)
		if dec.Denied {
			return false, dec.Reason
		}
		allowed = allowed || dec.Allowed
		reason = dec.Reason
	}
	return allowed, reason
}

// emit records an event on its stack, tells the observer, and publishes it on the
// account's default bus (customer accounts).
func (e *Engine) emit(s *stack, ev StackEvent) {
	e.mu.Lock()
	s.events = append(s.events, ev)
	if ev.IsStack() {
		s.status, s.reason = ev.ResourceStatus, ev.ResourceStatusReason
	}
	e.mu.Unlock()
	if e.cfg.Observer != nil {
		e.cfg.Observer(ev)
	}
	if !e.isVendor(s.account) {
		e.publish(ev)
	}
}

type statusDetails struct {
	Status       string `json:"status"`
	StatusReason string `json:"status-reason"`
}

type stackDetail struct {
	StackID            string        `json:"stack-id"`
	StatusDetails      statusDetails `json:"status-details"`
	ClientRequestToken string        `json:"client-request-token"`
}

type resourceDetail struct {
	StackID            string        `json:"stack-id"`
	LogicalResourceID  string        `json:"logical-resource-id"`
	PhysicalResourceID string        `json:"physical-resource-id"`
	StatusDetails      statusDetails `json:"status-details"`
	ResourceType       string        `json:"resource-type"`
	ClientRequestToken string        `json:"client-request-token"`
}

// EventFor returns the EventBridge event CloudFormation emits for a stack event: a "Stack
// Status Change" for the stack itself, a "Resource Status Change" for a resource.
func EventFor(ev StackEvent) []byte {
	env := eventbus.Envelope{
		Version: "0", ID: uuid.NewString(), Source: contract.SourceCloudFormation, Account: ev.Account,
		Time: ev.Timestamp.UTC().Format(time.RFC3339), Region: ev.Region, Resources: []string{ev.StackID},
	}
	status := statusDetails{Status: ev.ResourceStatus, StatusReason: ev.ResourceStatusReason}
	if ev.IsStack() {
		env.DetailType = detailTypeStack
		env.Detail, _ = json.Marshal(stackDetail{StackID: ev.StackID, StatusDetails: status, ClientRequestToken: ev.ClientRequestToken})
	} else {
		env.DetailType = detailTypeResource
		env.Detail, _ = json.Marshal(resourceDetail{
			StackID: ev.StackID, LogicalResourceID: ev.LogicalResourceID, PhysicalResourceID: ev.PhysicalResourceID,
			StatusDetails: status, ResourceType: ev.ResourceType, ClientRequestToken: ev.ClientRequestToken,
		})
	}
	out, _ := json.Marshal(env)
	return out
}

// publish puts a customer account's CloudFormation event on its default bus: every enabled
// rule there whose pattern matches forwards it to its targets.
func (e *Engine) publish(ev StackEvent) {
	e.mu.Lock()
	var matching []*forwardRule
	body := EventFor(ev)
	var decoded map[string]any
	_ = json.Unmarshal(body, &decoded)
	for _, r := range e.rules[regionKey{ev.Account, ev.Region}] {
		if r.enabled && r.pattern.Match(decoded) {
			matching = append(matching, r)
		}
	}
	e.mu.Unlock()
	for _, r := range matching {
		for _, target := range r.targets {
			e.forward(ev, r, target, body)
		}
	}
}

// forward delivers an event matched by a customer rule to its target, which the local
// cloud supports when it is an event bus of the vendor account that admits the sender. With
// a target role, the role must exist and its policies must allow events:PutEvents on the bus.
func (e *Engine) forward(ev StackEvent, r *forwardRule, target ruleTarget, body []byte) {
	log := e.logger.With("account", ev.Account, "rule", r.name, "target", target.arn, "status", ev.ResourceStatus, "stack", ev.StackName)
	parts := strings.SplitN(target.arn, ":", 6)
	if len(parts) != 6 || parts[2] != "events" || !strings.HasPrefix(parts[5], "event-bus/") {
		log.Warn("local CloudFormation: event not forwarded: only event bus targets are simulated in customer accounts")
		return
	}
	if parts[4] != e.cfg.VendorAccount {
		log.Warn("local CloudFormation: event not forwarded: the target bus is not in the vendor account")
		return
	}
	sender := accounts.RootPrincipal(ev.Account)
	if target.roleArn != "" {
		p, why := e.targetRole(ev.Account, target)
		if why != "" {
			log.Warn("local CloudFormation: event not forwarded: "+why, "role", target.roleArn)
			return
		}
		sender = p
	}
	if ok, why := e.busAdmits(target.arn, sender, contract.SourceCloudFormation); !ok {
		log.Warn("local CloudFormation: event not forwarded: the bus policy does not let the account put events", "why", why)
		return
	}
	if e.cfg.DeliverEvent == nil {
		log.Warn("local CloudFormation: event not forwarded: the stack engine has no DeliverEvent")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.cfg.DeliverEvent(ctx, target.arn, body); err != nil {
		log.Error("local CloudFormation: forwarding the event failed", "error", err)
		return
	}
	log.Debug("local CloudFormation: event forwarded")
}

// targetRole checks the role a rule target names: it must be a role of the rule's account
// whose policies allow events:PutEvents on the target bus. It returns the role's principal.
func (e *Engine) targetRole(account string, target ruleTarget) (accounts.Principal, string) {
	name := roleNameOf(target.roleArn)
	role, ok := e.cfg.Accounts.LookupRole(account, name)
	if !ok || role.Arn(account) != target.roleArn {
		return accounts.Principal{}, "the target's role does not exist in account " + account
	}
	principal := accounts.Principal{
		Account: account, RoleArn: target.roleArn, UserID: accounts.RoleID(target.roleArn) + ":events",
		Arn: fmt.Sprintf("arn:%s:sts::%s:assumed-role/%s/events", partition(e.cfg.Region), account, name),
	}
	req := accounts.Request{Principal: principal, Action: "events:PutEvents", Resource: target.arn}
	allowed := false
	for _, doc := range role.IdentityPolicies {
		p, err := accounts.ParsePolicy(doc)
		if err != nil {
			continue
		}
		d := p.Evaluate(req, false)
		if d.Denied {
			return principal, "the target's role denies events:PutEvents: " + d.Reason
		}
		allowed = allowed || d.Allowed
	}
	if !allowed {
		return principal, "the target's role has no policy allowing events:PutEvents on " + target.arn
	}
	return principal, ""
}
