// Command provision is the Lambda behind every task of the provision workflow: see Handler.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/store"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	awsCfg, err := cloud.Load(context.Background())
	if err != nil {
		log.Error("cannot load AWS configuration", "error", err.Error())
		os.Exit(1)
	}
	conf, err := ConfigFromEnv(os.Getenv)
	if err != nil {
		log.Error("bad configuration", "error", err.Error())
		os.Exit(1)
	}
	h := &Handler{
		Store:     store.New(cloud.NewDynamoDB(awsCfg), os.Getenv(contract.EnvTableName)),
		Tasks:     sfn.NewFromConfig(awsCfg),
		Customers: Customers{STS: sts.NewFromConfig(awsCfg), Base: awsCfg},
		Config:    conf,
		Log:       log,
	}
	lambda.Start(h.Handle)
}
