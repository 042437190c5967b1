// Package template reads CloudFormation templates and evaluates them the way CloudFormation
// does: parameters with their constraints, Conditions, Mappings, Rules, pseudo parameters,
// the intrinsic functions the CDK emits, and the order resources must be created in. It is
// pure: resource attributes, exports and SSM values come in through the Env.
//
// JSON templates only: the CDK writes JSON, and the local cloud has no YAML parser.
package template

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Error is a template CloudFormation would reject; Message is CloudFormation's wording
// (callers answer it as a ValidationError).
type Error struct {
	Message string
}

func (e *Error) Error() string { return e.Message }

func errorf(format string, args ...any) error {
	return &Error{Message: fmt.Sprintf(format, args...)}
}

func formatErrorf(format string, args ...any) error {
	return &Error{Message: "Template format error: " + fmt.Sprintf(format, args...)}
}

// Template is a parsed template. Values inside (properties, outputs, conditions) are
// decoded JSON with numbers as json.Number, so "10" and 10 keep their written form.
type Template struct {
	FormatVersion string
	Description   string
	Parameters    map[string]*Parameter
	Mappings      map[string]map[string]map[string]any
	Conditions    map[string]any
	Rules         map[string]*Rule
	Resources     map[string]*Resource
	Outputs       map[string]*Output
	Metadata      any
}

// Parameter is a template parameter declaration.
type Parameter struct {
	Name                  string
	Type                  string
	Description           string
	Default               *string
	AllowedValues         []string
	AllowedPattern        string
	ConstraintDescription string
	MinLength, MaxLength  *int
	MinValue, MaxValue    *float64
	NoEcho                bool
}

// Resource is a template resource declaration.
type Resource struct {
	LogicalID           string
	Type                string
	Properties          map[string]any
	DependsOn           []string
	Condition           string
	DeletionPolicy      string
	UpdateReplacePolicy string
	Metadata            any
}

// Output is a template output declaration.
type Output struct {
	Name        string
	Description string
	Value       any
	ExportName  any // an intrinsic or string; nil when not exported
	Condition   string
}

// Rule is a template rule (the CDK's CheckBootstrapVersion is one).
type Rule struct {
	Name          string
	RuleCondition any
	Assertions    []Assertion
}

// Assertion is one rule assertion.
type Assertion struct {
	Assert            any
	AssertDescription string
}

var knownSections = map[string]bool{
	"AWSTemplateFormatVersion": true, "Description": true, "Metadata": true, "Parameters": true,
	"Rules": true, "Mappings": true, "Conditions": true, "Transform": true, "Resources": true,
	"Outputs": true,
}

// Parse decodes a JSON template and checks its structure: sections, resource types,
// references to parameters, resources, conditions and mappings, and dependency cycles.
func Parse(body []byte) (*Template, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, formatErrorf("the template is empty")
	}
	if trimmed[0] != '{' {
		return nil, formatErrorf("the local cloud reads JSON templates only (the CDK writes JSON); this template does not start with '{'")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return nil, formatErrorf("JSON not well-formed: %v", err)
	}
	if dec.More() {
		return nil, formatErrorf("JSON not well-formed: data after the template object")
	}
	var unknown []string
	for k := range raw {
		if !knownSections[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, formatErrorf("Invalid template property or properties [%s]", strings.Join(unknown, ", "))
	}
	if tr, ok := raw["Transform"]; ok {
		return nil, errorf("Transform %v is not supported by the local cloud: synthesize templates without transforms", tr)
	}
	t := &Template{
		Parameters: map[string]*Parameter{},
		Mappings:   map[string]map[string]map[string]any{},
		Conditions: map[string]any{},
		Rules:      map[string]*Rule{},
		Resources:  map[string]*Resource{},
		Outputs:    map[string]*Output{},
		Metadata:   raw["Metadata"],
	}
	if v, ok := raw["AWSTemplateFormatVersion"]; ok {
		s, ok := v.(string)
		if !ok || s != "2010-09-09" {
			return nil, formatErrorf("'%v' is not a valid template version; the only valid value is 2010-09-09", v)
		}
		t.FormatVersion = s
	}
	if v, ok := raw["Description"]; ok {
		s, ok := v.(string)
		if !ok {
			return nil, formatErrorf("Description must be a string")
		}
		t.Description = s
	}
	steps := []func(map[string]any) error{t.parseParameters, t.parseMappings, t.parseConditions, t.parseRules, t.parseResources, t.parseOutputs}
	for _, step := range steps {
		if err := step(raw); err != nil {
			return nil, err
		}
	}
	if err := t.checkReferences(); err != nil {
		return nil, err
	}
	if _, err := t.order(t.allResources(), nil); err != nil {
		return nil, err
	}
	return t, nil
}

func section(raw map[string]any, name string) (map[string]any, error) {
	v, ok := raw[name]
	if !ok {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, formatErrorf("%s must be an object", name)
	}
	return m, nil
}

var parameterTypes = map[string]bool{
	"String": true, "Number": true, "List<Number>": true, "CommaDelimitedList": true,
}

// ValidParameterType reports whether CloudFormation accepts a parameter type.
func ValidParameterType(typ string) bool {
	if parameterTypes[typ] {
		return true
	}
	if strings.HasPrefix(typ, "AWS::SSM::Parameter::Value<") && strings.HasSuffix(typ, ">") {
		return true
	}
	if strings.HasPrefix(typ, "List<AWS::") && strings.HasSuffix(typ, ">") {
		return true
	}
	return strings.HasPrefix(typ, "AWS::EC2::") || strings.HasPrefix(typ, "AWS::Route53::") || typ == "AWS::SSM::Parameter::Name"
}

func (t *Template) parseParameters(raw map[string]any) error {
	params, err := section(raw, "Parameters")
	if err != nil {
		return err
	}
	for name, v := range params {
		if !isAlphanumeric(name) {
			return formatErrorf("Parameter name %s is non alphanumeric.", name)
		}
		decl, ok := v.(map[string]any)
		if !ok {
			return formatErrorf("[/Parameters/%s] must be an object", name)
		}
		p := &Parameter{Name: name}
		p.Type, _ = decl["Type"].(string)
		if p.Type == "" {
			return formatErrorf("[/Parameters/%s] Every Parameters object must contain a Type member.", name)
		}
		if !ValidParameterType(p.Type) {
			return formatErrorf("Unrecognized parameter type: %s", p.Type)
		}
		p.Description, _ = decl["Description"].(string)
		p.AllowedPattern, _ = decl["AllowedPattern"].(string)
		p.ConstraintDescription, _ = decl["ConstraintDescription"].(string)
		if d, ok := decl["Default"]; ok {
			s, err := scalarString(d)
			if err != nil {
				return formatErrorf("[/Parameters/%s/Default] %v", name, err)
			}
			p.Default = &s
		}
		if av, ok := decl["AllowedValues"]; ok {
			list, ok := av.([]any)
			if !ok {
				return formatErrorf("[/Parameters/%s/AllowedValues] must be a list", name)
			}
			for _, e := range list {
				s, err := scalarString(e)
				if err != nil {
					return formatErrorf("[/Parameters/%s/AllowedValues] %v", name, err)
				}
				p.AllowedValues = append(p.AllowedValues, s)
			}
		}
		for field, dst := range map[string]**int{"MinLength": &p.MinLength, "MaxLength": &p.MaxLength} {
			if v, ok := decl[field]; ok {
				n, err := intOf(v)
				if err != nil {
					return formatErrorf("[/Parameters/%s/%s] %v", name, field, err)
				}
				*dst = &n
			}
		}
		for field, dst := range map[string]**float64{"MinValue": &p.MinValue, "MaxValue": &p.MaxValue} {
			if v, ok := decl[field]; ok {
				f, err := floatOf(v)
				if err != nil {
					return formatErrorf("[/Parameters/%s/%s] %v", name, field, err)
				}
				*dst = &f
			}
		}
		if v, ok := decl["NoEcho"]; ok {
			s, _ := scalarString(v)
			p.NoEcho = strings.EqualFold(s, "true")
		}
		t.Parameters[name] = p
	}
	return nil
}

func (t *Template) parseMappings(raw map[string]any) error {
	mappings, err := section(raw, "Mappings")
	if err != nil {
		return err
	}
	for name, v := range mappings {
		top, ok := v.(map[string]any)
		if !ok {
			return formatErrorf("Mappings attribute %s must be an object", name)
		}
		m := map[string]map[string]any{}
		for k1, v1 := range top {
			second, ok := v1.(map[string]any)
			if !ok {
				return formatErrorf("Mappings attribute %s.%s must be an object", name, k1)
			}
			m[k1] = second
		}
		t.Mappings[name] = m
	}
	return nil
}

func (t *Template) parseConditions(raw map[string]any) error {
	conds, err := section(raw, "Conditions")
	if err != nil {
		return err
	}
	for name, v := range conds {
		t.Conditions[name] = v
	}
	return nil
}

func (t *Template) parseRules(raw map[string]any) error {
	rules, err := section(raw, "Rules")
	if err != nil {
		return err
	}
	for name, v := range rules {
		decl, ok := v.(map[string]any)
		if !ok {
			return formatErrorf("[/Rules/%s] must be an object", name)
		}
		r := &Rule{Name: name, RuleCondition: decl["RuleCondition"]}
		list, ok := decl["Assertions"].([]any)
		if !ok {
			return formatErrorf("[/Rules/%s] Every Rules object must contain an Assertions list", name)
		}
		for i, a := range list {
			am, ok := a.(map[string]any)
			if !ok || am["Assert"] == nil {
				return formatErrorf("[/Rules/%s/Assertions/%d] must contain an Assert member", name, i)
			}
			desc, _ := am["AssertDescription"].(string)
			r.Assertions = append(r.Assertions, Assertion{Assert: am["Assert"], AssertDescription: desc})
		}
		t.Rules[name] = r
	}
	return nil
}

func (t *Template) parseResources(raw map[string]any) error {
	resources, err := section(raw, "Resources")
	if err != nil {
		return err
	}
	if len(resources) == 0 {
		return formatErrorf("At least one Resources member must be defined.")
	}
	for id, v := range resources {
		if !isAlphanumeric(id) {
			return formatErrorf("Resource name %s is non alphanumeric.", id)
		}
		decl, ok := v.(map[string]any)
		if !ok {
			return formatErrorf("[/Resources/%s] resource definition is malformed", id)
		}
		r := &Resource{LogicalID: id, Metadata: decl["Metadata"]}
		r.Type, _ = decl["Type"].(string)
		if r.Type == "" {
			return formatErrorf("[/Resources/%s] Every Resources object must contain a Type member.", id)
		}
		if p, ok := decl["Properties"]; ok {
			props, ok := p.(map[string]any)
			if !ok {
				return formatErrorf("[/Resources/%s/Properties] must be an object", id)
			}
			r.Properties = props
		}
		if r.Properties == nil {
			r.Properties = map[string]any{}
		}
		switch d := decl["DependsOn"].(type) {
		case nil:
		case string:
			r.DependsOn = []string{d}
		case []any:
			for _, e := range d {
				s, ok := e.(string)
				if !ok {
					return formatErrorf("[/Resources/%s/DependsOn] must be a string or a list of strings", id)
				}
				r.DependsOn = append(r.DependsOn, s)
			}
		default:
			return formatErrorf("[/Resources/%s/DependsOn] must be a string or a list of strings", id)
		}
		if c, ok := decl["Condition"]; ok {
			s, ok := c.(string)
			if !ok {
				return formatErrorf("[/Resources/%s/Condition] must be a string", id)
			}
			r.Condition = s
		}
		for field, dst := range map[string]*string{"DeletionPolicy": &r.DeletionPolicy, "UpdateReplacePolicy": &r.UpdateReplacePolicy} {
			if v, ok := decl[field]; ok {
				s, _ := v.(string)
				switch s {
				case "Delete", "Retain", "RetainExceptOnCreate", "Snapshot":
					*dst = s
				default:
					return formatErrorf("[/Resources/%s/%s] %v is not one of Delete, Retain, RetainExceptOnCreate, Snapshot", id, field, v)
				}
			}
		}
		t.Resources[id] = r
	}
	return nil
}

func (t *Template) parseOutputs(raw map[string]any) error {
	outputs, err := section(raw, "Outputs")
	if err != nil {
		return err
	}
	for name, v := range outputs {
		if !isAlphanumeric(name) {
			return formatErrorf("Output name %s is non alphanumeric.", name)
		}
		decl, ok := v.(map[string]any)
		if !ok {
			return formatErrorf("[/Outputs/%s] must be an object", name)
		}
		value, ok := decl["Value"]
		if !ok {
			return formatErrorf("[/Outputs/%s] Every Outputs member must contain a Value object", name)
		}
		o := &Output{Name: name, Value: value}
		o.Description, _ = decl["Description"].(string)
		if e, ok := decl["Export"]; ok {
			em, ok := e.(map[string]any)
			if !ok || em["Name"] == nil {
				return formatErrorf("[/Outputs/%s/Export] must contain a Name", name)
			}
			o.ExportName = em["Name"]
		}
		if c, ok := decl["Condition"]; ok {
			s, ok := c.(string)
			if !ok {
				return formatErrorf("[/Outputs/%s/Condition] must be a string", name)
			}
			o.Condition = s
		}
		t.Outputs[name] = o
	}
	return nil
}

// checkReferences verifies that every Ref, GetAtt, Sub variable, DependsOn, Condition and
// FindInMap names something the template declares.
func (t *Template) checkReferences() error {
	var unresolved []string
	seen := map[string]bool{}
	note := func(name string) {
		if !seen[name] {
			seen[name] = true
			unresolved = append(unresolved, name)
		}
	}
	refOK := func(name string) bool {
		return t.Parameters[name] != nil || t.Resources[name] != nil || IsPseudoParameter(name)
	}
	var condErr error
	checkCondition := func(where, name string) {
		if condErr == nil && name != "" {
			if _, ok := t.Conditions[name]; !ok {
				condErr = formatErrorf("Unresolved dependencies [%s]. Cannot reference resources in the Conditions block of the template", name)
				if where != "" {
					condErr = formatErrorf("%s references condition %s, which the Conditions section does not declare", where, name)
				}
			}
		}
	}
	visit := func(v any) {
		walkReferences(v, func(kind, name string) {
			switch kind {
			case "Ref":
				if !refOK(name) {
					note(name)
				}
			case "GetAtt":
				if t.Resources[name] == nil {
					note(name)
				}
			case "Condition":
				checkCondition("Fn::If", name)
			}
		})
	}
	for _, r := range t.Resources {
		visit(r.Properties)
		for _, d := range r.DependsOn {
			if t.Resources[d] == nil {
				note(d)
			}
		}
		checkCondition("Resource "+r.LogicalID, r.Condition)
	}
	for _, o := range t.Outputs {
		visit(o.Value)
		visit(o.ExportName)
		checkCondition("Output "+o.Name, o.Condition)
	}
	for _, c := range t.Conditions {
		walkReferences(c, func(kind, name string) {
			switch kind {
			case "Ref":
				if t.Resources[name] != nil {
					if condErr == nil {
						condErr = formatErrorf("Unresolved dependencies [%s]. Cannot reference resources in the Conditions block of the template", name)
					}
				} else if !refOK(name) {
					note(name)
				}
			case "Condition":
				checkCondition("", name)
			}
		})
	}
	if condErr != nil {
		return condErr
	}
	if len(unresolved) > 0 {
		sort.Strings(unresolved)
		return formatErrorf("Unresolved resource dependencies [%s] in the Resources block of the template", strings.Join(unresolved, ", "))
	}
	return nil
}

// walkReferences calls f for each Ref, Fn::GetAtt, Fn::Sub variable and condition name
// (Fn::If and {"Condition": ...}) found in v, in every branch.
func walkReferences(v any, f func(kind, name string)) {
	switch t := v.(type) {
	case map[string]any:
		if len(t) == 1 {
			for k, arg := range t {
				switch k {
				case "Ref":
					if s, ok := arg.(string); ok {
						f("Ref", s)
						return
					}
				case "Fn::GetAtt":
					if id, _, ok := getAttTarget(arg); ok {
						f("GetAtt", id)
					}
				case "Fn::Sub":
					text, vars := subParts(arg)
					for _, name := range subVariables(text) {
						if _, local := vars[name]; local {
							continue
						}
						if id, _, dotted := strings.Cut(name, "."); dotted {
							f("GetAtt", id)
						} else {
							f("Ref", name)
						}
					}
				case "Fn::If":
					if list, ok := arg.([]any); ok && len(list) == 3 {
						if name, ok := list[0].(string); ok {
							f("Condition", name)
						}
					}
				case "Condition":
					if name, ok := arg.(string); ok {
						f("Condition", name)
						return
					}
				}
			}
		}
		for _, e := range t {
			walkReferences(e, f)
		}
	case []any:
		for _, e := range t {
			walkReferences(e, f)
		}
	}
}

func (t *Template) allResources() map[string]bool {
	all := map[string]bool{}
	for id := range t.Resources {
		all[id] = true
	}
	return all
}

// IAMCapability returns the capability a template needs for its IAM resources: "" when it
// has none, CAPABILITY_NAMED_IAM when one of them has a custom name, else CAPABILITY_IAM.
// The resources that need it are listed for the error message.
func (t *Template) IAMCapability() (capability string, resources []string) {
	named := false
	for _, id := range t.SortedResourceIDs() {
		r := t.Resources[id]
		nameProp, isIAM := iamTypes[r.Type]
		if !isIAM {
			continue
		}
		resources = append(resources, r.Type)
		if nameProp != "" {
			if _, ok := r.Properties[nameProp]; ok {
				named = true
			}
		}
	}
	switch {
	case len(resources) == 0:
		return "", nil
	case named:
		return "CAPABILITY_NAMED_IAM", dedupe(resources)
	default:
		return "CAPABILITY_IAM", dedupe(resources)
	}
}

// iamTypes maps the IAM resource types that need a capability to their custom-name property.
var iamTypes = map[string]string{
	"AWS::IAM::Role":                "RoleName",
	"AWS::IAM::Policy":              "",
	"AWS::IAM::ManagedPolicy":       "ManagedPolicyName",
	"AWS::IAM::User":                "UserName",
	"AWS::IAM::Group":               "GroupName",
	"AWS::IAM::InstanceProfile":     "InstanceProfileName",
	"AWS::IAM::AccessKey":           "",
	"AWS::IAM::UserToGroupAddition": "",
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	sort.Strings(out)
	return out
}

// SortedResourceIDs returns the logical ids in lexical order.
func (t *Template) SortedResourceIDs() []string {
	ids := make([]string, 0, len(t.Resources))
	for id := range t.Resources {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// SortedParameterNames returns the parameter names in lexical order.
func (t *Template) SortedParameterNames() []string {
	names := make([]string, 0, len(t.Parameters))
	for n := range t.Parameters {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func isAlphanumeric(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// scalarString renders a template scalar the way CloudFormation stringifies it.
func scalarString(v any) (string, error) {
	switch t := v.(type) {
	case string:
		return t, nil
	case json.Number:
		return t.String(), nil
	case bool:
		if t {
			return "true", nil
		}
		return "false", nil
	}
	return "", fmt.Errorf("must be a string, number or boolean")
}

func intOf(v any) (int, error) {
	s, err := scalarString(v)
	if err != nil {
		return 0, err
	}
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || fmt.Sprint(n) != s {
		return 0, fmt.Errorf("%q is not an integer", s)
	}
	return n, nil
}

func floatOf(v any) (float64, error) {
	s, err := scalarString(v)
	if err != nil {
		return 0, err
	}
	f, err := json.Number(s).Float64()
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	return f, nil
}
