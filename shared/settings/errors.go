package settings

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// FieldError says which setting is wrong, what value it had and which rule it broke, so
// that an operator can fix the request without reading the code.
type FieldError struct {
	Field string // JSON name of the setting, with an index for list items: "zoneIds[1]"
	Value string // the offending value as given
	Rule  string // the rule it breaks, phrased as what is required
}

func (e FieldError) Error() string {
	return fmt.Sprintf("%s %q: %s", e.Field, e.Value, e.Rule)
}

// ValidationError carries every broken rule of one request, so a caller fixes them all in
// one round trip instead of discovering them one at a time.
type ValidationError struct {
	Errors []FieldError
	// Of names what was invalid ("settings" when empty): "release", "window".
	Of string
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Error()
	}
	of := e.Of
	if of == "" {
		of = "settings"
	}
	return "invalid " + of + ": " + strings.Join(parts, "; ")
}

// Field returns the first error about the named field ("zoneIds[1]" matches only that item;
// "zoneIds" matches the list and its items).
func (e *ValidationError) Field(name string) (FieldError, bool) {
	for _, fe := range e.Errors {
		if fe.Field == name || strings.HasPrefix(fe.Field, name+"[") {
			return fe, true
		}
	}
	return FieldError{}, false
}

// collector gathers field errors while validation keeps going.
type collector = Collector

// Collector gathers field errors while validation keeps going; other domain packages
// (windows, releases) report through it, so every refusal has the same shape.
type Collector struct {
	Of   string // what is validated, for the message: "release"; "" is "settings"
	errs []FieldError
}

// Add records one broken rule.
func (c *Collector) Add(field, value, rule string) {
	c.errs = append(c.errs, FieldError{Field: field, Value: value, Rule: rule})
}

func (c *Collector) add(field, value, rule string) { c.Add(field, value, rule) }

// Err is the *ValidationError of everything added, or nil.
func (c *Collector) Err() error {
	if len(c.errs) == 0 {
		return nil
	}
	return &ValidationError{Errors: c.errs, Of: c.Of}
}

func (c *Collector) err() error { return c.Err() }

// DecodeStrict reads payload into v as one JSON object with no field v does not have (a
// misspelt field would otherwise be ignored and its default silently used). A refusal is a
// *ValidationError about "(payload)" for what (c.Of).
func (c *Collector) DecodeStrict(payload []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		c.Add("(payload)", "", "must be a JSON object: "+err.Error())
		return c.Err()
	}
	if _, err := dec.Token(); err != io.EOF {
		c.Add("(payload)", "", "must be a single JSON object")
		return c.Err()
	}
	return nil
}
