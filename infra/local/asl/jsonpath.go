package asl

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// JSONPath as Step Functions evaluates it. AWS uses the Jayway JsonPath library, so this
// follows Jayway: a definite path (only names and indexes) yields one value or fails with
// "No results for path"; an indefinite path (wildcards, deep scan, slices, unions, filters)
// yields an array of everything it matched, possibly empty.

type segKind uint8

const (
	segChild segKind = iota
	segIndex
	segWildcard
	segSlice
	segUnionNames
	segUnionIndexes
	segFilter
	segDeep // recursive descent, applies sel at every level
)

type segment struct {
	kind    segKind
	name    string
	index   int
	names   []string
	indexes []int
	from    *int
	to      *int
	filter  filterExpr
	sel     *segment // for segDeep
}

// Path is a compiled JSONPath.
type Path struct {
	src      string
	context  bool // $$: reads the context object
	segs     []segment
	definite bool
}

func (p *Path) String() string { return p.src }

// IsReference reports whether p is a Reference Path: only names and single indexes, so it
// names exactly one place (what ResultPath and the ...Path timing fields require).
func (p *Path) IsReference() bool {
	for _, s := range p.segs {
		if s.kind != segChild && s.kind != segIndex {
			return false
		}
	}
	return true
}

// CompilePath parses a JSONPath. A leading "$$" marks a context-object path.
func CompilePath(src string) (*Path, error) {
	if !strings.HasPrefix(src, "$") {
		return nil, fmt.Errorf("the path %q must begin with '$'", src)
	}
	p := &Path{src: src, definite: true}
	rest := src[1:]
	if strings.HasPrefix(rest, "$") {
		p.context = true
		rest = rest[1:]
	}
	sc := &pathScanner{s: rest, src: src}
	segs, err := sc.segments()
	if err != nil {
		return nil, err
	}
	p.segs = segs
	for _, s := range segs {
		if s.kind != segChild && s.kind != segIndex {
			p.definite = false
		}
	}
	return p, nil
}

type pathScanner struct {
	s   string
	pos int
	src string
}

func (sc *pathScanner) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSONPath %q: %s", sc.src, fmt.Sprintf(format, args...))
}

func (sc *pathScanner) segments() ([]segment, error) {
	var segs []segment
	for sc.pos < len(sc.s) {
		c := sc.s[sc.pos]
		switch c {
		case '.':
			if strings.HasPrefix(sc.s[sc.pos:], "..") {
				sc.pos += 2
				sel, err := sc.afterDot(true)
				if err != nil {
					return nil, err
				}
				segs = append(segs, segment{kind: segDeep, sel: &sel})
				continue
			}
			sc.pos++
			seg, err := sc.afterDot(false)
			if err != nil {
				return nil, err
			}
			segs = append(segs, seg)
		case '[':
			seg, err := sc.bracket()
			if err != nil {
				return nil, err
			}
			segs = append(segs, seg)
		default:
			return nil, sc.errorf("unexpected %q at offset %d", c, sc.pos+1)
		}
	}
	return segs, nil
}

// afterDot reads what follows '.' or '..': a name, '*', or (after '..') a bracket.
func (sc *pathScanner) afterDot(deep bool) (segment, error) {
	if sc.pos >= len(sc.s) {
		return segment{}, sc.errorf("the path must not end with '.'")
	}
	switch sc.s[sc.pos] {
	case '*':
		sc.pos++
		return segment{kind: segWildcard}, nil
	case '[':
		if deep {
			return sc.bracket()
		}
		return segment{}, sc.errorf("'.' must be followed by a name")
	case '.':
		return segment{}, sc.errorf("unexpected '...'")
	}
	start := sc.pos
	for sc.pos < len(sc.s) && sc.s[sc.pos] != '.' && sc.s[sc.pos] != '[' {
		if sc.s[sc.pos] == ' ' || sc.s[sc.pos] == '\t' {
			return segment{}, sc.errorf("a name in dot notation must not contain spaces; use ['...']")
		}
		sc.pos++
	}
	return segment{kind: segChild, name: sc.s[start:sc.pos]}, nil
}

func (sc *pathScanner) bracket() (segment, error) {
	sc.pos++ // [
	sc.skipSpace()
	if sc.pos >= len(sc.s) {
		return segment{}, sc.errorf("unterminated '['")
	}
	switch c := sc.s[sc.pos]; {
	case c == '*':
		sc.pos++
		if err := sc.closeBracket(); err != nil {
			return segment{}, err
		}
		return segment{kind: segWildcard}, nil
	case c == '?':
		sc.pos++
		sc.skipSpace()
		if sc.pos >= len(sc.s) || sc.s[sc.pos] != '(' {
			return segment{}, sc.errorf("a filter must look like [?(...)]")
		}
		end := matchingParen(sc.s, sc.pos)
		if end < 0 {
			return segment{}, sc.errorf("unbalanced parentheses in a filter")
		}
		f, err := compileFilter(sc.s[sc.pos+1:end], sc.src)
		if err != nil {
			return segment{}, err
		}
		sc.pos = end + 1
		if err := sc.closeBracket(); err != nil {
			return segment{}, err
		}
		return segment{kind: segFilter, filter: f}, nil
	case c == '\'' || c == '"':
		var names []string
		for {
			sc.skipSpace()
			name, err := sc.quoted()
			if err != nil {
				return segment{}, err
			}
			names = append(names, name)
			sc.skipSpace()
			if sc.pos < len(sc.s) && sc.s[sc.pos] == ',' {
				sc.pos++
				continue
			}
			break
		}
		if err := sc.closeBracket(); err != nil {
			return segment{}, err
		}
		if len(names) == 1 {
			return segment{kind: segChild, name: names[0]}, nil
		}
		return segment{kind: segUnionNames, names: names}, nil
	case c == '-' || c == ':' || (c >= '0' && c <= '9'):
		var nums []int
		var from, to *int
		isSlice := false
		for {
			sc.skipSpace()
			if sc.pos < len(sc.s) && sc.s[sc.pos] == ':' {
				if isSlice {
					return segment{}, sc.errorf("slices with a step are not supported")
				}
				isSlice = true
				sc.pos++
				continue
			}
			n, ok := sc.integer()
			if !ok {
				break
			}
			if isSlice {
				v := n
				to = &v
			} else {
				nums = append(nums, n)
			}
			sc.skipSpace()
			if sc.pos < len(sc.s) && sc.s[sc.pos] == ',' && !isSlice {
				sc.pos++
				continue
			}
			if sc.pos < len(sc.s) && sc.s[sc.pos] == ':' {
				continue
			}
			break
		}
		if err := sc.closeBracket(); err != nil {
			return segment{}, err
		}
		if isSlice {
			if len(nums) > 1 {
				return segment{}, sc.errorf("a slice takes at most one start index")
			}
			if len(nums) == 1 {
				v := nums[0]
				from = &v
			}
			return segment{kind: segSlice, from: from, to: to}, nil
		}
		if len(nums) == 0 {
			return segment{}, sc.errorf("empty index")
		}
		if len(nums) == 1 {
			return segment{kind: segIndex, index: nums[0]}, nil
		}
		return segment{kind: segUnionIndexes, indexes: nums}, nil
	default:
		return segment{}, sc.errorf("unexpected %q after '['", c)
	}
}

func (sc *pathScanner) skipSpace() {
	for sc.pos < len(sc.s) && (sc.s[sc.pos] == ' ' || sc.s[sc.pos] == '\t') {
		sc.pos++
	}
}

func (sc *pathScanner) closeBracket() error {
	sc.skipSpace()
	if sc.pos >= len(sc.s) || sc.s[sc.pos] != ']' {
		return sc.errorf("expected ']'")
	}
	sc.pos++
	return nil
}

func (sc *pathScanner) integer() (int, bool) {
	start := sc.pos
	if sc.pos < len(sc.s) && sc.s[sc.pos] == '-' {
		sc.pos++
	}
	for sc.pos < len(sc.s) && sc.s[sc.pos] >= '0' && sc.s[sc.pos] <= '9' {
		sc.pos++
	}
	n, err := strconv.Atoi(sc.s[start:sc.pos])
	if err != nil {
		sc.pos = start
		return 0, false
	}
	return n, true
}

func (sc *pathScanner) quoted() (string, error) {
	if sc.pos >= len(sc.s) || (sc.s[sc.pos] != '\'' && sc.s[sc.pos] != '"') {
		return "", sc.errorf("expected a quoted name")
	}
	q := sc.s[sc.pos]
	sc.pos++
	var b strings.Builder
	for sc.pos < len(sc.s) {
		c := sc.s[sc.pos]
		if c == '\\' && sc.pos+1 < len(sc.s) {
			b.WriteByte(sc.s[sc.pos+1])
			sc.pos += 2
			continue
		}
		if c == q {
			sc.pos++
			return b.String(), nil
		}
		b.WriteByte(c)
		sc.pos++
	}
	return "", sc.errorf("unterminated quoted name")
}

func matchingParen(s string, open int) int {
	depth := 0
	var quote byte
	for i := open; i < len(s); i++ {
		c := s[i]
		if quote != 0 {
			if c == '\\' {
				i++
			} else if c == quote {
				quote = 0
			}
			continue
		}
		switch c {
		case '\'', '"':
			quote = c
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

// errNoResults is the Jayway "No results for path" failure of a definite path.
var errNoResults = errors.New("no results")

// Eval applies the path to doc. A definite path returns its single value; an indefinite path
// returns an array of its matches.
func (p *Path) Eval(doc any) (any, error) {
	if p.definite {
		cur := doc
		for _, s := range p.segs {
			next, ok := step(cur, s)
			if !ok {
				return nil, errNoResults
			}
			cur = next
		}
		return cur, nil
	}
	nodes := []any{doc}
	for _, s := range p.segs {
		var out []any
		for _, n := range nodes {
			out = apply(out, n, s, doc)
		}
		nodes = out
	}
	if nodes == nil {
		nodes = []any{}
	}
	return nodes, nil
}

func step(cur any, s segment) (any, bool) {
	switch s.kind {
	case segChild:
		if o, ok := cur.(*Object); ok {
			return o.Get(s.name)
		}
	case segIndex:
		if a, ok := cur.([]any); ok {
			i := s.index
			if i < 0 {
				i += len(a)
			}
			if i >= 0 && i < len(a) {
				return a[i], true
			}
		}
	}
	return nil, false
}

func apply(out []any, n any, s segment, root any) []any {
	switch s.kind {
	case segChild, segIndex:
		if v, ok := step(n, s); ok {
			out = append(out, v)
		}
	case segWildcard:
		switch t := n.(type) {
		case *Object:
			for _, m := range t.members {
				out = append(out, m.Value)
			}
		case []any:
			out = append(out, t...)
		}
	case segUnionNames:
		if o, ok := n.(*Object); ok {
			for _, name := range s.names {
				if v, ok := o.Get(name); ok {
					out = append(out, v)
				}
			}
		}
	case segUnionIndexes:
		for _, i := range s.indexes {
			if v, ok := step(n, segment{kind: segIndex, index: i}); ok {
				out = append(out, v)
			}
		}
	case segSlice:
		if a, ok := n.([]any); ok {
			from, to := 0, len(a)
			if s.from != nil {
				from = *s.from
				if from < 0 {
					from += len(a)
				}
			}
			if s.to != nil {
				to = *s.to
				if to < 0 {
					to += len(a)
				}
			}
			from = max(0, min(from, len(a)))
			to = max(0, min(to, len(a)))
			if from < to {
				out = append(out, a[from:to]...)
			}
		}
	case segFilter:
		switch t := n.(type) {
		case []any:
			for _, e := range t {
				if s.filter.match(e, root) {
					out = append(out, e)
				}
			}
		case *Object:
			if s.filter.match(t, root) {
				out = append(out, t)
			}
		}
	case segDeep:
		out = apply(out, n, *s.sel, root)
		switch t := n.(type) {
		case *Object:
			for _, m := range t.members {
				out = apply(out, m.Value, s, root)
			}
		case []any:
			for _, e := range t {
				out = apply(out, e, s, root)
			}
		}
	}
	return out
}

// normalized renders the path the way Jayway's error messages do: $['a']['b'][0].
func (p *Path) normalized() string {
	var b strings.Builder
	if p.context {
		b.WriteString("$$")
	} else {
		b.WriteString("$")
	}
	for _, s := range p.segs {
		switch s.kind {
		case segChild:
			b.WriteString("['" + s.name + "']")
		case segIndex:
			b.WriteString("[" + strconv.Itoa(s.index) + "]")
		default:
			return p.src
		}
	}
	return b.String()
}

// errResultPathMismatch means a Reference Path cannot be written into the value it was given.
var errResultPathMismatch = errors.New("result path mismatch")

// Set returns a copy of doc with value placed at the Reference Path p, creating missing
// objects on the way, as ResultPath does.
func (p *Path) Set(doc, value any) (any, error) {
	return setAt(doc, p.segs, value)
}

func setAt(cur any, segs []segment, value any) (any, error) {
	if len(segs) == 0 {
		return value, nil
	}
	s := segs[0]
	switch s.kind {
	case segChild:
		var o *Object
		switch t := cur.(type) {
		case *Object:
			o = t
		case nil:
			o = &Object{}
		default:
			return nil, errResultPathMismatch
		}
		child, _ := o.Get(s.name)
		if child == nil && len(segs) > 1 && segs[1].kind == segChild {
			child = &Object{}
		}
		v, err := setAt(child, segs[1:], value)
		if err != nil {
			return nil, err
		}
		return o.With(s.name, v), nil
	case segIndex:
		a, ok := cur.([]any)
		if !ok {
			return nil, errResultPathMismatch
		}
		i := s.index
		if i < 0 {
			i += len(a)
		}
		if i < 0 || i >= len(a) {
			return nil, errResultPathMismatch
		}
		v, err := setAt(a[i], segs[1:], value)
		if err != nil {
			return nil, err
		}
		c := append([]any(nil), a...)
		c[i] = v
		return c, nil
	}
	return nil, errResultPathMismatch
}

// Filters: the subset of Jayway's filter language that workflows use, compiled up front so a
// definition using anything else is refused at creation.

type filterExpr interface {
	match(cur, root any) bool
}

type filterAnd struct{ a, b filterExpr }
type filterOr struct{ a, b filterExpr }
type filterNot struct{ e filterExpr }
type filterExists struct{ op operand }
type filterCompare struct {
	left, right operand
	op          string
	re          *regexp.Regexp
}

func (f filterAnd) match(c, r any) bool { return f.a.match(c, r) && f.b.match(c, r) }
func (f filterOr) match(c, r any) bool  { return f.a.match(c, r) || f.b.match(c, r) }
func (f filterNot) match(c, r any) bool { return !f.e.match(c, r) }
func (f filterExists) match(c, r any) bool {
	v, ok := f.op.value(c, r)
	if !ok {
		return false
	}
	if b, isBool := v.(bool); isBool {
		return b
	}
	return true
}

func (f filterCompare) match(c, r any) bool {
	l, ok := f.left.value(c, r)
	if !ok {
		return false
	}
	if f.op == "=~" {
		s, ok := l.(string)
		return ok && f.re.MatchString(s)
	}
	rv, ok := f.right.value(c, r)
	if !ok {
		return false
	}
	switch f.op {
	case "==":
		return Equal(l, rv)
	case "!=":
		return !Equal(l, rv)
	}
	cmp, ok := compareOrdered(l, rv)
	if !ok {
		return false
	}
	switch f.op {
	case "<":
		return cmp < 0
	case "<=":
		return cmp <= 0
	case ">":
		return cmp > 0
	case ">=":
		return cmp >= 0
	}
	return false
}

func compareOrdered(a, b any) (int, bool) {
	switch x := a.(type) {
	case Number:
		if y, ok := b.(Number); ok {
			return compareNumbers(x, y), true
		}
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y), true
		}
	}
	return 0, false
}

type operand struct {
	path    *Path // @... or $...
	current bool  // path is relative to @
	literal any
	isLit   bool
}

func (o operand) value(cur, root any) (any, bool) {
	if o.isLit {
		return o.literal, true
	}
	base := root
	if o.current {
		base = cur
	}
	v, err := o.path.Eval(base)
	if err != nil {
		return nil, false
	}
	return v, true
}

type filterParser struct {
	s   string
	pos int
	src string
}

func compileFilter(s, src string) (filterExpr, error) {
	fp := &filterParser{s: s, src: src}
	e, err := fp.or()
	if err != nil {
		return nil, err
	}
	fp.space()
	if fp.pos != len(fp.s) {
		return nil, fp.errorf("unexpected %q", fp.s[fp.pos:])
	}
	return e, nil
}

func (fp *filterParser) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid JSONPath filter in %q: %s", fp.src, fmt.Sprintf(format, args...))
}

func (fp *filterParser) space() {
	for fp.pos < len(fp.s) && (fp.s[fp.pos] == ' ' || fp.s[fp.pos] == '\t') {
		fp.pos++
	}
}

func (fp *filterParser) eat(tok string) bool {
	fp.space()
	if strings.HasPrefix(fp.s[fp.pos:], tok) {
		fp.pos += len(tok)
		return true
	}
	return false
}

func (fp *filterParser) or() (filterExpr, error) {
	l, err := fp.and()
	if err != nil {
		return nil, err
	}
	for fp.eat("||") {
		r, err := fp.and()
		if err != nil {
			return nil, err
		}
		l = filterOr{l, r}
	}
	return l, nil
}

func (fp *filterParser) and() (filterExpr, error) {
	l, err := fp.unary()
	if err != nil {
		return nil, err
	}
	for fp.eat("&&") {
		r, err := fp.unary()
		if err != nil {
			return nil, err
		}
		l = filterAnd{l, r}
	}
	return l, nil
}

func (fp *filterParser) unary() (filterExpr, error) {
	fp.space()
	if strings.HasPrefix(fp.s[fp.pos:], "!") && !strings.HasPrefix(fp.s[fp.pos:], "!=") {
		fp.pos++
		e, err := fp.unary()
		if err != nil {
			return nil, err
		}
		return filterNot{e}, nil
	}
	if fp.eat("(") {
		e, err := fp.or()
		if err != nil {
			return nil, err
		}
		if !fp.eat(")") {
			return nil, fp.errorf("expected ')'")
		}
		return e, nil
	}
	left, err := fp.operand()
	if err != nil {
		return nil, err
	}
	for _, op := range []string{"==", "!=", "<=", ">=", "=~", "<", ">"} {
		if !fp.eat(op) {
			continue
		}
		if op == "=~" {
			fp.space()
			re, err := fp.regex()
			if err != nil {
				return nil, err
			}
			return filterCompare{left: left, op: op, re: re}, nil
		}
		right, err := fp.operand()
		if err != nil {
			return nil, err
		}
		return filterCompare{left: left, right: right, op: op}, nil
	}
	fp.space()
	for _, word := range []string{" in ", " nin ", " subsetof ", " anyof ", " noneof ", " size ", " empty "} {
		if strings.HasPrefix(" "+fp.s[fp.pos:], word) {
			return nil, fp.errorf("the filter operator %q is not supported", strings.TrimSpace(word))
		}
	}
	if left.isLit {
		return nil, fp.errorf("a literal alone is not a condition")
	}
	return filterExists{left}, nil
}

func (fp *filterParser) operand() (operand, error) {
	fp.space()
	if fp.pos >= len(fp.s) {
		return operand{}, fp.errorf("expected an operand")
	}
	c := fp.s[fp.pos]
	switch {
	case c == '@' || c == '$':
		start := fp.pos
		fp.pos++
		for fp.pos < len(fp.s) {
			ch := fp.s[fp.pos]
			if ch == '[' {
				end := strings.IndexByte(fp.s[fp.pos:], ']')
				if end < 0 {
					return operand{}, fp.errorf("unterminated '['")
				}
				fp.pos += end + 1
				continue
			}
			if ch == ' ' || ch == ')' || ch == '=' || ch == '!' || ch == '<' || ch == '>' || ch == '&' || ch == '|' {
				break
			}
			fp.pos++
		}
		text := fp.s[start:fp.pos]
		current := c == '@'
		if current {
			text = "$" + text[1:]
		}
		p, err := CompilePath(text)
		if err != nil {
			return operand{}, err
		}
		if p.context {
			return operand{}, fp.errorf("the context object cannot be used in a filter")
		}
		return operand{path: p, current: current}, nil
	case c == '\'' || c == '"':
		sc := &pathScanner{s: fp.s, pos: fp.pos, src: fp.src}
		str, err := sc.quoted()
		if err != nil {
			return operand{}, err
		}
		fp.pos = sc.pos
		return operand{literal: str, isLit: true}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		start := fp.pos
		fp.pos++
		for fp.pos < len(fp.s) && strings.IndexByte("0123456789.eE+-", fp.s[fp.pos]) >= 0 {
			fp.pos++
		}
		v, err := ParseJSON([]byte(fp.s[start:fp.pos]))
		if err != nil {
			return operand{}, fp.errorf("invalid number %q", fp.s[start:fp.pos])
		}
		return operand{literal: v, isLit: true}, nil
	}
	for _, lit := range []string{"true", "false", "null"} {
		if strings.HasPrefix(fp.s[fp.pos:], lit) {
			fp.pos += len(lit)
			return operand{literal: MustParseJSON(lit), isLit: true}, nil
		}
	}
	return operand{}, fp.errorf("unexpected %q", fp.s[fp.pos:])
}

func (fp *filterParser) regex() (*regexp.Regexp, error) {
	if fp.pos >= len(fp.s) || fp.s[fp.pos] != '/' {
		return nil, fp.errorf("=~ must be followed by /regex/")
	}
	end := strings.LastIndexByte(fp.s, '/')
	if end <= fp.pos {
		return nil, fp.errorf("unterminated regex")
	}
	pattern := fp.s[fp.pos+1 : end]
	fp.pos = end + 1
	flags := ""
	for fp.pos < len(fp.s) && fp.s[fp.pos] >= 'a' && fp.s[fp.pos] <= 'z' {
		flags += string(fp.s[fp.pos])
		fp.pos++
	}
	if flags != "" {
		if flags != "i" {
			return nil, fp.errorf("regex flags other than 'i' are not supported")
		}
		pattern = "(?i)" + pattern
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fp.errorf("invalid regex: %v", err)
	}
	return re, nil
}
