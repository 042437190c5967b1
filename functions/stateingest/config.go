package main

import (
	"fmt"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
)

// Config is what the control-plane stack tells stateingest through its environment.
type Config struct {
	Table        string
	EventBusName string // where health alerts and rejections go: never the default bus
}

// ConfigFromEnv reads the configuration; a missing variable fails the cold start.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	v, err := cloud.Require(getenv, contract.EnvTableName, contract.EnvEventBusName)
	if err != nil {
		return Config{}, fmt.Errorf("stateingest: %w", err)
	}
	return Config{Table: v[contract.EnvTableName], EventBusName: v[contract.EnvEventBusName]}, nil
}
