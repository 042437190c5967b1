package settings

import (
	"fmt"
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
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fe.Error()
	}
	return "invalid settings: " + strings.Join(parts, "; ")
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
type collector struct{ errs []FieldError }

func (c *collector) add(field, value, rule string) {
	c.errs = append(c.errs, FieldError{Field: field, Value: value, Rule: rule})
}

func (c *collector) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	return &ValidationError{Errors: c.errs}
}
