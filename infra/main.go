// Command infra is byoc's CDK app: `cdk synth` (via cdk.json) or `go run ./infra` writes the
// control-plane, bootstrap and infrastructure templates to cdk.out/.
package main

import (
	"fmt"
	"os"

	"github.com/aws/jsii-runtime-go"

	"github.com/byocloud/byoc/infra/stacks"
)

func main() {
	defer jsii.Close()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "infra:", err)
		os.Exit(1)
	}
}

func run() error {
	app, err := stacks.NewApp()
	if err != nil {
		return err
	}
	cfg, err := stacks.ConfigFromContext(app)
	if err != nil {
		return err
	}
	if _, err := stacks.Build(app, cfg); err != nil {
		return err
	}
	app.Synth(nil)
	return nil
}
