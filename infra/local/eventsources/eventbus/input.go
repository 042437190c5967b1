package eventbus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// TargetInput is how a rule target shapes the event it receives (PutTargets' Input,
// InputPath and InputTransformer; at most one is set).
type TargetInput struct {
	Input         string            // constant JSON sent instead of the event
	InputPath     string            // JSONPath of the part of the event to send
	InputPathsMap map[string]string // InputTransformer: variable -> JSONPath
	InputTemplate string            // InputTransformer: text with <variable> placeholders
	HasTransform  bool
}

// RuleContext names the rule for the predefined transformer variables.
type RuleContext struct {
	RuleArn, RuleName string
	IngestionTime     string
}

// Apply returns what the target receives for event (the full envelope).
func (in TargetInput) Apply(event []byte, rc RuleContext) ([]byte, error) {
	switch {
	case in.Input != "":
		if !json.Valid([]byte(in.Input)) {
			return nil, fmt.Errorf("target Input is not valid JSON")
		}
		return []byte(in.Input), nil
	case in.InputPath == "$":
		return event, nil
	case in.InputPath != "":
		doc, err := decode(event)
		if err != nil {
			return nil, err
		}
		v, ok, err := lookup(doc, in.InputPath)
		if err != nil {
			return nil, fmt.Errorf("InputPath %q: %w", in.InputPath, err)
		}
		if !ok {
			// EventBridge sends nothing useful for a path that is absent; the target gets null.
			return []byte("null"), nil
		}
		return json.Marshal(v)
	case in.HasTransform:
		return in.transform(event, rc)
	}
	return event, nil
}

func decode(event []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(event))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("event is not JSON: %w", err)
	}
	return doc, nil
}

var placeholderPattern = regexp.MustCompile(`<([A-Za-z0-9_.\-]+)>`)

// transform implements InputTransformer: a variable inside a JSON string of the template is
// replaced by the raw text of a string value; outside a string by the value's JSON, so
// {"state": <state>} becomes {"state": "RUNNING"} and "is <state>" becomes "is RUNNING"
// (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-transform-target-input.html).
func (in TargetInput) transform(event []byte, rc RuleContext) ([]byte, error) {
	doc, err := decode(event)
	if err != nil {
		return nil, err
	}
	values := map[string]any{}
	for name, path := range in.InputPathsMap {
		if strings.HasPrefix(name, "aws.") {
			return nil, fmt.Errorf("InputPathsMap %q: names starting with aws. are reserved", name)
		}
		v, ok, err := lookup(doc, path)
		if err != nil {
			return nil, fmt.Errorf("InputPathsMap %s %q: %w", name, path, err)
		}
		if ok {
			values[name] = v
		} else {
			values[name] = nil
		}
	}
	values["aws.events.rule-arn"] = rc.RuleArn
	values["aws.events.rule-name"] = rc.RuleName
	values["aws.events.event.ingestion-time"] = rc.IngestionTime
	values["aws.events.event"] = json.RawMessage(event)
	values["aws.events.event.json"] = json.RawMessage(event)

	tmpl := in.InputTemplate
	var out strings.Builder
	inString, escaped := false, false
	last := 0
	locs := placeholderPattern.FindAllStringSubmatchIndex(tmpl, -1)
	pos := 0
	for _, loc := range locs {
		// Advance the string-state scanner to the placeholder.
		for ; pos < loc[0]; pos++ {
			c := tmpl[pos]
			switch {
			case escaped:
				escaped = false
			case c == '\\' && inString:
				escaped = true
			case c == '"':
				inString = !inString
			}
		}
		name := tmpl[loc[2]:loc[3]]
		v, known := values[name]
		out.WriteString(tmpl[last:loc[0]])
		last = loc[1]
		pos = loc[1]
		if !known {
			out.WriteString(tmpl[loc[0]:loc[1]]) // not a variable: left as written
			continue
		}
		if inString {
			out.WriteString(rawInString(v))
		} else {
			b, _ := json.Marshal(v)
			out.Write(b)
		}
	}
	out.WriteString(tmpl[last:])
	return []byte(out.String()), nil
}

// rawInString renders a value placed inside a JSON string of the template.
func rawInString(v any) string {
	var text string
	switch x := v.(type) {
	case nil:
		text = ""
	case string:
		text = x
	default:
		b, _ := json.Marshal(x)
		text = string(b)
	}
	b, _ := json.Marshal(text)
	return string(b[1 : len(b)-1])
}

// step is one segment of a path: a field name, or an array index when index >= 0.
type step struct {
	key   string
	index int
}

// parsePath reads the JSONPath subset EventBridge accepts in InputPath and InputPathsMap:
// $, $.a.b, $.a[0], $['a']. The whole path is checked before any lookup, so a bad path is
// an error even when the event lacks its first field.
func parsePath(path string) ([]step, error) {
	rest, ok := strings.CutPrefix(path, "$")
	if !ok {
		return nil, fmt.Errorf("must start with $")
	}
	var steps []step
	for rest != "" {
		switch {
		case strings.HasPrefix(rest, "."):
			rest = rest[1:]
			end := strings.IndexAny(rest, ".[")
			if end < 0 {
				end = len(rest)
			}
			if end == 0 {
				return nil, fmt.Errorf("empty field name")
			}
			steps = append(steps, step{key: rest[:end], index: -1})
			rest = rest[end:]
		case strings.HasPrefix(rest, "['"):
			end := strings.Index(rest, "']")
			if end < 0 {
				return nil, fmt.Errorf("unclosed ['")
			}
			steps = append(steps, step{key: rest[2:end], index: -1})
			rest = rest[end+2:]
		case strings.HasPrefix(rest, "["):
			end := strings.Index(rest, "]")
			if end < 0 {
				return nil, fmt.Errorf("unclosed [")
			}
			n, err := strconv.Atoi(rest[1:end])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("index %q must be a non-negative integer", rest[1:end])
			}
			steps = append(steps, step{index: n})
			rest = rest[end+1:]
		default:
			return nil, fmt.Errorf("unexpected %q", rest)
		}
	}
	return steps, nil
}

// lookup evaluates a path on a decoded document; ok is false when the value is absent.
func lookup(doc any, path string) (any, bool, error) {
	steps, err := parsePath(path)
	if err != nil {
		return nil, false, err
	}
	cur := doc
	for _, st := range steps {
		if st.index >= 0 {
			arr, ok := cur.([]any)
			if !ok || st.index >= len(arr) {
				return nil, false, nil
			}
			cur = arr[st.index]
			continue
		}
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		if cur, ok = obj[st.key]; !ok {
			return nil, false, nil
		}
	}
	return cur, true, nil
}
