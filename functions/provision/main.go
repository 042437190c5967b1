// Command provision is the Lambda behind every task of the provision workflow: see Handler.
package main

import (
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/scheduler"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/customerstack"
	"github.com/byocloud/byoc/shared/maintenance"
	"github.com/byocloud/byoc/shared/servicestate"
	"github.com/byocloud/byoc/shared/store"
)

func main() {
	log, awsCfg, conf := cloud.Boot(ConfigFromEnv)
	db, table := cloud.NewDynamoDB(awsCfg), os.Getenv(contract.EnvTableName)
	st := store.New(db, table)
	sch := conf.Schedules
	sch.Client = scheduler.NewFromConfig(awsCfg)
	h := &Handler{
		Store:       st,
		Maintenance: &maintenance.Service{Store: st, Schedules: sch, Log: log},
		Tasks:       sfn.NewFromConfig(awsCfg),
		Customers:   customerstack.Customers{STS: sts.NewFromConfig(awsCfg), Base: awsCfg},
		State:       servicestate.New(db, table), // the same table: data-plane records live beside deployments
		SQS:         sqs.NewFromConfig(awsCfg),
		Config:      conf,
		Log:         log,
	}
	lambda.Start(h.Handle)
}
