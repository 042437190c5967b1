// Package cloud is the control plane's access to AWS: the configuration every function
// loads, the role it assumes in a customer account, the narrow client interfaces handlers
// depend on, and the classification of AWS errors into "try again" and "give up".
package cloud

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/byocloud/byoc/shared/contract"
)

// Retry bounds for SDK calls inside one Lambda invocation. They are modest on purpose: the
// workflow retries whole steps with its own backoff (ASL Retry on TransientError), so a step
// should give up well inside its Lambda timeout rather than sleep through it.
const (
	sdkMaxAttempts = 5
	sdkMaxBackoff  = 10 * time.Second
)

// Load builds the configuration from the environment: region and credentials as Lambda
// provides them, and AWS_ENDPOINT_URL(_<SERVICE>) when the functions run in the local cloud.
func Load(ctx context.Context) (aws.Config, error) {
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRetryer(NewRetryer))
	if err != nil {
		return aws.Config{}, fmt.Errorf("load AWS configuration: %w", err)
	}
	return cfg, nil
}

// NewRetryer is the SDK retryer of every client: standard mode (exponential backoff with
// full jitter, throttling and 5xx retried) with the bounds above.
func NewRetryer() aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = sdkMaxAttempts
		o.MaxBackoff = sdkMaxBackoff
	})
}

// NewDynamoDB returns a DynamoDB client. Emulators (kumo) send no CRC32 header, and the SDK
// would log a checksum warning on every call; the check is skipped only when a custom
// endpoint is configured, so real DynamoDB responses are still verified.
func NewDynamoDB(cfg aws.Config) *dynamodb.Client {
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) {
		if o.BaseEndpoint != nil {
			o.DisableValidateResponseChecksum = true
		}
	})
}

// Boot is the cold start every function shares: JSON logs on stdout, the AWS configuration
// from the environment, and the function's own configuration read by fromEnv. A failure ends
// the process, which Lambda reports as an init error, so a bad variable fails loudly at once.
func Boot[C any](fromEnv func(getenv func(string) string) (C, error)) (*slog.Logger, aws.Config, C) {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	awsCfg, err := Load(context.Background())
	if err != nil {
		log.Error("cannot load AWS configuration", "error", err.Error())
		os.Exit(1)
	}
	conf, err := fromEnv(os.Getenv)
	if err != nil {
		log.Error("bad configuration", "error", err.Error())
		os.Exit(1)
	}
	return log, awsCfg, conf
}

// TableName reads the table's name for Boot, refusing an empty one: every function needs it.
func TableName(getenv func(string) string) (string, error) {
	name := getenv(contract.EnvTableName)
	if name == "" {
		return "", fmt.Errorf("%s is not set: the control-plane stack gives every function its table", contract.EnvTableName)
	}
	return name, nil
}

// Require reads variables that must all be set, naming every missing one in one error, so a
// template that forgot one fails the cold start instead of an invocation (or, worse, working
// with an empty value: an empty bus name would publish to the default bus).
func Require(getenv func(string) string, names ...string) (map[string]string, error) {
	values := make(map[string]string, len(names))
	var missing []string
	for _, n := range names {
		if values[n] = getenv(n); values[n] == "" {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("environment variable(s) %s must be set", strings.Join(missing, ", "))
	}
	return values, nil
}
