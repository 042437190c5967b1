package template

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Resolver answers Ref and Fn::GetAtt for resources; the stack engine implements it with
// the resources it has created.
type Resolver interface {
	Ref(logicalID string) (any, error)
	GetAtt(logicalID, attribute string) (any, error)
}

// Env is everything outside the template that evaluation needs.
type Env struct {
	AccountID        string
	Region           string
	StackName        string
	StackID          string
	NotificationARNs []string
	Params           map[string]ParamValue // from ResolveParameters
	Conditions       map[string]bool       // from EvaluateConditions; nil until evaluated
	Resources        Resolver              // nil while only parameters and conditions are known
	Imports          func(exportName string) (string, bool)
	AZs              func(region string) []string
}

// Partition is the partition of the Env's region.
func (e *Env) Partition() string {
	switch {
	case strings.HasPrefix(e.Region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(e.Region, "us-gov-"):
		return "aws-us-gov"
	}
	return "aws"
}

// URLSuffix is the domain suffix of the Env's partition.
func (e *Env) URLSuffix() string {
	if strings.HasPrefix(e.Region, "cn-") {
		return "amazonaws.com.cn"
	}
	return "amazonaws.com"
}

// noValue is what Ref AWS::NoValue evaluates to; the enclosing property or list element
// is removed.
type noValueType struct{}

var noValue = noValueType{}

var pseudoParameters = map[string]bool{
	"AWS::AccountId": true, "AWS::NotificationARNs": true, "AWS::NoValue": true, "AWS::Partition": true,
	"AWS::Region": true, "AWS::StackId": true, "AWS::StackName": true, "AWS::URLSuffix": true,
}

// IsPseudoParameter reports whether name is one of CloudFormation's pseudo parameters.
func IsPseudoParameter(name string) bool { return pseudoParameters[name] }

func (e *Env) pseudo(name string) any {
	switch name {
	case "AWS::AccountId":
		return e.AccountID
	case "AWS::NotificationARNs":
		out := make([]any, len(e.NotificationARNs))
		for i, a := range e.NotificationARNs {
			out[i] = a
		}
		return out
	case "AWS::NoValue":
		return noValue
	case "AWS::Partition":
		return e.Partition()
	case "AWS::Region":
		return e.Region
	case "AWS::StackId":
		return e.StackID
	case "AWS::StackName":
		return e.StackName
	case "AWS::URLSuffix":
		return e.URLSuffix()
	}
	return nil
}

// Resolve evaluates every intrinsic function in v and returns plain JSON values (strings,
// json.Number, bools, lists, maps); properties that evaluate to AWS::NoValue are removed.
func (t *Template) Resolve(env *Env, v any) (any, error) {
	out, err := t.resolve(env, v)
	if err != nil {
		return nil, err
	}
	if out == noValue {
		return nil, nil
	}
	return out, nil
}

// ResolveProperties resolves a resource's Properties.
func (t *Template) ResolveProperties(env *Env, r *Resource) (map[string]any, error) {
	out, err := t.Resolve(env, r.Properties)
	if err != nil {
		return nil, fmt.Errorf("resource %s: %w", r.LogicalID, err)
	}
	m, _ := out.(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	return m, nil
}

func (t *Template) resolve(env *Env, v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if k == "Ref" || strings.HasPrefix(k, "Fn::") {
					return t.intrinsic(env, k, arg)
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			r, err := t.resolve(env, e)
			if err != nil {
				return nil, err
			}
			if r != noValue {
				out[k] = r
			}
		}
		return out, nil
	case []any:
		out := make([]any, 0, len(x))
		for _, e := range x {
			r, err := t.resolve(env, e)
			if err != nil {
				return nil, err
			}
			if r != noValue {
				out = append(out, r)
			}
		}
		return out, nil
	}
	return v, nil
}

func (t *Template) intrinsic(env *Env, fn string, arg any) (any, error) {
	switch fn {
	case "Ref":
		name, ok := arg.(string)
		if !ok {
			return nil, formatErrorf("Ref must be a string, got %v", arg)
		}
		return t.ref(env, name)
	case "Fn::GetAtt":
		id, attrArg, ok := getAttTarget(arg)
		if !ok {
			return nil, formatErrorf("Fn::GetAtt must be [logicalId, attribute] or \"logicalId.attribute\", got %v", arg)
		}
		attr, err := t.resolveString(env, attrArg, "Fn::GetAtt attribute")
		if err != nil {
			return nil, err
		}
		if env.Resources == nil {
			return nil, formatErrorf("Fn::GetAtt %s.%s cannot be used here", id, attr)
		}
		return env.Resources.GetAtt(id, attr)
	case "Fn::Join":
		return t.join(env, arg)
	case "Fn::Sub":
		return t.sub(env, arg)
	case "Fn::Select":
		return t.selectFn(env, arg)
	case "Fn::Split":
		args, err := t.args(env, fn, arg, 2)
		if err != nil {
			return nil, err
		}
		delim, ok1 := args[0].(string)
		s, ok2 := args[1].(string)
		if !ok1 || !ok2 {
			return nil, formatErrorf("Fn::Split requires a delimiter and a string")
		}
		parts := strings.Split(s, delim)
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = p
		}
		return out, nil
	case "Fn::If":
		list, ok := arg.([]any)
		if !ok || len(list) != 3 {
			return nil, formatErrorf("Fn::If requires a list of [condition, value if true, value if false]")
		}
		name, ok := list[0].(string)
		if !ok {
			return nil, formatErrorf("Fn::If condition must be a condition name")
		}
		cond, err := t.condition(env, name, nil)
		if err != nil {
			return nil, err
		}
		if cond {
			return t.resolve(env, list[1])
		}
		return t.resolve(env, list[2])
	case "Fn::Equals", "Fn::Not", "Fn::And", "Fn::Or", "Fn::Contains", "Fn::EachMemberEquals", "Fn::EachMemberIn":
		b, err := t.boolFn(env, fn, arg, nil)
		if err != nil {
			return nil, err
		}
		return b, nil
	case "Fn::FindInMap":
		return t.findInMap(env, arg)
	case "Fn::GetAZs":
		region, err := t.resolveString(env, arg, "Fn::GetAZs")
		if err != nil {
			return nil, err
		}
		if region == "" {
			region = env.Region
		}
		var azs []string
		if env.AZs != nil {
			azs = env.AZs(region)
		}
		out := make([]any, len(azs))
		for i, a := range azs {
			out[i] = a
		}
		return out, nil
	case "Fn::ImportValue":
		name, err := t.resolveString(env, arg, "Fn::ImportValue")
		if err != nil {
			return nil, err
		}
		if env.Imports != nil {
			if v, ok := env.Imports(name); ok {
				return v, nil
			}
		}
		return nil, errorf("No export named %s found", name)
	case "Fn::Base64":
		s, err := t.resolveString(env, arg, "Fn::Base64")
		if err != nil {
			return nil, err
		}
		return base64.StdEncoding.EncodeToString([]byte(s)), nil
	case "Fn::Cidr":
		return t.cidrFn(env, arg)
	}
	return nil, formatErrorf("Encountered unsupported function: %s", fn)
}

func (t *Template) ref(env *Env, name string) (any, error) {
	if IsPseudoParameter(name) {
		return env.pseudo(name), nil
	}
	if p, ok := env.Params[name]; ok {
		return p.Resolved, nil
	}
	if t.Resources[name] != nil {
		if env.Resources == nil {
			return nil, formatErrorf("Unresolved dependencies [%s]. Cannot reference resources in the Conditions block of the template", name)
		}
		return env.Resources.Ref(name)
	}
	return nil, formatErrorf("Unresolved resource dependencies [%s] in the Resources block of the template", name)
}

func (t *Template) args(env *Env, fn string, arg any, n int) ([]any, error) {
	list, ok := arg.([]any)
	if !ok || len(list) != n {
		return nil, formatErrorf("%s requires a list of %d arguments", fn, n)
	}
	out := make([]any, n)
	for i, e := range list {
		r, err := t.resolve(env, e)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

func (t *Template) resolveString(env *Env, v any, what string) (string, error) {
	r, err := t.resolve(env, v)
	if err != nil {
		return "", err
	}
	s, err := scalarString(r)
	if err != nil {
		return "", formatErrorf("%s: value %v must be a string", what, r)
	}
	return s, nil
}

func (t *Template) join(env *Env, arg any) (any, error) {
	args, err := t.args(env, "Fn::Join", arg, 2)
	if err != nil {
		return nil, err
	}
	delim, ok := args[0].(string)
	if !ok {
		return nil, formatErrorf("Fn::Join delimiter must be a string")
	}
	list, ok := args[1].([]any)
	if !ok {
		return nil, formatErrorf("Fn::Join requires a list of values to join, got %v", args[1])
	}
	parts := make([]string, len(list))
	for i, e := range list {
		s, err := scalarString(e)
		if err != nil {
			return nil, formatErrorf("Fn::Join: element %d (%v) must be a string", i, e)
		}
		parts[i] = s
	}
	return strings.Join(parts, delim), nil
}

func (t *Template) selectFn(env *Env, arg any) (any, error) {
	args, err := t.args(env, "Fn::Select", arg, 2)
	if err != nil {
		return nil, err
	}
	idxStr, err := scalarString(args[0])
	if err != nil {
		return nil, formatErrorf("Fn::Select index must be a number")
	}
	idx, err := strconv.Atoi(idxStr)
	if err != nil {
		return nil, formatErrorf("Fn::Select index %q is not an integer", idxStr)
	}
	list, ok := args[1].([]any)
	if !ok {
		return nil, formatErrorf("Fn::Select requires a list, got %v", args[1])
	}
	if idx < 0 || idx >= len(list) {
		return nil, errorf("Template error: Fn::Select cannot select nonexistent value at index %d", idx)
	}
	return list[idx], nil
}

func (t *Template) findInMap(env *Env, arg any) (any, error) {
	list, ok := arg.([]any)
	if !ok || len(list) != 3 {
		return nil, formatErrorf("Fn::FindInMap requires [MapName, TopLevelKey, SecondLevelKey]")
	}
	keys := make([]string, 3)
	for i, e := range list {
		s, err := t.resolveString(env, e, "Fn::FindInMap")
		if err != nil {
			return nil, err
		}
		keys[i] = s
	}
	m, ok := t.Mappings[keys[0]]
	if !ok {
		return nil, errorf("Template error: Unable to get mapping for %s", keys[0])
	}
	top, ok := m[keys[1]]
	if !ok {
		return nil, errorf("Template error: Unable to get mapping for %s::%s", keys[0], keys[1])
	}
	v, ok := top[keys[2]]
	if !ok {
		return nil, errorf("Template error: Unable to get mapping for %s::%s::%s", keys[0], keys[1], keys[2])
	}
	return v, nil
}

// getAttTarget splits Fn::GetAtt's argument: ["Id", "Attr"] (Attr may be an intrinsic) or
// "Id.Attr".
func getAttTarget(arg any) (id string, attr any, ok bool) {
	switch a := arg.(type) {
	case []any:
		if len(a) != 2 {
			return "", nil, false
		}
		id, ok = a[0].(string)
		return id, a[1], ok
	case string:
		id, rest, found := strings.Cut(a, ".")
		return id, rest, found
	}
	return "", nil, false
}

// subParts splits Fn::Sub's argument into its text and its variable map.
func subParts(arg any) (string, map[string]any) {
	switch a := arg.(type) {
	case string:
		return a, nil
	case []any:
		if len(a) == 2 {
			text, _ := a[0].(string)
			vars, _ := a[1].(map[string]any)
			return text, vars
		}
	}
	return "", nil
}

// subVariables lists the ${Name} variables of a Fn::Sub text (not ${!Literal}).
func subVariables(text string) []string {
	var out []string
	for {
		i := strings.Index(text, "${")
		if i < 0 {
			return out
		}
		j := strings.Index(text[i:], "}")
		if j < 0 {
			return out
		}
		name := text[i+2 : i+j]
		if !strings.HasPrefix(name, "!") {
			out = append(out, strings.TrimSpace(name))
		}
		text = text[i+j+1:]
	}
}

func (t *Template) sub(env *Env, arg any) (any, error) {
	text, vars := subParts(arg)
	if _, isList := arg.([]any); isList && (text == "" && vars == nil) {
		return nil, formatErrorf("Fn::Sub requires a string or [string, {variables}]")
	}
	if _, isString := arg.(string); !isString {
		if _, isList := arg.([]any); !isList {
			return nil, formatErrorf("Fn::Sub requires a string or [string, {variables}]")
		}
	}
	var b strings.Builder
	for {
		i := strings.Index(text, "${")
		if i < 0 {
			b.WriteString(text)
			break
		}
		j := strings.Index(text[i:], "}")
		if j < 0 {
			b.WriteString(text)
			break
		}
		b.WriteString(text[:i])
		name := text[i+2 : i+j]
		text = text[i+j+1:]
		if strings.HasPrefix(name, "!") {
			b.WriteString("${" + name[1:] + "}")
			continue
		}
		name = strings.TrimSpace(name)
		var value any
		var err error
		if v, ok := vars[name]; ok {
			value, err = t.resolve(env, v)
		} else if id, attr, dotted := strings.Cut(name, "."); dotted && !IsPseudoParameter(name) {
			if env.Resources == nil {
				return nil, formatErrorf("Fn::Sub: ${%s} cannot be used here", name)
			}
			value, err = env.Resources.GetAtt(id, attr)
		} else {
			value, err = t.ref(env, name)
		}
		if err != nil {
			return nil, err
		}
		s, err := scalarString(value)
		if err != nil {
			return nil, formatErrorf("Fn::Sub: variable ${%s} does not evaluate to a string (%v)", name, value)
		}
		b.WriteString(s)
	}
	return b.String(), nil
}

// boolFn evaluates the condition functions (and the rule-only ones: Fn::Contains,
// Fn::EachMemberEquals, Fn::EachMemberIn). visiting detects cycles between conditions.
func (t *Template) boolFn(env *Env, fn string, arg any, visiting map[string]bool) (bool, error) {
	list, ok := arg.([]any)
	if !ok {
		return false, formatErrorf("%s requires a list of arguments", fn)
	}
	switch fn {
	case "Fn::Equals":
		if len(list) != 2 {
			return false, formatErrorf("Fn::Equals requires exactly 2 arguments")
		}
		a, err := t.resolve(env, list[0])
		if err != nil {
			return false, err
		}
		b, err := t.resolve(env, list[1])
		if err != nil {
			return false, err
		}
		return equalValues(a, b), nil
	case "Fn::Not":
		if len(list) != 1 {
			return false, formatErrorf("Fn::Not requires exactly 1 argument")
		}
		v, err := t.condValue(env, list[0], visiting)
		return !v, err
	case "Fn::And", "Fn::Or":
		if len(list) < 2 || len(list) > 10 {
			return false, formatErrorf("%s requires 2 to 10 conditions", fn)
		}
		for _, e := range list {
			v, err := t.condValue(env, e, visiting)
			if err != nil {
				return false, err
			}
			if fn == "Fn::And" && !v {
				return false, nil
			}
			if fn == "Fn::Or" && v {
				return true, nil
			}
		}
		return fn == "Fn::And", nil
	case "Fn::Contains", "Fn::EachMemberEquals", "Fn::EachMemberIn":
		if len(list) != 2 {
			return false, formatErrorf("%s requires exactly 2 arguments", fn)
		}
		a, err := t.resolve(env, list[0])
		if err != nil {
			return false, err
		}
		b, err := t.resolve(env, list[1])
		if err != nil {
			return false, err
		}
		switch fn {
		case "Fn::Contains":
			return containsValue(a, b), nil
		case "Fn::EachMemberEquals":
			items, _ := a.([]any)
			for _, e := range items {
				if !equalValues(e, b) {
					return false, nil
				}
			}
			return true, nil
		default:
			items, _ := a.([]any)
			for _, e := range items {
				if !containsValue(b, e) {
					return false, nil
				}
			}
			return true, nil
		}
	}
	return false, formatErrorf("Encountered unsupported function: %s", fn)
}

// condValue evaluates a condition operand: {"Condition": name}, a condition function, or a
// literal "true"/"false".
func (t *Template) condValue(env *Env, v any, visiting map[string]bool) (bool, error) {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for k, arg := range m {
			if k == "Condition" {
				name, ok := arg.(string)
				if !ok {
					return false, formatErrorf("Condition must name a condition")
				}
				return t.condition(env, name, visiting)
			}
			if strings.HasPrefix(k, "Fn::") {
				return t.boolFn(env, k, arg, visiting)
			}
		}
	}
	r, err := t.resolve(env, v)
	if err != nil {
		return false, err
	}
	if b, ok := r.(bool); ok {
		return b, nil
	}
	if s, err := scalarString(r); err == nil && (s == "true" || s == "false") {
		return s == "true", nil
	}
	return false, formatErrorf("Conditions can only be boolean operations on parameters and literal values, got %v", v)
}

// condition returns a named condition, evaluating it on first use.
func (t *Template) condition(env *Env, name string, visiting map[string]bool) (bool, error) {
	if v, ok := env.Conditions[name]; ok {
		return v, nil
	}
	decl, ok := t.Conditions[name]
	if !ok {
		return false, formatErrorf("Unresolved dependencies [%s]: no condition with that name", name)
	}
	if visiting == nil {
		visiting = map[string]bool{}
	}
	if visiting[name] {
		return false, formatErrorf("Circular dependency between conditions: [%s]", name)
	}
	visiting[name] = true
	defer delete(visiting, name)
	v, err := t.condValue(env, decl, visiting)
	if err != nil {
		return false, err
	}
	if env.Conditions == nil {
		env.Conditions = map[string]bool{}
	}
	env.Conditions[name] = v
	return v, nil
}

// EvaluateConditions evaluates every condition of the template into env.Conditions.
func (t *Template) EvaluateConditions(env *Env) error {
	if env.Conditions == nil {
		env.Conditions = map[string]bool{}
	}
	names := make([]string, 0, len(t.Conditions))
	for n := range t.Conditions {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if _, err := t.condition(env, n, nil); err != nil {
			return err
		}
	}
	return nil
}

// CheckRules evaluates the Rules section; a failed assertion is returned as an error with
// its AssertDescription, as CloudFormation reports it.
func (t *Template) CheckRules(env *Env) error {
	names := make([]string, 0, len(t.Rules))
	for n := range t.Rules {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		r := t.Rules[n]
		if r.RuleCondition != nil {
			applies, err := t.condValue(env, r.RuleCondition, nil)
			if err != nil {
				return fmt.Errorf("rule %s: %w", n, err)
			}
			if !applies {
				continue
			}
		}
		for _, a := range r.Assertions {
			ok, err := t.condValue(env, a.Assert, nil)
			if err != nil {
				return fmt.Errorf("rule %s: %w", n, err)
			}
			if !ok {
				msg := a.AssertDescription
				if msg == "" {
					msg = "Template error: rule " + n + " failed an assertion"
				}
				return errorf("%s", msg)
			}
		}
	}
	return nil
}

func equalValues(a, b any) bool {
	sa, errA := scalarString(a)
	sb, errB := scalarString(b)
	if errA == nil && errB == nil {
		return sa == sb
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return string(ja) == string(jb)
}

func containsValue(list, v any) bool {
	items, ok := list.([]any)
	if !ok {
		return false
	}
	for _, e := range items {
		if equalValues(e, v) {
			return true
		}
	}
	return false
}

// Included reports whether a resource or output with the given condition exists in this
// stack (an empty condition always does).
func (t *Template) Included(env *Env, condition string) (bool, error) {
	if condition == "" {
		return true, nil
	}
	return t.condition(env, condition, nil)
}

// Order returns the logical ids of the resources whose conditions hold, in an order where
// every resource comes after the resources it references (Ref, GetAtt, Sub, DependsOn).
// Only the taken branch of Fn::If counts. Ties are broken lexically so runs repeat.
func (t *Template) Order(env *Env) ([]string, error) {
	included := map[string]bool{}
	for id, r := range t.Resources {
		ok, err := t.Included(env, r.Condition)
		if err != nil {
			return nil, err
		}
		if ok {
			included[id] = true
		}
	}
	return t.order(included, env)
}

// Dependencies returns the resources a resource references (Ref, GetAtt, Sub, DependsOn);
// with env non-nil, only the taken branch of each Fn::If counts.
func (t *Template) Dependencies(env *Env, r *Resource) []string {
	set := map[string]bool{}
	for _, d := range r.DependsOn {
		set[d] = true
	}
	t.collectDeps(env, r.Properties, set)
	out := make([]string, 0, len(set))
	for d := range set {
		if t.Resources[d] != nil && d != r.LogicalID {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}

func (t *Template) collectDeps(env *Env, v any, set map[string]bool) {
	switch x := v.(type) {
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				switch k {
				case "Ref":
					if name, ok := arg.(string); ok {
						set[name] = true
						return
					}
				case "Fn::GetAtt":
					if id, attr, ok := getAttTarget(arg); ok {
						set[id] = true
						t.collectDeps(env, attr, set)
						return
					}
				case "Fn::Sub":
					text, vars := subParts(arg)
					for _, name := range subVariables(text) {
						if _, local := vars[name]; !local {
							id, _, _ := strings.Cut(name, ".")
							set[id] = true
						}
					}
					for _, e := range vars {
						t.collectDeps(env, e, set)
					}
					return
				case "Fn::If":
					list, ok := arg.([]any)
					if !ok || len(list) != 3 || env == nil {
						break
					}
					name, _ := list[0].(string)
					cond, err := t.condition(env, name, nil)
					if err != nil {
						break
					}
					if cond {
						t.collectDeps(env, list[1], set)
					} else {
						t.collectDeps(env, list[2], set)
					}
					return
				}
			}
		}
		for _, e := range x {
			t.collectDeps(env, e, set)
		}
	case []any:
		for _, e := range x {
			t.collectDeps(env, e, set)
		}
	}
}

func (t *Template) order(included map[string]bool, env *Env) ([]string, error) {
	deps := map[string][]string{}
	var missing []string
	for id := range included {
		for _, d := range t.Dependencies(env, t.Resources[id]) {
			if !included[d] {
				missing = append(missing, d)
				continue
			}
			deps[id] = append(deps[id], d)
		}
	}
	if len(missing) > 0 {
		return nil, formatErrorf("Unresolved resource dependencies [%s] in the Resources block of the template", strings.Join(dedupe(missing), ", "))
	}
	var out []string
	done := map[string]bool{}
	for len(done) < len(included) {
		var ready []string
		for id := range included {
			if done[id] {
				continue
			}
			ok := true
			for _, d := range deps[id] {
				if !done[d] {
					ok = false
					break
				}
			}
			if ok {
				ready = append(ready, id)
			}
		}
		if len(ready) == 0 {
			var cycle []string
			for id := range included {
				if !done[id] {
					cycle = append(cycle, id)
				}
			}
			sort.Strings(cycle)
			return nil, errorf("Circular dependency between resources: [%s]", strings.Join(cycle, ", "))
		}
		sort.Strings(ready)
		for _, id := range ready {
			done[id] = true
			out = append(out, id)
		}
	}
	return out, nil
}
