package main

import (
	"fmt"
	"time"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
)

// Config is what the control-plane stack tells statesweep through its environment.
type Config struct {
	Table        string
	EventBusName string // where stale alerts go: never the default bus
	// StateQueueURL is optional: without it the sweep leaves the queue's policy alone.
	StateQueueURL string
	StaleAfter    time.Duration
}

// ConfigFromEnv reads the configuration; a missing or malformed variable fails the cold start.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	v, err := cloud.Require(getenv, contract.EnvTableName, contract.EnvEventBusName)
	if err != nil {
		return Config{}, fmt.Errorf("statesweep: %w", err)
	}
	staleAfter, err := ParseStaleAfter(getenv(contract.EnvStateStaleAfter))
	if err != nil {
		return Config{}, fmt.Errorf("statesweep: %w", err)
	}
	return Config{
		Table: v[contract.EnvTableName], EventBusName: v[contract.EnvEventBusName],
		StateQueueURL: getenv(contract.EnvStateQueueURL), StaleAfter: staleAfter,
	}, nil
}
