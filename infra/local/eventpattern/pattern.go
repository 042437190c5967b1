// Package eventpattern compiles and evaluates Amazon EventBridge event patterns, with the
// semantics of AWS's own matcher (aws/event-ruler): every field named in a pattern must match
// (AND), a field matches when its value matches any entry of its array (OR), arrays in events
// match when any element matches, and fields inside objects of one array element are matched
// together ("array-consistent" matching). It is pure: no I/O, no clock.
//
// The local cloud needs it because kumo's matcher ignores array values in events and every
// top-level field except source, detail-type and detail, so rules that AWS would not fire
// would fire locally (and the reverse).
package eventpattern

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// Pattern is a compiled event pattern. It is immutable and safe for concurrent use.
type Pattern struct {
	root *objectNode
	text string
}

// objectNode matches one JSON object: all fields must match and, for each $or group, at
// least one alternative must match the same object.
type objectNode struct {
	fields []*fieldNode
	ors    [][]*objectNode
}

// fieldNode is either a nested object pattern or a leaf with alternative matchers.
type fieldNode struct {
	name     string
	path     string
	object   *objectNode
	matchers []matcher
}

// Error is a pattern that EventBridge would reject (InvalidEventPatternException).
type Error struct {
	Path   string // dotted path of the offending field, "" for the whole pattern
	Reason string // the rule it breaks
}

func (e *Error) Error() string {
	if e.Path == "" {
		return "Event pattern is not valid. Reason: " + e.Reason
	}
	return fmt.Sprintf("Event pattern is not valid. Reason: %q %s", e.Path, e.Reason)
}

// Compile parses and validates an event pattern given as JSON text.
func Compile(pattern []byte) (*Pattern, error) {
	dec := json.NewDecoder(bytes.NewReader(pattern))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, &Error{Reason: "the pattern is not valid JSON: " + err.Error()}
	}
	if dec.More() {
		return nil, &Error{Reason: "the pattern has data after the JSON object"}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, &Error{Reason: "the pattern must be a JSON object"}
	}
	root, err := compileObject(obj, "")
	if err != nil {
		return nil, err
	}
	return &Pattern{root: root, text: string(pattern)}, nil
}

// MustCompile is Compile for patterns written in code; it panics on an invalid pattern.
func MustCompile(pattern string) *Pattern {
	p, err := Compile([]byte(pattern))
	if err != nil {
		panic(err)
	}
	return p
}

// String returns the pattern text as given to Compile.
func (p *Pattern) String() string { return p.text }

// MatchJSON reports whether the event (a JSON object) matches the pattern.
func (p *Pattern) MatchJSON(event []byte) (bool, error) {
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return false, fmt.Errorf("event is not valid JSON: %w", err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return false, fmt.Errorf("event must be a JSON object")
	}
	return p.root.match(obj), nil
}

// Match reports whether a decoded event (as produced by encoding/json, with or without
// UseNumber) matches the pattern.
func (p *Pattern) Match(event map[string]any) bool {
	return p.root.match(event)
}

func (n *objectNode) match(obj map[string]any) bool {
	for _, f := range n.fields {
		v, present := obj[f.name]
		if !f.match(v, present) {
			return false
		}
	}
	for _, alternatives := range n.ors {
		matched := false
		for _, alt := range alternatives {
			if alt.match(obj) {
				matched = true
				break
			}
		}
		if !matched {
			return false
		}
	}
	return true
}

func (f *fieldNode) match(v any, present bool) bool {
	if f.object != nil {
		// A nested pattern must match within a single object; objects reached through
		// arrays are tried one by one, so fields of different elements never combine.
		for _, o := range objectsOf(v, present) {
			if f.object.match(o) {
				return true
			}
		}
		return false
	}
	leaves := leavesOf(v, present)
	for _, m := range f.matchers {
		if m.matchLeaves(leaves) {
			return true
		}
	}
	return false
}

// objectsOf returns the objects at a field: the object itself, or the objects of an array
// (nested arrays flattened). A missing field holds no objects.
func objectsOf(v any, present bool) []map[string]any {
	if !present {
		return nil
	}
	switch t := v.(type) {
	case map[string]any:
		return []map[string]any{t}
	case []any:
		var out []map[string]any
		for _, e := range t {
			out = append(out, objectsOf(e, true)...)
		}
		return out
	}
	return nil
}

// leavesOf returns the scalar values at a field: the value itself or the scalars of an array
// (nested arrays flattened). Objects are not leaves, which is why exists:true never matches an
// object and exists:false does.
func leavesOf(v any, present bool) []any {
	if !present {
		return nil
	}
	switch t := v.(type) {
	case map[string]any:
		return nil
	case []any:
		var out []any
		for _, e := range t {
			out = append(out, leavesOf(e, true)...)
		}
		return out
	}
	return []any{v}
}

func compileObject(obj map[string]any, path string) (*objectNode, error) {
	if len(obj) == 0 {
		return nil, &Error{Path: path, Reason: "must not be an empty object"}
	}
	names := make([]string, 0, len(obj))
	for k := range obj {
		names = append(names, k)
	}
	sort.Strings(names) // deterministic errors and evaluation order
	node := &objectNode{}
	for _, name := range names {
		fieldPath := joinPath(path, name)
		val := obj[name]
		if name == "$or" {
			alts, err := compileOr(val, fieldPath)
			if err != nil {
				return nil, err
			}
			node.ors = append(node.ors, alts)
			continue
		}
		switch t := val.(type) {
		case map[string]any:
			child, err := compileObject(t, fieldPath)
			if err != nil {
				return nil, err
			}
			node.fields = append(node.fields, &fieldNode{name: name, path: fieldPath, object: child})
		case []any:
			if len(t) == 0 {
				return nil, &Error{Path: fieldPath, Reason: "must not be an empty array"}
			}
			f := &fieldNode{name: name, path: fieldPath}
			for _, e := range t {
				m, err := compileMatcher(e, fieldPath)
				if err != nil {
					return nil, err
				}
				f.matchers = append(f.matchers, m)
			}
			node.fields = append(node.fields, f)
		default:
			return nil, &Error{Path: fieldPath, Reason: "must be an object or an array"}
		}
	}
	return node, nil
}

func compileOr(val any, path string) ([]*objectNode, error) {
	arr, ok := val.([]any)
	if !ok || len(arr) < 2 {
		return nil, &Error{Path: path, Reason: "must be an array of at least two objects"}
	}
	alts := make([]*objectNode, 0, len(arr))
	for i, e := range arr {
		obj, ok := e.(map[string]any)
		if !ok {
			return nil, &Error{Path: fmt.Sprintf("%s[%d]", path, i), Reason: "must be an object"}
		}
		// The alternatives apply to the object holding $or, so their fields keep its path.
		alt, err := compileObject(obj, strings.TrimSuffix(strings.TrimSuffix(path, "$or"), "."))
		if err != nil {
			return nil, err
		}
		alts = append(alts, alt)
	}
	return alts, nil
}

func joinPath(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}
