package asl

import (
	"strings"
	"time"
)

// Choice rules. A comparison whose variable has the wrong type is false (the specification's
// rule); a variable path that selects nothing is a States.Runtime error except for IsPresent,
// which exists to test exactly that.

type choiceRule struct {
	and, or  []*choiceRule
	not      *choiceRule
	variable *Path
	op       string
	operand  any // literal for the plain operators
	opPath   *Path
	ts       time.Time
	next     string
}

type operandKind uint8

const (
	kString operandKind = iota
	kNumber
	kBoolean
	kTimestamp
	kPattern
	kTest // Is* operators take a boolean
)

var comparisonOps = map[string]operandKind{
	"StringEquals": kString, "StringLessThan": kString, "StringGreaterThan": kString,
	"StringLessThanEquals": kString, "StringGreaterThanEquals": kString,
	"StringMatches": kPattern,
	"NumericEquals": kNumber, "NumericLessThan": kNumber, "NumericGreaterThan": kNumber,
	"NumericLessThanEquals": kNumber, "NumericGreaterThanEquals": kNumber,
	"BooleanEquals":   kBoolean,
	"TimestampEquals": kTimestamp, "TimestampLessThan": kTimestamp, "TimestampGreaterThan": kTimestamp,
	"TimestampLessThanEquals": kTimestamp, "TimestampGreaterThanEquals": kTimestamp,
	"IsNull": kTest, "IsPresent": kTest, "IsNumeric": kTest, "IsString": kTest, "IsBoolean": kTest, "IsTimestamp": kTest,
}

// pathVariants are the operators that also exist as ...Path.
func hasPathVariant(op string) bool {
	k := comparisonOps[op]
	return k == kString || k == kNumber || k == kBoolean || k == kTimestamp
}

func (c *compiler) choiceRule(v any, at string, top bool) *choiceRule {
	o, ok := v.(*Object)
	if !ok {
		c.schema(at, "A choice rule must be a JSON object")
		return nil
	}
	r := &choiceRule{}
	if top {
		r.next, _ = c.str(o, "Next", at, true)
	} else if _, has := o.Get("Next"); has {
		c.schema(ptr(at, "Next"), "Only top-level choice rules may have \"Next\"")
	}
	var ops []string
	for _, m := range o.Members() {
		switch m.Key {
		case "Next", "Comment", "Variable":
		case "And", "Or":
			arr, isArr := m.Value.([]any)
			if !isArr || len(arr) == 0 {
				c.schema(ptr(at, m.Key), "The field %q must be a non-empty array of choice rules", m.Key)
				ops = append(ops, m.Key)
				continue
			}
			var rules []*choiceRule
			for i, e := range arr {
				if sub := c.choiceRule(e, ptrIdx(ptr(at, m.Key), i), false); sub != nil {
					rules = append(rules, sub)
				}
			}
			if m.Key == "And" {
				r.and = rules
			} else {
				r.or = rules
			}
			ops = append(ops, m.Key)
		case "Not":
			r.not = c.choiceRule(m.Value, ptr(at, "Not"), false)
			ops = append(ops, m.Key)
		default:
			base, isPath := strings.CutSuffix(m.Key, "Path")
			kind, known := comparisonOps[m.Key]
			if !known && isPath && hasPathVariant(base) {
				r.op = base
				s, isStr := m.Value.(string)
				if !isStr {
					c.schema(ptr(at, m.Key), "The field %q must be a JSONPath string", m.Key)
				} else {
					r.opPath = c.compilePath(s, ptr(at, m.Key), m.Key, pathRules{context: true})
				}
				ops = append(ops, m.Key)
				continue
			}
			if !known {
				c.schema(ptr(at, m.Key), "The field %q is not a choice rule operator", m.Key)
				continue
			}
			r.op = m.Key
			ops = append(ops, m.Key)
			c.choiceOperand(r, kind, m.Key, m.Value, ptr(at, m.Key))
		}
	}
	if len(ops) != 1 {
		c.schema(at, "A choice rule must have exactly one of And, Or, Not or a comparison operator, found %d", len(ops))
		return r
	}
	_, hasVar := o.Get("Variable")
	isBoolean := r.and != nil || r.or != nil || r.not != nil || ops[0] == "And" || ops[0] == "Or" || ops[0] == "Not"
	switch {
	case isBoolean && hasVar:
		c.schema(ptr(at, "Variable"), "An And, Or or Not rule must not have \"Variable\"")
	case !isBoolean && !hasVar:
		c.schema(at, "A comparison must have \"Variable\"")
	case !isBoolean:
		s, isStr := c.str(o, "Variable", at, true)
		if isStr {
			r.variable = c.compilePath(s, ptr(at, "Variable"), "Variable", pathRules{context: true})
		}
	}
	return r
}

func (c *compiler) choiceOperand(r *choiceRule, kind operandKind, key string, v any, at string) {
	bad := func(want string) { c.schema(at, "The value of %q must be %s, not %s", key, want, MarshalJSON(v)) }
	switch kind {
	case kString, kPattern:
		s, ok := v.(string)
		if !ok {
			bad("a string")
			return
		}
		r.operand = s
	case kNumber:
		n, ok := v.(Number)
		if !ok {
			bad("a number")
			return
		}
		r.operand = n
	case kBoolean, kTest:
		b, ok := v.(bool)
		if !ok {
			bad("a boolean")
			return
		}
		r.operand = b
	case kTimestamp:
		s, ok := v.(string)
		if !ok {
			bad("a timestamp string")
			return
		}
		t, err := parseTimestamp(s)
		if err != nil {
			bad("an RFC 3339 timestamp with an uppercase T and Z")
			return
		}
		r.ts = t
	}
}

// eval decides the rule for a state's effective input.
func (r *choiceRule) eval(input any, context contextFn) (bool, error) {
	switch {
	case r.and != nil:
		for _, s := range r.and {
			ok, err := s.eval(input, context)
			if err != nil || !ok {
				return false, err
			}
		}
		return true, nil
	case r.or != nil:
		for _, s := range r.or {
			ok, err := s.eval(input, context)
			if err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	case r.not != nil:
		ok, err := r.not.eval(input, context)
		return !ok, err
	}
	doc := input
	if r.variable.context {
		doc = context()
	}
	value, err := r.variable.Eval(doc)
	present := err == nil
	if r.op == "IsPresent" {
		return present == r.operand.(bool), nil
	}
	if !present {
		return false, runtimeError("Invalid path '%s': The choice state's condition path references an invalid value.", r.variable.src)
	}
	kind := comparisonOps[r.op]
	if kind == kTest {
		var is bool
		switch r.op {
		case "IsNull":
			is = value == nil
		case "IsNumeric":
			_, is = value.(Number)
		case "IsString":
			_, is = value.(string)
		case "IsBoolean":
			_, is = value.(bool)
		case "IsTimestamp":
			s, isStr := value.(string)
			_, perr := parseTimestamp(s)
			is = isStr && perr == nil
		}
		return is == r.operand.(bool), nil
	}
	operand := r.operand
	ts := r.ts
	if r.opPath != nil {
		odoc := input
		if r.opPath.context {
			odoc = context()
		}
		v, err := r.opPath.Eval(odoc)
		if err != nil {
			return false, runtimeError("Invalid path '%s': The choice state's condition path references an invalid value.", r.opPath.src)
		}
		operand = v
		if kind == kTimestamp {
			s, isStr := v.(string)
			t, perr := parseTimestamp(s)
			if !isStr || perr != nil {
				return false, nil
			}
			ts = t
		}
	}
	switch kind {
	case kString:
		a, ok1 := value.(string)
		b, ok2 := operand.(string)
		if !ok1 || !ok2 {
			return false, nil
		}
		return compareResult(r.op, strings.Compare(a, b)), nil
	case kPattern:
		a, ok := value.(string)
		return ok && wildcardMatch(operand.(string), a), nil
	case kNumber:
		a, ok1 := value.(Number)
		b, ok2 := operand.(Number)
		if !ok1 || !ok2 {
			return false, nil
		}
		return compareResult(r.op, compareNumbers(a, b)), nil
	case kBoolean:
		a, ok1 := value.(bool)
		b, ok2 := operand.(bool)
		return ok1 && ok2 && a == b, nil
	case kTimestamp:
		s, ok := value.(string)
		if !ok {
			return false, nil
		}
		t, perr := parseTimestamp(s)
		if perr != nil {
			return false, nil
		}
		return compareResult(r.op, t.Compare(ts)), nil
	}
	return false, nil
}

func compareResult(op string, cmp int) bool {
	switch {
	case strings.HasSuffix(op, "GreaterThanEquals"):
		return cmp >= 0
	case strings.HasSuffix(op, "LessThanEquals"):
		return cmp <= 0
	case strings.HasSuffix(op, "GreaterThan"):
		return cmp > 0
	case strings.HasSuffix(op, "LessThan"):
		return cmp < 0
	}
	return cmp == 0
}

// wildcardMatch implements StringMatches: * matches any run of characters, \* a literal star
// and \\ a literal backslash.
func wildcardMatch(pattern, s string) bool {
	type tok struct {
		star bool
		ch   rune
	}
	var toks []tok
	rs := []rune(pattern)
	for i := 0; i < len(rs); i++ {
		switch {
		case rs[i] == '\\' && i+1 < len(rs):
			toks = append(toks, tok{ch: rs[i+1]})
			i++
		case rs[i] == '*':
			toks = append(toks, tok{star: true})
		default:
			toks = append(toks, tok{ch: rs[i]})
		}
	}
	str := []rune(s)
	// Classic greedy matcher with backtracking to the last star.
	ti, si, starTok, starStr := 0, 0, -1, 0
	for si < len(str) {
		switch {
		case ti < len(toks) && !toks[ti].star && toks[ti].ch == str[si]:
			ti++
			si++
		case ti < len(toks) && toks[ti].star:
			starTok, starStr = ti, si
			ti++
		case starTok >= 0:
			ti = starTok + 1
			starStr++
			si = starStr
		default:
			return false
		}
	}
	for ti < len(toks) && toks[ti].star {
		ti++
	}
	return ti == len(toks)
}
