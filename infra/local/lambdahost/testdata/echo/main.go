// Command echo is a Lambda function for the host's tests: it answers with the environment a
// function sees, logs on request and exits (a crash) on request.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-lambda-go/lambda"
)

type request struct {
	Crash bool   `json:"crash"`
	Log   string `json:"log"`
	Read  string `json:"read"` // a file to return, as a function reads its bundle
}

func main() {
	if os.Getenv("ECHO_EXIT_AT_START") != "" {
		// A broken configuration: the function dies before it polls, as a real one does
		// when a required variable is missing.
		fmt.Println("bad configuration")
		os.Exit(1)
	}
	lambda.Start(func(ctx context.Context, req request) (map[string]string, error) {
		if req.Log != "" {
			fmt.Println(req.Log)
		}
		if req.Crash {
			fmt.Fprint(os.Stderr, "crashing on request")
			os.Exit(3)
		}
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		if req.Read != "" {
			b, err := os.ReadFile(req.Read)
			if err != nil {
				return nil, err
			}
			env["READ"] = string(b)
		}
		if wd, err := os.Getwd(); err == nil {
			env["PWD"] = wd
		}
		return env, nil
	})
}
