// Command invite is the invite Lambda: see Handler.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
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
	lambda.Start(New(awsCfg, os.Getenv(contract.EnvTableName), conf, log).Handle)
}
