package statemsg

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
)

// The exact JSON names of each object in the schema, taken from the struct tags so they
// cannot drift from the types.
var (
	messageFields  = jsonNames(reflect.TypeFor[Message]())
	versionsFields = jsonNames(reflect.TypeFor[Versions]())
	replicasFields = jsonNames(reflect.TypeFor[Replicas]())
	ackFields      = jsonNames(reflect.TypeFor[CommandAck]())
)

func jsonNames(t reflect.Type) map[string]bool {
	names := make(map[string]bool, t.NumField())
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names[name] = true
	}
	return names
}

// checkFieldNames rejects any object key that is not exactly a schema field name.
func checkFieldNames(body []byte) error {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := exactKeys("", top, messageFields); err != nil {
		return err
	}
	for field, allowed := range map[string]map[string]bool{"versions": versionsFields, "replicas": replicasFields} {
		if raw, ok := top[field]; ok {
			if err := objectKeys(field, raw, allowed); err != nil {
				return err
			}
		}
	}
	if raw, ok := top["commands"]; ok && string(raw) != "null" {
		var acks []json.RawMessage
		if err := json.Unmarshal(raw, &acks); err != nil {
			return fmt.Errorf("%w: commands: must be an array", ErrMalformed)
		}
		for i, a := range acks {
			if err := objectKeys(fmt.Sprintf("commands[%d]", i), a, ackFields); err != nil {
				return err
			}
		}
	}
	return nil
}

func objectKeys(path string, raw json.RawMessage, allowed map[string]bool) error {
	if string(raw) == "null" {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return fmt.Errorf("%w: %s: must be an object", ErrMalformed, path)
	}
	return exactKeys(path+".", obj, allowed)
}

func exactKeys(prefix string, obj map[string]json.RawMessage, allowed map[string]bool) error {
	for k := range obj {
		if !allowed[k] {
			return fmt.Errorf("%w: unknown field %q", ErrMalformed, prefix+k)
		}
	}
	return nil
}
