package main

import (
	"strings"
	"testing"

	"github.com/byocloud/byoc/shared/contract"
)

func TestConfigFromEnv(t *testing.T) {
	full := map[string]string{contract.EnvTableName: "byoc", contract.EnvEventBusName: "byoc-vendor"}
	c, err := ConfigFromEnv(func(k string) string { return full[k] })
	if err != nil || c.Table != "byoc" || c.EventBusName != "byoc-vendor" {
		t.Fatalf("%+v %v", c, err)
	}
	// Both missing are named in one error; an empty bus name would publish to the default bus.
	_, err = ConfigFromEnv(func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), contract.EnvTableName) || !strings.Contains(err.Error(), contract.EnvEventBusName) {
		t.Fatalf("err = %v, want both variables named", err)
	}
}
