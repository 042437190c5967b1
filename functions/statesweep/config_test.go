package main

import (
	"strings"
	"testing"
	"time"

	"github.com/byocloud/byoc/shared/contract"
)

func TestConfigFromEnv(t *testing.T) {
	full := map[string]string{
		contract.EnvTableName: "byoc", contract.EnvEventBusName: "byoc-vendor",
		contract.EnvStateQueueURL: "https://sqs.us-east-1.amazonaws.com/000000000000/byoc-state", contract.EnvStateStaleAfter: "90s",
	}
	c, err := ConfigFromEnv(func(k string) string { return full[k] })
	if err != nil || c.Table != "byoc" || c.EventBusName != "byoc-vendor" || c.StaleAfter != 90*time.Second || c.StateQueueURL == "" {
		t.Fatalf("%+v %v", c, err)
	}
	// An empty bus name would send stale alerts to the default bus and count them published.
	for _, missing := range []string{contract.EnvTableName, contract.EnvEventBusName} {
		env := map[string]string{}
		for k, v := range full {
			if k != missing {
				env[k] = v
			}
		}
		if _, err := ConfigFromEnv(func(k string) string { return env[k] }); err == nil || !strings.Contains(err.Error(), missing) {
			t.Fatalf("without %s: %v", missing, err)
		}
	}
	full[contract.EnvStateStaleAfter] = "soon"
	if _, err := ConfigFromEnv(func(k string) string { return full[k] }); err == nil || !strings.Contains(err.Error(), "STATE_STALE_AFTER") {
		t.Fatalf("bad stale-after: %v", err)
	}
}
