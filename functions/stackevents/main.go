// Command stackevents is the stackevents Lambda: see Handler.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/store"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	awsCfg, err := cloud.Load(context.Background())
	if err != nil {
		log.Error("cannot load AWS configuration", "error", err.Error())
		os.Exit(1)
	}
	table, err := ConfigFromEnv(os.Getenv)
	if err != nil {
		log.Error("bad configuration", "error", err.Error())
		os.Exit(1)
	}
	h := &Handler{Store: store.New(cloud.NewDynamoDB(awsCfg), table), Tasks: sfn.NewFromConfig(awsCfg), Log: log}
	lambda.Start(h.Handle)
}
