package asl

import (
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"math"
	mrand "math/rand/v2"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Intrinsic functions (States.Format and friends) are compiled when the definition is created,
// so an unknown function, a wrong argument count or a malformed literal is refused with the
// definition instead of failing an execution later.

type argKind uint8

const (
	argLiteral argKind = iota
	argPath
	argCall
)

type intrinsicArg struct {
	kind argKind
	lit  any
	raw  string // a string literal as written, escapes included (States.Format's template needs them)
	path *Path
	call *intrinsic
}

type intrinsic struct {
	name string
	args []intrinsicArg
	src  string
}

// maxIntrinsicNesting is AWS's limit on functions nested in one field.
const maxIntrinsicNesting = 10

type arity struct{ min, max int } // max -1: unbounded

var intrinsicArity = map[string]arity{
	"States.Format":         {1, -1},
	"States.StringToJson":   {1, 1},
	"States.JsonToString":   {1, 1},
	"States.Array":          {0, -1},
	"States.ArrayPartition": {2, 2},
	"States.ArrayContains":  {2, 2},
	"States.ArrayRange":     {3, 3},
	"States.ArrayGetItem":   {2, 2},
	"States.ArrayLength":    {1, 1},
	"States.ArrayUnique":    {1, 1},
	"States.Base64Encode":   {1, 1},
	"States.Base64Decode":   {1, 1},
	"States.Hash":           {2, 2},
	"States.JsonMerge":      {3, 3},
	"States.MathRandom":     {2, 3},
	"States.MathAdd":        {2, 2},
	"States.StringSplit":    {2, 2},
	"States.UUID":           {0, 0},
}

// looksLikeIntrinsic tells a function call from a path in a ".$" field.
func looksLikeIntrinsic(s string) bool {
	return strings.HasPrefix(s, "States.")
}

func compileIntrinsic(src string) (*intrinsic, error) {
	ip := &intrinsicParser{s: src, src: src}
	f, err := ip.call(1)
	if err != nil {
		return nil, err
	}
	ip.space()
	if ip.pos != len(ip.s) {
		return nil, ip.errorf("unexpected %q after the function call", ip.s[ip.pos:])
	}
	return f, nil
}

type intrinsicParser struct {
	s, src string
	pos    int
}

func (ip *intrinsicParser) errorf(format string, args ...any) error {
	return fmt.Errorf("invalid intrinsic function %q: %s", ip.src, fmt.Sprintf(format, args...))
}

func (ip *intrinsicParser) space() {
	for ip.pos < len(ip.s) && (ip.s[ip.pos] == ' ' || ip.s[ip.pos] == '\t' || ip.s[ip.pos] == '\n') {
		ip.pos++
	}
}

func (ip *intrinsicParser) call(depth int) (*intrinsic, error) {
	if depth > maxIntrinsicNesting {
		return nil, ip.errorf("more than %d nested intrinsic functions", maxIntrinsicNesting)
	}
	start := ip.pos
	open := strings.IndexByte(ip.s[ip.pos:], '(')
	if open < 0 {
		return nil, ip.errorf("expected '(' after the function name")
	}
	name := strings.TrimSpace(ip.s[ip.pos : ip.pos+open])
	ar, known := intrinsicArity[name]
	if !known {
		return nil, ip.errorf("%q is not an intrinsic function", name)
	}
	ip.pos += open + 1
	f := &intrinsic{name: name}
	ip.space()
	if ip.pos < len(ip.s) && ip.s[ip.pos] == ')' {
		ip.pos++
	} else {
		for {
			ip.space()
			a, err := ip.arg(depth)
			if err != nil {
				return nil, err
			}
			f.args = append(f.args, a)
			ip.space()
			if ip.pos >= len(ip.s) {
				return nil, ip.errorf("missing ')'")
			}
			if ip.s[ip.pos] == ',' {
				ip.pos++
				continue
			}
			if ip.s[ip.pos] == ')' {
				ip.pos++
				break
			}
			return nil, ip.errorf("expected ',' or ')' but found %q", ip.s[ip.pos])
		}
	}
	f.src = ip.s[start:ip.pos]
	if len(f.args) < ar.min || (ar.max >= 0 && len(f.args) > ar.max) {
		want := strconv.Itoa(ar.min)
		switch {
		case ar.max < 0:
			want = "at least " + want
		case ar.max != ar.min:
			want = fmt.Sprintf("%d to %d", ar.min, ar.max)
		}
		return nil, ip.errorf("%s takes %s argument(s), got %d", name, want, len(f.args))
	}
	if err := checkStaticArgs(f); err != nil {
		return nil, ip.errorf("%v", err)
	}
	return f, nil
}

func (ip *intrinsicParser) arg(depth int) (intrinsicArg, error) {
	if ip.pos >= len(ip.s) {
		return intrinsicArg{}, ip.errorf("missing argument")
	}
	c := ip.s[ip.pos]
	switch {
	case c == '\'':
		raw, val, err := ip.stringLiteral()
		if err != nil {
			return intrinsicArg{}, err
		}
		return intrinsicArg{kind: argLiteral, lit: val, raw: raw}, nil
	case c == '$':
		start := ip.pos
		depthB := 0
		for ip.pos < len(ip.s) {
			ch := ip.s[ip.pos]
			if ch == '[' {
				depthB++
			} else if ch == ']' {
				depthB--
			} else if depthB == 0 && (ch == ',' || ch == ')' || ch == ' ') {
				break
			}
			ip.pos++
		}
		p, err := CompilePath(ip.s[start:ip.pos])
		if err != nil {
			return intrinsicArg{}, err
		}
		return intrinsicArg{kind: argPath, path: p}, nil
	case c == '-' || (c >= '0' && c <= '9'):
		start := ip.pos
		ip.pos++
		for ip.pos < len(ip.s) && strings.IndexByte("0123456789.eE+-", ip.s[ip.pos]) >= 0 {
			ip.pos++
		}
		v, err := ParseJSON([]byte(ip.s[start:ip.pos]))
		if _, isNum := v.(Number); err != nil || !isNum {
			return intrinsicArg{}, ip.errorf("invalid number %q", ip.s[start:ip.pos])
		}
		return intrinsicArg{kind: argLiteral, lit: v}, nil
	case strings.HasPrefix(ip.s[ip.pos:], "States."):
		f, err := ip.call(depth + 1)
		if err != nil {
			return intrinsicArg{}, err
		}
		return intrinsicArg{kind: argCall, call: f}, nil
	}
	for _, lit := range []string{"true", "false", "null"} {
		if strings.HasPrefix(ip.s[ip.pos:], lit) {
			ip.pos += len(lit)
			return intrinsicArg{kind: argLiteral, lit: MustParseJSON(lit)}, nil
		}
	}
	return intrinsicArg{}, ip.errorf("unexpected %q in the arguments", ip.s[ip.pos:])
}

// stringLiteral reads '...' where \' \{ \} \\ are the only escapes (AWS's reserved characters).
func (ip *intrinsicParser) stringLiteral() (raw, val string, err error) {
	ip.pos++ // '
	start := ip.pos
	var b strings.Builder
	for ip.pos < len(ip.s) {
		c := ip.s[ip.pos]
		switch c {
		case '\\':
			if ip.pos+1 >= len(ip.s) {
				return "", "", ip.errorf("a backslash must escape one of ' { } \\")
			}
			n := ip.s[ip.pos+1]
			if n != '\'' && n != '{' && n != '}' && n != '\\' {
				return "", "", ip.errorf("a backslash must escape one of ' { } \\, not %q", n)
			}
			b.WriteByte(n)
			ip.pos += 2
		case '\'':
			raw = ip.s[start:ip.pos]
			ip.pos++
			return raw, b.String(), nil
		default:
			b.WriteByte(c)
			ip.pos++
		}
	}
	return "", "", ip.errorf("unterminated string literal")
}

// checkStaticArgs refuses what can be known wrong before running.
func checkStaticArgs(f *intrinsic) error {
	lit := func(i int) (any, bool) {
		if i < len(f.args) && f.args[i].kind == argLiteral {
			return f.args[i].lit, true
		}
		return nil, false
	}
	switch f.name {
	case "States.Format":
		if v, ok := lit(0); ok {
			if _, isStr := v.(string); !isStr {
				return fmt.Errorf("the first argument of States.Format must be a string")
			}
			n, err := countPlaceholders(f.args[0].raw)
			if err != nil {
				return err
			}
			if n != len(f.args)-1 {
				return fmt.Errorf("the template has %d {} placeholder(s) but %d value(s) follow", n, len(f.args)-1)
			}
		}
	case "States.JsonToString":
		if f.args[0].kind != argPath {
			return fmt.Errorf("the argument of States.JsonToString must be a path")
		}
	case "States.Hash":
		if v, ok := lit(1); ok {
			s, _ := v.(string)
			if _, known := hashAlgorithms[s]; !known {
				return fmt.Errorf("the hash algorithm must be one of MD5, SHA-1, SHA-256, SHA-384, SHA-512")
			}
		}
	case "States.JsonMerge":
		if v, ok := lit(2); ok {
			if b, isBool := v.(bool); !isBool || b {
				return fmt.Errorf("the third argument of States.JsonMerge must be false: deep merging is not supported")
			}
		}
	}
	return nil
}

// countPlaceholders counts {} in a raw template, honouring \{ \} \\ escapes.
func countPlaceholders(raw string) (int, error) {
	n := 0
	for i := 0; i < len(raw); i++ {
		switch raw[i] {
		case '\\':
			i++
		case '{':
			if i+1 < len(raw) && raw[i+1] == '}' {
				n++
				i++
			} else {
				return 0, fmt.Errorf("an unescaped '{' must be followed by '}'")
			}
		case '}':
			return 0, fmt.Errorf("an unescaped '}' must follow '{'")
		}
	}
	return n, nil
}

// intrinsicError is an evaluation failure; the state turns it into States.Runtime.
type intrinsicError struct {
	fn  string
	msg string
}

func (e *intrinsicError) Error() string {
	return fmt.Sprintf("The function '%s' had the following error: %s", e.fn, e.msg)
}

func (f *intrinsic) fail(format string, args ...any) error {
	return &intrinsicError{fn: f.src, msg: fmt.Sprintf(format, args...)}
}

var hashAlgorithms = map[string]func() hash.Hash{
	"MD5":     md5.New,
	"SHA-1":   sha1.New,
	"SHA-256": sha256.New,
	"SHA-384": sha512.New384,
	"SHA-512": sha512.New,
}

// maxIntrinsicString is AWS's limit on the input of the encoding and hashing functions.
const maxIntrinsicString = 10000

// maxIntrinsicArray is AWS's limit on arrays that ArrayRange builds.
const maxIntrinsicArray = 1000

func (f *intrinsic) eval(input any, context contextFn) (any, error) {
	args := make([]any, len(f.args))
	for i, a := range f.args {
		switch a.kind {
		case argLiteral:
			args[i] = a.lit
		case argPath:
			doc := input
			if a.path.context {
				doc = context()
			}
			v, err := a.path.Eval(doc)
			if err != nil {
				return nil, f.fail("The JsonPath %s could not be found in the input", a.path.src)
			}
			args[i] = v
		case argCall:
			v, err := a.call.eval(input, context)
			if err != nil {
				return nil, err
			}
			args[i] = v
		}
	}
	switch f.name {
	case "States.Format":
		tmpl, ok := args[0].(string)
		if !ok {
			return nil, f.fail("The first argument must be a string")
		}
		// A literal template is read with its escapes (\{ is a brace, not a placeholder); a
		// template from the input is plain text with {} placeholders.
		if f.args[0].kind == argLiteral {
			return f.format(f.args[0].raw, true, args[1:])
		}
		return f.format(tmpl, false, args[1:])
	case "States.StringToJson":
		s, ok := args[0].(string)
		if !ok {
			return nil, f.fail("The argument must be a string, not %s", typeName(args[0]))
		}
		v, err := ParseJSON([]byte(s))
		if err != nil {
			return nil, f.fail("The argument is not valid JSON: %v", err)
		}
		return v, nil
	case "States.JsonToString":
		return MarshalJSON(args[0]), nil
	case "States.Array":
		return args, nil
	case "States.ArrayPartition":
		arr, err := f.array(args[0], "first")
		if err != nil {
			return nil, err
		}
		size, err := f.integer(args[1], "chunk size")
		if err != nil {
			return nil, err
		}
		if size <= 0 {
			return nil, f.fail("The chunk size must be a positive integer")
		}
		out := []any{}
		for i := 0; i < len(arr); i += int(size) {
			end := min(i+int(size), len(arr))
			out = append(out, append([]any(nil), arr[i:end]...))
		}
		return out, nil
	case "States.ArrayContains":
		arr, err := f.array(args[0], "first")
		if err != nil {
			return nil, err
		}
		for _, e := range arr {
			if Equal(e, args[1]) {
				return true, nil
			}
		}
		return false, nil
	case "States.ArrayRange":
		var n [3]int64
		for i := range n {
			v, err := f.integer(args[i], []string{"start", "end", "step"}[i])
			if err != nil {
				return nil, err
			}
			n[i] = v
		}
		start, end, step := n[0], n[1], n[2]
		if step == 0 {
			return nil, f.fail("The step must not be 0")
		}
		count := int64(0)
		if (step > 0 && end >= start) || (step < 0 && end <= start) {
			count = (end-start)/step + 1
		}
		if count > maxIntrinsicArray {
			return nil, f.fail("The array cannot have more than %d items, it would have %d", maxIntrinsicArray, count)
		}
		out := make([]any, 0, count)
		for i := int64(0); i < count; i++ {
			out = append(out, IntNumber(start+i*step))
		}
		return out, nil
	case "States.ArrayGetItem":
		arr, err := f.array(args[0], "first")
		if err != nil {
			return nil, err
		}
		idx, err := f.integer(args[1], "index")
		if err != nil {
			return nil, err
		}
		if idx < 0 || idx >= int64(len(arr)) {
			return nil, f.fail("The index provided is out of bounds")
		}
		return arr[idx], nil
	case "States.ArrayLength":
		arr, err := f.array(args[0], "")
		if err != nil {
			return nil, err
		}
		return IntNumber(int64(len(arr))), nil
	case "States.ArrayUnique":
		arr, err := f.array(args[0], "")
		if err != nil {
			return nil, err
		}
		out := []any{}
		for _, e := range arr {
			dup := false
			for _, seen := range out {
				if Equal(seen, e) {
					dup = true
					break
				}
			}
			if !dup {
				out = append(out, e)
			}
		}
		return out, nil
	case "States.Base64Encode":
		s, err := f.boundedString(args[0])
		if err != nil {
			return nil, err
		}
		return base64.StdEncoding.EncodeToString([]byte(s)), nil
	case "States.Base64Decode":
		s, err := f.boundedString(args[0])
		if err != nil {
			return nil, err
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, f.fail("The argument is not valid base64")
		}
		if !utf8.Valid(b) {
			return nil, f.fail("The decoded data is not valid UTF-8")
		}
		return string(b), nil
	case "States.Hash":
		s, err := f.boundedString(args[0])
		if err != nil {
			return nil, err
		}
		algo, _ := args[1].(string)
		newHash, known := hashAlgorithms[algo]
		if !known {
			return nil, f.fail("The hash algorithm must be one of MD5, SHA-1, SHA-256, SHA-384, SHA-512")
		}
		h := newHash()
		h.Write([]byte(s))
		return hex.EncodeToString(h.Sum(nil)), nil
	case "States.JsonMerge":
		a, okA := args[0].(*Object)
		b, okB := args[1].(*Object)
		if !okA || !okB {
			return nil, f.fail("The first two arguments must be JSON objects")
		}
		if deep, isBool := args[2].(bool); !isBool || deep {
			return nil, f.fail("The third argument must be false: deep merging is not supported")
		}
		var ob ObjectBuilder
		for _, m := range a.Members() {
			ob.Set(m.Key, m.Value)
		}
		for _, m := range b.Members() {
			ob.Set(m.Key, m.Value)
		}
		return ob.Object(), nil
	case "States.MathRandom":
		start, err := f.integer(args[0], "start")
		if err != nil {
			return nil, err
		}
		end, err := f.integer(args[1], "end")
		if err != nil {
			return nil, err
		}
		if end <= start {
			return nil, f.fail("The end must be greater than the start")
		}
		if len(args) == 3 {
			seed, err := f.integer(args[2], "seed")
			if err != nil {
				return nil, err
			}
			r := mrand.New(mrand.NewPCG(uint64(seed), 0))
			return IntNumber(start + r.Int64N(end-start)), nil
		}
		return IntNumber(start + mrand.Int64N(end-start)), nil
	case "States.MathAdd":
		a, err := f.integer(args[0], "first")
		if err != nil {
			return nil, err
		}
		b, err := f.integer(args[1], "second")
		if err != nil {
			return nil, err
		}
		return IntNumber(a + b), nil
	case "States.StringSplit":
		s, ok1 := args[0].(string)
		sep, ok2 := args[1].(string)
		if !ok1 || !ok2 {
			return nil, f.fail("Both arguments must be strings")
		}
		parts := strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(sep, r) })
		out := make([]any, len(parts))
		for i, p := range parts {
			out[i] = p
		}
		return out, nil
	case "States.UUID":
		return newUUID(), nil
	}
	return nil, f.fail("not implemented")
}

func (f *intrinsic) format(raw string, escapes bool, values []any) (any, error) {
	var b strings.Builder
	next := 0
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case escapes && c == '\\' && i+1 < len(raw):
			b.WriteByte(raw[i+1])
			i++
		case c == '{' && i+1 < len(raw) && raw[i+1] == '}':
			if next >= len(values) {
				return nil, f.fail("The template has more {} placeholders than values")
			}
			switch v := values[next].(type) {
			case string:
				b.WriteString(v)
			case Number, bool, nil:
				b.WriteString(MarshalJSON(v))
			default:
				return nil, f.fail("The value for placeholder %d is %s; only strings, numbers, booleans and null can be formatted", next+1, typeName(v))
			}
			next++
			i++
		default:
			b.WriteByte(c)
		}
	}
	if next != len(values) {
		return nil, f.fail("The template has %d {} placeholders but %d values were given", next, len(values))
	}
	return b.String(), nil
}

func (f *intrinsic) array(v any, which string) ([]any, error) {
	a, ok := v.([]any)
	if !ok {
		if which != "" {
			which += " "
		}
		return nil, f.fail("The %sargument must be an array, not %s", which, typeName(v))
	}
	return a, nil
}

// integer accepts numbers and rounds fractions half away from zero, like Java's Math.round
// for the values intrinsics see.
func (f *intrinsic) integer(v any, what string) (int64, error) {
	n, ok := v.(Number)
	if !ok {
		return 0, f.fail("The %s argument must be a number, not %s", what, typeName(v))
	}
	if i, ok := n.Int64(); ok {
		return i, nil
	}
	fl := n.Float()
	if math.IsInf(fl, 0) || math.IsNaN(fl) || math.Abs(fl) > math.MaxInt64/2 {
		return 0, f.fail("The %s argument is out of range", what)
	}
	return int64(math.Round(fl)), nil
}

func (f *intrinsic) boundedString(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", f.fail("The argument must be a string, not %s", typeName(v))
	}
	if utf8.RuneCountInString(s) > maxIntrinsicString {
		return "", f.fail("The argument must not be longer than %d characters", maxIntrinsicString)
	}
	return s, nil
}

// newUUID makes a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
