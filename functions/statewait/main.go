// Command statewait registers workflow tasks waiting for a state condition: see Handler.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/servicestate"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	cfg, err := cloud.Load(context.Background())
	if err != nil {
		log.Error("cannot load AWS configuration", "error", err.Error())
		os.Exit(1)
	}
	h := &Handler{
		Repo:  servicestate.New(cloud.NewDynamoDB(cfg), os.Getenv(contract.EnvTableName)),
		Tasks: sfn.NewFromConfig(cfg),
		Log:   log,
	}
	lambda.Start(h.Handle)
}
