package main

import (
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/maintenance"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/store"
)

// Config is what the control-plane stack tells the function through its environment.
type Config struct {
	Table, BusName, UpgradeMachineArn string
	Schedules                         maintenance.Schedules // without its client
}

// ConfigFromEnv reads the configuration, refusing a missing variable at cold start.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	v, err := cloud.Require(getenv, append([]string{contract.EnvTableName, contract.EnvEventBusName, contract.EnvUpgradeMachineArn}, maintenance.ScheduleEnv...)...)
	if err != nil {
		return Config{}, err
	}
	return Config{
		Table: v[contract.EnvTableName], BusName: v[contract.EnvEventBusName], UpgradeMachineArn: v[contract.EnvUpgradeMachineArn],
		Schedules: maintenance.SchedulesFromEnv(v),
	}, nil
}

// New wires a handler to AWS.
func New(awsCfg aws.Config, c Config, log *slog.Logger) *Handler {
	db := cloud.NewDynamoDB(awsCfg)
	sch := c.Schedules
	sch.Client = scheduler.NewFromConfig(awsCfg)
	return &Handler{Maintenance: &maintenance.Service{
		Store: store.New(db, c.Table), Services: servicestate.New(db, c.Table), Schedules: sch,
		Notices:   maintenance.Publisher{Bus: eventbridge.NewFromConfig(awsCfg), BusName: c.BusName},
		Workflows: sfn.NewFromConfig(awsCfg), UpgradeMachineArn: c.UpgradeMachineArn, Log: log,
	}, Log: log}
}
