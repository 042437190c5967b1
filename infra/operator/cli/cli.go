// Package cli is the byoc command: every operator action through the operator API, signed
// with the caller's own AWS credentials. docs/api.md lists the API it speaks.
package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/byocloud/byoc/infra/operator/apiclient"
)

// Exit codes scripts can tell apart.
const (
	ExitOK          = 0
	ExitFailed      = 1 // the API failed (5xx), or the network did
	ExitUsage       = 2 // a bad command line
	ExitRefused     = 3 // the API refused the request (400, 403, 422)
	ExitNotFound    = 4 // 404
	ExitConflict    = 5 // 409: the deployment's state does not allow it now
	ExitWorkflowEnd = 6 // --wait: the workflow ended other than SUCCEEDED
)

// exitError carries an exit code to main.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// ExitCode is the exit code of an error Execute returned.
func ExitCode(err error) int {
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	var ae *apiclient.Error
	if errors.As(err, &ae) {
		switch {
		case ae.Status == http.StatusNotFound:
			return ExitNotFound
		case ae.Status == http.StatusConflict:
			return ExitConflict
		case ae.Status >= 400 && ae.Status < 500:
			return ExitRefused
		}
		return ExitFailed
	}
	if err != nil {
		return ExitFailed
	}
	return ExitOK
}

// globals are the flags every command takes.
type globals struct {
	api, stack, profile, region, output, key string
	wait                                     bool
	timeout                                  time.Duration
	out, errOut                              io.Writer
	client                                   *apiclient.Client // set by tests; else built from the flags
}

// New returns the root command writing to out and errOut. client, when not nil, is the API
// client every command uses (tests); otherwise it is built from the flags.
func New(out, errOut io.Writer, client *apiclient.Client) *cobra.Command {
	g := &globals{out: out, errOut: errOut, client: client}
	root := &cobra.Command{
		Use:   "byoc",
		Short: "Operate byoc: deployments, services, maintenance, releases, private connectivity",
		Long: "byoc speaks to the byoc operator API with your own AWS credentials (the standard chain:\n" +
			"environment, --profile, SSO). The API's address is the control-plane stack's ApiUrl output,\n" +
			"or --api. Against the local cloud set AWS_ENDPOINT_URL (make local prints the commands).\n\n" +
			"Exit codes: 0 ok, 1 API or network failure, 2 usage, 3 refused (400/403/422), 4 not found,\n" +
			"5 conflict (409), 6 the workflow --wait followed did not succeed.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(out)
	root.SetErr(errOut)
	pf := root.PersistentFlags()
	pf.StringVar(&g.api, "api", "", "the API's address (default: the stack's ApiUrl output)")
	pf.StringVar(&g.stack, "stack", apiclient.DefaultStack, "the control-plane stack")
	pf.StringVar(&g.profile, "profile", "", "AWS profile")
	pf.StringVar(&g.region, "region", "", "AWS region (default: the profile's or AWS_REGION)")
	pf.StringVarP(&g.output, "output", "o", "table", "table or json")
	pf.StringVar(&g.key, "idempotency-key", "", "Idempotency-Key of a change (default: a new one per command)")
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if g.output != "table" && g.output != "json" {
			return usage("--output: %q must be table or json", g.output)
		}
		return nil
	}
	for _, c := range commands(g) {
		root.AddCommand(c)
	}
	root.AddCommand(consoleCommand(g))
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage("%v", err) })
	return root
}

// Execute runs the command line and returns the exit code.
func Execute(args []string, out, errOut io.Writer, client *apiclient.Client) int {
	root := New(out, errOut, client)
	root.SetArgs(args)
	err := root.ExecuteContext(context.Background())
	if err != nil {
		fmt.Fprintln(errOut, "byoc:", err)
	}
	code := ExitCode(err)
	if err != nil && code == ExitFailed && isUsage(err) {
		code = ExitUsage
	}
	return code
}

// isUsage recognises cobra's own command-line errors.
func isUsage(err error) bool {
	m := err.Error()
	return strings.HasPrefix(m, "unknown command") || strings.HasPrefix(m, "accepts ") || strings.HasPrefix(m, "requires ") ||
		strings.HasPrefix(m, "unknown flag") || strings.Contains(m, "required flag")
}

func usage(format string, a ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, a...)}
}

func (g *globals) clientFor(ctx context.Context) (*apiclient.Client, error) {
	if g.client != nil {
		return g.client, nil
	}
	c, err := apiclient.New(ctx, apiclient.Options{API: g.api, Stack: g.stack, Profile: g.profile, Region: g.region})
	if err != nil {
		return nil, err
	}
	g.client = c
	return c, nil
}

// newKey is a fresh Idempotency-Key: a retried command line (the same shell line again) is a
// new request; a script that wants replays passes --idempotency-key.
func (g *globals) newKey() string {
	if g.key != "" {
		return g.key
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// print writes a result as JSON, or as the table a command knows how to make.
func (g *globals) print(result json.RawMessage, table func(json.RawMessage, io.Writer) error) error {
	if g.output == "json" || table == nil {
		var v any
		if err := json.Unmarshal(result, &v); err != nil {
			_, err = g.out.Write(append(result, '\n'))
			return err
		}
		enc := json.NewEncoder(g.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	}
	return table(result, g.out)
}

func stdinOrFile(path string) ([]byte, error) {
	if path == "-" {
		return io.ReadAll(os.Stdin)
	}
	return os.ReadFile(path)
}
