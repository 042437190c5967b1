package template

import (
	"encoding/json"
	"regexp"
	"sort"
	"strings"
)

// ParamValue is a parameter's value in one stack.
type ParamValue struct {
	Value         string // as given or defaulted: what DescribeStacks shows (unless NoEcho)
	ResolvedValue string // for SSM parameter types, the value read from the parameter store
	Resolved      any    // what Ref returns: a string, or a []any of strings for list types
	NoEcho        bool
}

// ResolveParameters applies the given values and the defaults to the template's
// parameters, checks every constraint, and reads SSM parameter types through ssm. Errors
// use CloudFormation's wording and name the parameter.
func (t *Template) ResolveParameters(given map[string]string, ssm func(name string) (string, bool)) (map[string]ParamValue, error) {
	var unknown []string
	for name := range given {
		if t.Parameters[name] == nil {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, errorf("Parameters: [%s] do not exist in the template", strings.Join(unknown, ", "))
	}
	var missing []string
	out := map[string]ParamValue{}
	for _, name := range t.SortedParameterNames() {
		p := t.Parameters[name]
		raw, ok := given[name]
		if !ok {
			if p.Default == nil {
				missing = append(missing, name)
				continue
			}
			raw = *p.Default
		}
		pv, err := p.resolve(raw, ssm)
		if err != nil {
			return nil, err
		}
		out[name] = pv
	}
	if len(missing) > 0 {
		return nil, errorf("Parameters: [%s] must have values", strings.Join(missing, ", "))
	}
	return out, nil
}

func (p *Parameter) resolve(raw string, ssm func(string) (string, bool)) (ParamValue, error) {
	pv := ParamValue{Value: raw, NoEcho: p.NoEcho}
	typ := p.Type
	value := raw
	if inner, ok := strings.CutPrefix(typ, "AWS::SSM::Parameter::Value<"); ok {
		stored, found := "", false
		if ssm != nil {
			stored, found = ssm(raw)
		}
		if !found {
			return pv, errorf("Unable to fetch parameters [%s] from parameter store for this account.", raw)
		}
		pv.ResolvedValue = stored
		value = stored
		typ = strings.TrimSuffix(inner, ">")
	}
	isList := typ == "CommaDelimitedList" || strings.HasPrefix(typ, "List<")
	var items []string
	if isList {
		if value == "" {
			items = []string{}
		} else {
			items = strings.Split(value, ",")
			for i := range items {
				items[i] = strings.TrimSpace(items[i])
			}
		}
	} else {
		items = []string{value}
	}
	numeric := typ == "Number" || typ == "List<Number>"
	for _, item := range items {
		if err := p.check(item, numeric); err != nil {
			return pv, err
		}
	}
	if isList {
		list := make([]any, len(items))
		for i, s := range items {
			list[i] = s
		}
		pv.Resolved = list
	} else {
		pv.Resolved = value
	}
	return pv, nil
}

func (p *Parameter) check(v string, numeric bool) error {
	failed := func(msg string) error {
		if p.ConstraintDescription != "" {
			return errorf("Parameter '%s' failed to satisfy constraint: %s", p.Name, p.ConstraintDescription)
		}
		return errorf("Parameter '%s' %s", p.Name, msg)
	}
	if numeric {
		f, err := json.Number(v).Float64()
		if err != nil || v == "" {
			return errorf("Parameter '%s' must be a number", p.Name)
		}
		if p.MinValue != nil && f < *p.MinValue {
			return failed("must be a number not less than " + trimFloat(*p.MinValue))
		}
		if p.MaxValue != nil && f > *p.MaxValue {
			return failed("must be a number not greater than " + trimFloat(*p.MaxValue))
		}
	}
	if len(p.AllowedValues) > 0 {
		allowed := false
		for _, a := range p.AllowedValues {
			if a == v {
				allowed = true
				break
			}
		}
		if !allowed {
			return errorf("Parameter '%s' must be one of AllowedValues", p.Name)
		}
	}
	if p.AllowedPattern != "" {
		re, err := regexp.Compile(`^(?:` + p.AllowedPattern + `)$`)
		if err != nil {
			return errorf("Parameter '%s' has an AllowedPattern the local cloud cannot compile: %v", p.Name, err)
		}
		if !re.MatchString(v) {
			return failed("must match pattern " + p.AllowedPattern)
		}
	}
	if p.MinLength != nil && len(v) < *p.MinLength {
		return failed("must contain at least " + itoa(*p.MinLength) + " characters")
	}
	if p.MaxLength != nil && len(v) > *p.MaxLength {
		return failed("must contain at most " + itoa(*p.MaxLength) + " characters")
	}
	return nil
}

func trimFloat(f float64) string {
	b, _ := json.Marshal(f)
	return string(b)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}
