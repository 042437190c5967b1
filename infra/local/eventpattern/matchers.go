package eventpattern

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
)

// matcher is one entry of a leaf field's array. It sees all scalar values found at the field
// (none when the field is absent), because exists:false is about absence, not about a value.
type matcher interface {
	matchLeaves(leaves []any) bool
}

// valueMatcher matches when any single scalar value matches.
type valueMatcher func(v any) bool

func (m valueMatcher) matchLeaves(leaves []any) bool {
	for _, v := range leaves {
		if m(v) {
			return true
		}
	}
	return false
}

type existsMatcher bool

func (m existsMatcher) matchLeaves(leaves []any) bool { return (len(leaves) > 0) == bool(m) }

func compileMatcher(e any, path string) (matcher, error) {
	switch t := e.(type) {
	case string:
		return valueMatcher(func(v any) bool { s, ok := v.(string); return ok && s == t }), nil
	case json.Number:
		n, err := t.Float64()
		if err != nil {
			return nil, &Error{Path: path, Reason: "has a number out of range: " + t.String()}
		}
		return valueMatcher(func(v any) bool { f, ok := number(v); return ok && f == n }), nil
	case bool:
		return valueMatcher(func(v any) bool { b, ok := v.(bool); return ok && b == t }), nil
	case nil:
		return valueMatcher(func(v any) bool { return v == nil }), nil
	case map[string]any:
		return compileOperator(t, path)
	case []any:
		return nil, &Error{Path: path, Reason: "must not contain a nested array"}
	}
	return nil, &Error{Path: path, Reason: fmt.Sprintf("has an unsupported value %v", e)}
}

func compileOperator(op map[string]any, path string) (matcher, error) {
	if len(op) != 1 {
		return nil, &Error{Path: path, Reason: "must use exactly one operator per object, e.g. {\"prefix\": \"x\"}"}
	}
	for name, arg := range op {
		switch name {
		case "prefix":
			return compileAffix(arg, path, "prefix", strings.HasPrefix)
		case "suffix":
			return compileAffix(arg, path, "suffix", strings.HasSuffix)
		case "equals-ignore-case":
			s, ok := arg.(string)
			if !ok {
				return nil, &Error{Path: path, Reason: "equals-ignore-case must be a string"}
			}
			return valueMatcher(func(v any) bool { x, ok := v.(string); return ok && strings.EqualFold(x, s) }), nil
		case "wildcard":
			s, ok := arg.(string)
			if !ok {
				return nil, &Error{Path: path, Reason: "wildcard must be a string"}
			}
			w, err := compileWildcard(s)
			if err != nil {
				return nil, &Error{Path: path, Reason: err.Error()}
			}
			return valueMatcher(func(v any) bool { x, ok := v.(string); return ok && w.match(x) }), nil
		case "anything-but":
			return compileAnythingBut(arg, path)
		case "numeric":
			return compileNumeric(arg, path)
		case "exists":
			b, ok := arg.(bool)
			if !ok {
				return nil, &Error{Path: path, Reason: "exists must be true or false"}
			}
			return existsMatcher(b), nil
		case "cidr":
			s, ok := arg.(string)
			if !ok {
				return nil, &Error{Path: path, Reason: "cidr must be a string"}
			}
			prefix, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, &Error{Path: path, Reason: "cidr " + strconv.Quote(s) + " is not a valid CIDR block"}
			}
			prefix = prefix.Masked()
			return valueMatcher(func(v any) bool {
				x, ok := v.(string)
				if !ok {
					return false
				}
				addr, err := netip.ParseAddr(x)
				return err == nil && prefix.Contains(addr)
			}), nil
		default:
			return nil, &Error{Path: path, Reason: "uses an unrecognized operator " + strconv.Quote(name)}
		}
	}
	panic("unreachable")
}

// compileAffix handles prefix and suffix, whose argument is a string or
// {"equals-ignore-case": string}.
func compileAffix(arg any, path, name string, has func(s, affix string) bool) (matcher, error) {
	switch t := arg.(type) {
	case string:
		return valueMatcher(func(v any) bool { x, ok := v.(string); return ok && has(x, t) }), nil
	case map[string]any:
		s, ok := t["equals-ignore-case"].(string)
		if len(t) != 1 || !ok {
			return nil, &Error{Path: path, Reason: name + " must be a string or {\"equals-ignore-case\": string}"}
		}
		folded := strings.ToLower(s)
		return valueMatcher(func(v any) bool {
			x, ok := v.(string)
			return ok && has(strings.ToLower(x), folded)
		}), nil
	}
	return nil, &Error{Path: path, Reason: name + " must be a string or {\"equals-ignore-case\": string}"}
}

func compileAnythingBut(arg any, path string) (matcher, error) {
	switch t := arg.(type) {
	case string, json.Number:
		return compileAnythingBut([]any{t}, path)
	case []any:
		if len(t) == 0 {
			return nil, &Error{Path: path, Reason: "anything-but must not be an empty array"}
		}
		var strs []string
		var nums []float64
		for _, e := range t {
			switch x := e.(type) {
			case string:
				strs = append(strs, x)
			case json.Number:
				f, err := x.Float64()
				if err != nil {
					return nil, &Error{Path: path, Reason: "anything-but has a number out of range: " + x.String()}
				}
				nums = append(nums, f)
			default:
				return nil, &Error{Path: path, Reason: "anything-but values must be strings or numbers"}
			}
		}
		if len(strs) > 0 && len(nums) > 0 {
			return nil, &Error{Path: path, Reason: "anything-but values must be all strings or all numbers"}
		}
		return valueMatcher(func(v any) bool {
			if s, ok := v.(string); ok {
				for _, x := range strs {
					if s == x {
						return false
					}
				}
				return true
			}
			if f, ok := number(v); ok {
				for _, x := range nums {
					if f == x {
						return false
					}
				}
				return true
			}
			return true // a boolean or null is never one of the excluded strings or numbers
		}), nil
	case map[string]any:
		if len(t) != 1 {
			return nil, &Error{Path: path, Reason: "anything-but must use exactly one of prefix, suffix, equals-ignore-case, wildcard"}
		}
		for name, inner := range t {
			values, ok := stringList(inner)
			if !ok {
				return nil, &Error{Path: path, Reason: "anything-but " + name + " must be a string or an array of strings"}
			}
			var excluded func(s string) bool
			switch name {
			case "prefix":
				excluded = func(s string) bool { return anyOf(values, func(p string) bool { return strings.HasPrefix(s, p) }) }
			case "suffix":
				excluded = func(s string) bool { return anyOf(values, func(p string) bool { return strings.HasSuffix(s, p) }) }
			case "equals-ignore-case":
				excluded = func(s string) bool { return anyOf(values, func(p string) bool { return strings.EqualFold(s, p) }) }
			case "wildcard":
				ws := make([]*wildcard, 0, len(values))
				for _, p := range values {
					w, err := compileWildcard(p)
					if err != nil {
						return nil, &Error{Path: path, Reason: err.Error()}
					}
					ws = append(ws, w)
				}
				excluded = func(s string) bool {
					for _, w := range ws {
						if w.match(s) {
							return true
						}
					}
					return false
				}
			default:
				return nil, &Error{Path: path, Reason: "anything-but does not support " + strconv.Quote(name)}
			}
			// These forms only apply to strings: a number is never matched by them.
			return valueMatcher(func(v any) bool { s, ok := v.(string); return ok && !excluded(s) }), nil
		}
	}
	return nil, &Error{Path: path, Reason: "anything-but must be a string, a number, an array, or an object"}
}

func stringList(v any) ([]string, bool) {
	switch t := v.(type) {
	case string:
		return []string{t}, true
	case []any:
		if len(t) == 0 {
			return nil, false
		}
		out := make([]string, 0, len(t))
		for _, e := range t {
			s, ok := e.(string)
			if !ok {
				return nil, false
			}
			out = append(out, s)
		}
		return out, true
	}
	return nil, false
}

func anyOf(values []string, f func(string) bool) bool {
	for _, v := range values {
		if f(v) {
			return true
		}
	}
	return false
}

// compileNumeric accepts ["=", n], or one lower bound (">" or ">=") and/or one upper bound
// ("<" or "<=").
func compileNumeric(arg any, path string) (matcher, error) {
	arr, ok := arg.([]any)
	if !ok || len(arr) == 0 || len(arr)%2 != 0 || len(arr) > 4 {
		return nil, &Error{Path: path, Reason: "numeric must be an array of operator, number pairs, e.g. [\">\", 0, \"<=\", 5]"}
	}
	lo, hi := math.Inf(-1), math.Inf(1)
	loOpen, hiOpen := true, true
	var haveLo, haveHi, haveEq bool
	for i := 0; i < len(arr); i += 2 {
		op, ok := arr[i].(string)
		if !ok {
			return nil, &Error{Path: path, Reason: "numeric operators must be strings"}
		}
		n, ok := arr[i+1].(json.Number)
		if !ok {
			return nil, &Error{Path: path, Reason: "numeric operator " + strconv.Quote(op) + " must be followed by a number"}
		}
		f, err := n.Float64()
		if err != nil {
			return nil, &Error{Path: path, Reason: "numeric has a number out of range: " + n.String()}
		}
		switch op {
		case "=":
			if len(arr) != 2 {
				return nil, &Error{Path: path, Reason: "numeric \"=\" cannot be combined with other operators"}
			}
			haveEq, lo, hi, loOpen, hiOpen = true, f, f, false, false
		case ">", ">=":
			if haveLo {
				return nil, &Error{Path: path, Reason: "numeric has more than one lower bound"}
			}
			haveLo, lo, loOpen = true, f, op == ">"
		case "<", "<=":
			if haveHi {
				return nil, &Error{Path: path, Reason: "numeric has more than one upper bound"}
			}
			haveHi, hi, hiOpen = true, f, op == "<"
		default:
			return nil, &Error{Path: path, Reason: "numeric operator " + strconv.Quote(op) + " is not one of =, <, <=, >, >="}
		}
	}
	if !haveEq && haveLo && haveHi && (lo > hi || (lo == hi && (loOpen || hiOpen))) {
		return nil, &Error{Path: path, Reason: "numeric range is empty: the lower bound is not below the upper bound"}
	}
	return valueMatcher(func(v any) bool {
		f, ok := number(v)
		if !ok {
			return false
		}
		if f < lo || (loOpen && f == lo) {
			return false
		}
		if f > hi || (hiOpen && f == hi) {
			return false
		}
		return true
	}), nil
}

// number returns the value of a JSON number decoded either way; strings are not numbers.
func number(v any) (float64, bool) {
	switch t := v.(type) {
	case json.Number:
		f, err := t.Float64()
		return f, err == nil
	case float64:
		return t, true
	case int:
		return float64(t), true
	case int64:
		return float64(t), true
	}
	return 0, false
}

// wildcard is a pattern where '*' matches any run of characters; "\*" is a literal star
// and "\\" a literal backslash.
type wildcard struct {
	parts []string // literal parts between stars
}

func compileWildcard(s string) (*wildcard, error) {
	var parts []string
	var cur strings.Builder
	prevStar := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			if i+1 >= len(s) || (s[i+1] != '*' && s[i+1] != '\\') {
				return nil, fmt.Errorf("wildcard %q: a backslash may only escape '*' or '\\'", s)
			}
			cur.WriteByte(s[i+1])
			i++
			prevStar = false
		case '*':
			if prevStar {
				return nil, fmt.Errorf("wildcard %q: consecutive '*' characters are not allowed", s)
			}
			parts = append(parts, cur.String())
			cur.Reset()
			prevStar = true
		default:
			cur.WriteByte(c)
			prevStar = false
		}
	}
	parts = append(parts, cur.String())
	return &wildcard{parts: parts}, nil
}

func (w *wildcard) match(s string) bool {
	if len(w.parts) == 1 {
		return s == w.parts[0]
	}
	first, last := w.parts[0], w.parts[len(w.parts)-1]
	if !strings.HasPrefix(s, first) || len(s) < len(first)+len(last) || !strings.HasSuffix(s, last) {
		return false
	}
	mid := s[len(first) : len(s)-len(last)]
	// Greedy leftmost matching of the middle parts is correct for '*'-only patterns.
	for _, p := range w.parts[1 : len(w.parts)-1] {
		i := strings.Index(mid, p)
		if i < 0 {
			return false
		}
		mid = mid[i+len(p):]
	}
	return true
}
