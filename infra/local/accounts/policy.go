package accounts

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// Policy is a parsed IAM policy document (identity, trust or resource policy).
//
// The evaluation covers what byoc's templates use: Effect, Principal (AWS accounts, role and
// session ARNs, "*"), Action/NotAction and Resource/NotResource with wildcards, and
// Condition with the String*, Arn*, Bool and Null operators (with IfExists and the
// ForAnyValue/ForAllValues set prefixes). Any other condition operator never matches, so
// an Allow that depends on it denies rather than grants.
type Policy struct {
	Statements []Statement
}

// Statement is one policy statement.
type Statement struct {
	Sid          string
	Effect       string // Allow or Deny
	Principal    *PrincipalSet
	NotPrincipal *PrincipalSet
	Actions      []string
	NotActions   []string
	Resources    []string
	NotResources []string
	Conditions   []Condition
}

// PrincipalSet is the Principal element: "*" or values per kind (AWS, Service, Federated).
type PrincipalSet struct {
	Any   bool
	Kinds map[string][]string
}

// Condition is one operator/key entry of a Condition block.
type Condition struct {
	Operator string // as written, e.g. StringEquals, ForAnyValue:StringLike, ArnLikeIfExists
	Key      string // as written, e.g. sts:ExternalId
	Values   []string
}

// Request is an action to authorize.
type Request struct {
	Principal Principal
	Action    string // e.g. sts:AssumeRole, events:PutEvents
	Resource  string // ARN
	// Context holds request-specific condition keys (e.g. sts:ExternalId); the principal's
	// keys (aws:PrincipalArn, aws:PrincipalAccount, aws:userid) are added by Evaluate.
	Context map[string][]string
}

// Decision is the outcome of evaluating one policy.
type Decision struct {
	Allowed bool   // an Allow statement matched and no Deny did
	Denied  bool   // an explicit Deny matched
	Reason  string // which statement decided, or why none matched
}

// ParsePolicy parses a policy document given as a JSON object or as a JSON string holding
// one (CloudFormation accepts both).
func ParsePolicy(doc json.RawMessage) (*Policy, error) {
	if len(doc) == 0 {
		return nil, fmt.Errorf("policy document is empty")
	}
	var asString string
	if json.Unmarshal(doc, &asString) == nil {
		doc = json.RawMessage(asString)
	}
	var raw struct {
		Version   string          `json:"Version"`
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal(doc, &raw); err != nil {
		return nil, fmt.Errorf("policy document is not a JSON object: %w", err)
	}
	if len(raw.Statement) == 0 {
		return nil, fmt.Errorf("policy document has no Statement")
	}
	var rawStatements []map[string]json.RawMessage
	if raw.Statement[0] == '[' {
		if err := json.Unmarshal(raw.Statement, &rawStatements); err != nil {
			return nil, fmt.Errorf("Statement: %w", err)
		}
	} else {
		var one map[string]json.RawMessage
		if err := json.Unmarshal(raw.Statement, &one); err != nil {
			return nil, fmt.Errorf("Statement: %w", err)
		}
		rawStatements = append(rawStatements, one)
	}
	if len(rawStatements) == 0 {
		return nil, fmt.Errorf("policy document has no Statement")
	}
	p := &Policy{}
	for i, rs := range rawStatements {
		st, err := parseStatement(rs)
		if err != nil {
			return nil, fmt.Errorf("Statement[%d]: %w", i, err)
		}
		p.Statements = append(p.Statements, st)
	}
	return p, nil
}

func parseStatement(rs map[string]json.RawMessage) (Statement, error) {
	var st Statement
	var err error
	if v, ok := rs["Sid"]; ok {
		if err := json.Unmarshal(v, &st.Sid); err != nil {
			return st, fmt.Errorf("Sid must be a string")
		}
	}
	if err := json.Unmarshal(rs["Effect"], &st.Effect); err != nil || (st.Effect != "Allow" && st.Effect != "Deny") {
		return st, fmt.Errorf("Effect must be \"Allow\" or \"Deny\"")
	}
	if st.Actions, err = stringOrList(rs, "Action"); err != nil {
		return st, err
	}
	if st.NotActions, err = stringOrList(rs, "NotAction"); err != nil {
		return st, err
	}
	if (st.Actions == nil) == (st.NotActions == nil) {
		return st, fmt.Errorf("exactly one of Action and NotAction is required")
	}
	if st.Resources, err = stringOrList(rs, "Resource"); err != nil {
		return st, err
	}
	if st.NotResources, err = stringOrList(rs, "NotResource"); err != nil {
		return st, err
	}
	if st.Principal, err = parsePrincipal(rs, "Principal"); err != nil {
		return st, err
	}
	if st.NotPrincipal, err = parsePrincipal(rs, "NotPrincipal"); err != nil {
		return st, err
	}
	if v, ok := rs["Condition"]; ok {
		var block map[string]map[string]json.RawMessage
		if err := json.Unmarshal(v, &block); err != nil {
			return st, fmt.Errorf("Condition must map operators to {key: value(s)}")
		}
		for op, keys := range block {
			for key, rawValues := range keys {
				values, err := stringValues(rawValues)
				if err != nil {
					return st, fmt.Errorf("Condition %s %s: %w", op, key, err)
				}
				st.Conditions = append(st.Conditions, Condition{Operator: op, Key: key, Values: values})
			}
		}
	}
	return st, nil
}

func stringOrList(rs map[string]json.RawMessage, field string) ([]string, error) {
	v, ok := rs[field]
	if !ok {
		return nil, nil
	}
	values, err := stringValues(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	if values == nil {
		values = []string{}
	}
	return values, nil
}

// stringValues accepts a string, a boolean or number (written unquoted in conditions), or a
// list of them.
func stringValues(v json.RawMessage) ([]string, error) {
	var list []json.RawMessage
	if err := json.Unmarshal(v, &list); err != nil {
		list = []json.RawMessage{v}
	}
	out := make([]string, 0, len(list))
	for _, e := range list {
		var s string
		if err := json.Unmarshal(e, &s); err == nil {
			out = append(out, s)
			continue
		}
		var scalar any
		if err := json.Unmarshal(e, &scalar); err != nil {
			return nil, fmt.Errorf("must be a string or a list of strings")
		}
		switch scalar.(type) {
		case bool, float64:
			out = append(out, string(e))
		default:
			return nil, fmt.Errorf("must be a string or a list of strings")
		}
	}
	return out, nil
}

func parsePrincipal(rs map[string]json.RawMessage, field string) (*PrincipalSet, error) {
	v, ok := rs[field]
	if !ok {
		return nil, nil
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		if s != "*" {
			return nil, fmt.Errorf("%s must be \"*\" or an object such as {\"AWS\": \"<arn>\"}", field)
		}
		return &PrincipalSet{Any: true}, nil
	}
	var kinds map[string]json.RawMessage
	if err := json.Unmarshal(v, &kinds); err != nil {
		return nil, fmt.Errorf("%s must be \"*\" or an object such as {\"AWS\": \"<arn>\"}", field)
	}
	ps := &PrincipalSet{Kinds: map[string][]string{}}
	for kind, raw := range kinds {
		values, err := stringValues(raw)
		if err != nil {
			return nil, fmt.Errorf("%s.%s: %w", field, kind, err)
		}
		ps.Kinds[kind] = values
	}
	return ps, nil
}

// Evaluate decides one request against the policy. requirePrincipal is true for trust and
// resource policies (a statement without Principal never matches there) and false for
// identity policies (which have none).
func (p *Policy) Evaluate(req Request, requirePrincipal bool) Decision {
	ctx := map[string][]string{}
	for k, v := range req.Context {
		ctx[strings.ToLower(k)] = v
	}
	ctx["aws:principalarn"] = []string{principalArnForConditions(req.Principal)}
	ctx["aws:principalaccount"] = []string{req.Principal.Account}
	ctx["aws:userid"] = []string{req.Principal.UserID}

	var allowedBy string
	lastMiss := "no statement allows " + req.Action
	for i, st := range p.Statements {
		name := st.Sid
		if name == "" {
			name = fmt.Sprintf("#%d", i)
		}
		if miss := st.applies(req, ctx, requirePrincipal); miss != "" {
			if st.Effect == "Allow" {
				lastMiss = "statement " + name + ": " + miss
			}
			continue
		}
		if st.Effect == "Deny" {
			return Decision{Denied: true, Reason: "statement " + name + " denies " + req.Action}
		}
		if allowedBy == "" {
			allowedBy = name
		}
	}
	if allowedBy != "" {
		return Decision{Allowed: true, Reason: "statement " + allowedBy + " allows " + req.Action}
	}
	return Decision{Reason: lastMiss}
}

// principalArnForConditions is the value of aws:PrincipalArn: the role ARN for a role session.
func principalArnForConditions(p Principal) string {
	if p.RoleArn != "" {
		return p.RoleArn
	}
	return p.Arn
}

// applies returns "" when the statement covers the request, else what did not match.
func (st Statement) applies(req Request, ctx map[string][]string, requirePrincipal bool) string {
	if st.Actions != nil && !anyGlob(st.Actions, req.Action, true) {
		return "action " + req.Action + " not listed"
	}
	if st.NotActions != nil && anyGlob(st.NotActions, req.Action, true) {
		return "action " + req.Action + " excluded by NotAction"
	}
	if st.Resources != nil && !anyGlob(st.Resources, req.Resource, false) {
		return "resource " + req.Resource + " not listed"
	}
	if st.NotResources != nil && anyGlob(st.NotResources, req.Resource, false) {
		return "resource " + req.Resource + " excluded by NotResource"
	}
	if requirePrincipal {
		switch {
		case st.Principal != nil:
			if !st.Principal.matches(req.Principal) {
				return "principal " + req.Principal.Arn + " not named"
			}
		case st.NotPrincipal != nil:
			if st.NotPrincipal.matches(req.Principal) {
				return "principal " + req.Principal.Arn + " excluded by NotPrincipal"
			}
		default:
			return "no Principal"
		}
	}
	for _, c := range st.Conditions {
		if !c.holds(ctx) {
			return fmt.Sprintf("condition %s %s %v not satisfied", c.Operator, c.Key, c.Values)
		}
	}
	return ""
}

func (ps *PrincipalSet) matches(p Principal) bool {
	if ps.Any {
		return true
	}
	for _, v := range ps.Kinds["AWS"] {
		switch {
		case v == "*":
			return true
		case accountIDPattern.MatchString(v):
			if p.Account == v {
				return true
			}
		case v == "arn:aws:iam::"+p.Account+":root":
			return true
		case p.RoleArn != "" && v == p.RoleArn:
			return true
		case v == p.Arn:
			return true
		}
	}
	// Service, Federated and CanonicalUser principals are never local callers: the local
	// cloud gives functions their role's credentials directly.
	return false
}

func (c Condition) holds(ctx map[string][]string) bool {
	op := c.Operator
	setOp := ""
	if before, after, found := strings.Cut(op, ":"); found {
		setOp, op = before, after
	}
	ifExists := strings.HasSuffix(op, "IfExists")
	op = strings.TrimSuffix(op, "IfExists")
	actual, present := ctx[strings.ToLower(c.Key)]
	if op == "Null" {
		want := len(c.Values) > 0 && c.Values[0] == "true"
		return want == !present
	}
	if !present {
		if ifExists {
			return true
		}
		// A negated operator on a missing key holds: nothing equals the listed values.
		return strings.Contains(op, "Not") && setOp == ""
	}
	match, negated, known := valueMatcher(op)
	if !known {
		return false
	}
	matchesAny := func(a string) bool {
		for _, v := range c.Values {
			if match(a, v) {
				return true
			}
		}
		return false
	}
	switch setOp {
	case "ForAllValues":
		for _, a := range actual {
			if matchesAny(a) == negated {
				return false
			}
		}
		return true
	case "ForAnyValue":
		for _, a := range actual {
			if matchesAny(a) != negated {
				return true
			}
		}
		return false
	case "":
		for _, a := range actual {
			if matchesAny(a) {
				return !negated
			}
		}
		return negated
	}
	return false
}

// valueMatcher returns the comparison for a condition operator (without set prefix or
// IfExists), whether the operator is negated, and whether it is supported.
func valueMatcher(op string) (match func(actual, want string) bool, negated, known bool) {
	equal := func(a, w string) bool { return a == w }
	fold := func(a, w string) bool { return strings.EqualFold(a, w) }
	like := func(a, w string) bool { return glob(w, a, false) }
	switch op {
	case "StringEquals", "ArnEquals":
		return equal, false, true
	case "StringNotEquals", "ArnNotEquals":
		return equal, true, true
	case "StringEqualsIgnoreCase":
		return fold, false, true
	case "StringNotEqualsIgnoreCase":
		return fold, true, true
	case "StringLike", "ArnLike":
		return like, false, true
	case "StringNotLike", "ArnNotLike":
		return like, true, true
	case "Bool":
		return fold, false, true
	}
	return nil, false, false
}

func anyGlob(patterns []string, s string, caseInsensitive bool) bool {
	for _, p := range patterns {
		if glob(p, s, caseInsensitive) {
			return true
		}
	}
	return false
}

// glob matches IAM wildcards: '*' any run of characters, '?' one character.
func glob(pattern, s string, caseInsensitive bool) bool {
	if !strings.ContainsAny(pattern, "*?") {
		if caseInsensitive {
			return strings.EqualFold(pattern, s)
		}
		return pattern == s
	}
	var b strings.Builder
	if caseInsensitive {
		b.WriteString("(?i)")
	}
	b.WriteString("^")
	for _, r := range pattern {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	re, err := regexp.Compile(b.String())
	return err == nil && re.MatchString(s)
}
