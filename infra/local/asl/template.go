package asl

import (
	"strings"
)

// Payload templates: Parameters, ResultSelector, ItemSelector and the integrations' own
// parameter blocks. A member whose name ends in ".$" takes its value from a path or an
// intrinsic function; everything else is copied as written. Templates without any ".$"
// member are kept as one literal so evaluating them allocates nothing.

type tmplKind uint8

const (
	tmplLiteral tmplKind = iota
	tmplObject
	tmplArray
	tmplPath
	tmplCall
)

type tmplField struct {
	key string
	val *template
}

type template struct {
	kind   tmplKind
	lit    any
	fields []tmplField
	items  []*template
	path   *Path
	fn     *intrinsic
	field  string // the ".$" member name, for error messages
}

// refersToTaskToken reports whether the template reads $$.Task.Token anywhere.
func (t *template) refersToTaskToken() bool {
	if t == nil {
		return false
	}
	switch t.kind {
	case tmplPath:
		return t.path.context && strings.HasPrefix(t.path.src, "$$.Task.Token")
	case tmplCall:
		return callRefersToToken(t.fn)
	case tmplObject:
		for _, f := range t.fields {
			if f.val.refersToTaskToken() {
				return true
			}
		}
	case tmplArray:
		for _, i := range t.items {
			if i.refersToTaskToken() {
				return true
			}
		}
	}
	return false
}

func callRefersToToken(f *intrinsic) bool {
	for _, a := range f.args {
		switch a.kind {
		case argPath:
			if a.path.context && strings.HasPrefix(a.path.src, "$$.Task.Token") {
				return true
			}
		case argCall:
			if callRefersToToken(a.call) {
				return true
			}
		}
	}
	return false
}

// topKeys lists the member names of an object template, ".$" suffix removed.
func (t *template) topKeys() []string {
	if t == nil || (t.kind != tmplObject && t.kind != tmplLiteral) {
		return nil
	}
	if t.kind == tmplLiteral {
		o, ok := t.lit.(*Object)
		if !ok {
			return nil
		}
		keys := make([]string, 0, o.Len())
		for _, m := range o.Members() {
			keys = append(keys, m.Key)
		}
		return keys
	}
	keys := make([]string, 0, len(t.fields))
	for _, f := range t.fields {
		keys = append(keys, f.key)
	}
	return keys
}

// member returns the template of one top-level member.
func (t *template) member(key string) *template {
	if t == nil {
		return nil
	}
	switch t.kind {
	case tmplObject:
		for _, f := range t.fields {
			if f.key == key {
				return f.val
			}
		}
	case tmplLiteral:
		if o, ok := t.lit.(*Object); ok {
			if v, ok := o.Get(key); ok {
				return &template{kind: tmplLiteral, lit: v}
			}
		}
	}
	return nil
}

func (c *compiler) template(v any, at, what string) *template {
	switch t := v.(type) {
	case *Object:
		out := &template{kind: tmplObject}
		dynamic := false
		seen := map[string]string{}
		for _, m := range t.Members() {
			mat := ptr(at, m.Key)
			if name, isPath := strings.CutSuffix(m.Key, ".$"); isPath {
				s, isStr := m.Value.(string)
				if !isStr {
					c.schema(mat, "The value for the field %q must be a string holding a JSONPath or an intrinsic function, not %s", m.Key, typeName(m.Value))
					continue
				}
				if prev, dup := seen[name]; dup {
					c.schema(mat, "The fields %q and %q would both set %q", prev, m.Key, name)
				}
				seen[name] = m.Key
				out.fields = append(out.fields, tmplField{name, c.dynamicTemplate(s, mat, m.Key)})
				dynamic = true
				continue
			}
			if prev, dup := seen[m.Key]; dup {
				c.schema(mat, "The fields %q and %q would both set %q", prev, m.Key, m.Key)
			}
			seen[m.Key] = m.Key
			child := c.template(m.Value, mat, what)
			if child.kind != tmplLiteral {
				dynamic = true
			}
			out.fields = append(out.fields, tmplField{m.Key, child})
		}
		if !dynamic {
			return &template{kind: tmplLiteral, lit: v}
		}
		return out
	case []any:
		out := &template{kind: tmplArray}
		dynamic := false
		for i, e := range t {
			child := c.template(e, ptrIdx(at, i), what)
			if child.kind != tmplLiteral {
				dynamic = true
			}
			out.items = append(out.items, child)
		}
		if !dynamic {
			return &template{kind: tmplLiteral, lit: v}
		}
		return out
	}
	return &template{kind: tmplLiteral, lit: v}
}

func (c *compiler) dynamicTemplate(s, at, field string) *template {
	if looksLikeIntrinsic(s) {
		fn, err := compileIntrinsic(s)
		if err != nil {
			c.schema(at, "%v", err)
			return &template{kind: tmplLiteral}
		}
		return &template{kind: tmplCall, fn: fn, field: field}
	}
	if !strings.HasPrefix(s, "$") {
		c.schema(at, "The value for the field %q must be a valid JSONPath or a valid intrinsic function call, not %q", field, s)
		return &template{kind: tmplLiteral}
	}
	p := c.compilePath(s, at, field, pathRules{context: true})
	if p == nil {
		return &template{kind: tmplLiteral}
	}
	return &template{kind: tmplPath, path: p, field: field}
}

// eval builds the template's value. input is what "$" reads, context what "$$" reads.
func (t *template) eval(input any, context contextFn) (any, error) {
	switch t.kind {
	case tmplLiteral:
		return t.lit, nil
	case tmplPath:
		doc := input
		if t.path.context {
			doc = context()
		}
		v, err := t.path.Eval(doc)
		if err != nil {
			return nil, runtimeError("The JSONPath %s specified for the field %s could not be found in the input %s", t.path.src, t.field, MarshalJSON(doc))
		}
		return v, nil
	case tmplCall:
		v, err := t.fn.eval(input, context)
		if err != nil {
			return nil, runtimeError("%v", err)
		}
		return v, nil
	case tmplArray:
		out := make([]any, len(t.items))
		for i, item := range t.items {
			v, err := item.eval(input, context)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}
	o := &Object{members: make([]Member, 0, len(t.fields))}
	for _, f := range t.fields {
		v, err := f.val.eval(input, context)
		if err != nil {
			return nil, err
		}
		o.put(f.key, v)
	}
	return o, nil
}

// contextFn returns the context object ($$). It is a function so that states which never
// read $$ never pay for building it.
type contextFn func() any
