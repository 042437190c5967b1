package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/byocloud/byoc/infra/operator/apiclient"
	"github.com/byocloud/byoc/shared/lifecycle"
)

// field is a flag that becomes a body field (or a query parameter of a GET).
type field struct {
	flag, name, help string
	kind             string // "string" (default), "bool", "int", "strings" (repeatable, comma-separated), "json"
	required         bool
}

// endpoint is a command that is one API call: its path's {placeholders} are the arguments in
// order; its flags are the body's fields.
type endpoint struct {
	use, short, method, path string
	fields                   []field
	wait                     bool // the answer is an operation: --wait follows it
	table                    func(json.RawMessage, io.Writer) error
}

// groups are the commands, by resource. Each line is one API route (docs/api.md).
func groups() map[string][]endpoint {
	return map[string][]endpoint{
		"deployments": {
			{use: "list", short: "List the fleet (every page with --all)", method: "GET", path: "/v1/deployments",
				fields: []field{{flag: "status", name: "status", help: "only this status (invited, provisioning, ready, failed, updating, deleting, deleted)"},
					{flag: "limit", name: "limit", kind: "int", help: "deployments per page (1-100)"}, {flag: "next-token", name: "nextToken", help: "the page after this token"}},
				table: fleetTable},
			{use: "count", short: "Count the whole fleet by status", method: "GET", path: "/v1/fleet", table: countsTable},
			{use: "get", short: "Show a deployment", method: "GET", path: "/v1/deployments/{id}", table: deploymentTable},
			{use: "delete", short: "Tear a deployment down (its services must be terminated, or --force)", method: "DELETE", path: "/v1/deployments/{id}", wait: true,
				fields: []field{{flag: "force", name: "force", kind: "bool", help: "tear down although services still run"},
					{flag: "delete-data", name: "deleteData", kind: "bool", help: "delete the customer's bucket and its data too (kept otherwise)"},
					{flag: "abandon", name: "abandon", kind: "bool", help: "the customer's account no longer lets byoc in: leave byoc's stacks there to the customer, retire the vendor side"}}},
			{use: "retry", short: "Retry a failed provisioning", method: "POST", path: "/v1/deployments/{id}/retry", wait: true},
			{use: "audit", short: "Show a deployment's audit trail, newest first", method: "GET", path: "/v1/deployments/{id}/audit",
				fields: []field{{flag: "limit", name: "limit", kind: "int", help: "entries per page (1-100)"}, {flag: "next-token", name: "nextToken", help: "the page after this token"}},
				table:  auditTable},
		},
		"services": {
			{use: "list", short: "List a deployment's services", method: "GET", path: "/v1/deployments/{id}/services", table: servicesTable},
			{use: "get", short: "Show a service", method: "GET", path: "/v1/deployments/{id}/services/{serviceId}"},
			{use: "start", short: "Start a service", method: "PATCH", path: "/v1/deployments/{id}/services/{serviceId}/state", wait: true, fields: []field{{name: "command", kind: "const:start"}}},
			{use: "stop", short: "Stop a service", method: "PATCH", path: "/v1/deployments/{id}/services/{serviceId}/state", wait: true, fields: []field{{name: "command", kind: "const:stop"}}},
			{use: "idle", short: "Idle a service (scale to zero until used)", method: "PATCH", path: "/v1/deployments/{id}/services/{serviceId}/state", wait: true, fields: []field{{name: "command", kind: "const:idle"}}},
			{use: "terminate", short: "Terminate a service (before a teardown)", method: "PATCH", path: "/v1/deployments/{id}/services/{serviceId}/state", wait: true, fields: []field{{name: "command", kind: "const:terminate"}}},
			{use: "scale", short: "Scale a service", method: "PATCH", path: "/v1/deployments/{id}/services/{serviceId}/scaling", wait: true,
				fields: []field{{flag: "replicas", name: "replicas", kind: "int", required: true, help: "replicas (1-1000)"}}},
			{use: "backup", short: "Back a service up", method: "POST", path: "/v1/deployments/{id}/services/{serviceId}/backups", wait: true,
				fields: []field{{flag: "backup-id", name: "backupId", help: "the backup's name (default: the agent's)"}}},
			{use: "access-list", short: "Change a service's IP access list", method: "PATCH", path: "/v1/deployments/{id}/services/{serviceId}/ip-access-list",
				fields: []field{{flag: "add", name: "add", kind: "strings", help: "CIDRs to allow"}, {flag: "remove", name: "remove", kind: "strings", help: "CIDRs to remove"},
					{flag: "allow-anywhere", name: "allowAnywhere", kind: "bool", help: "acknowledge 0.0.0.0/0 or an empty list (open to the internet)"}}},
		},
		"maintenance": {
			{use: "show", short: "Show the window, versions and planned maintenance", method: "GET", path: "/v1/deployments/{id}/maintenance"},
			{use: "set", short: "Set the window or rollout channel", method: "PATCH", path: "/v1/deployments/{id}/maintenance",
				fields: []field{{flag: "window", name: "window", kind: "json", help: `the window as JSON: {"days":["sat"],"start":"02:00","duration":"4h","timeZone":"Europe/Paris"}`},
					{flag: "channel", name: "channel", help: "rollout channel: fast, regular or slow"}, {flag: "canary", name: "canary", kind: "bool", help: "a canary of its channel"}}},
			{use: "defer", short: "Defer the next maintenance", method: "POST", path: "/v1/deployments/{id}/maintenance/defer",
				fields: []field{{flag: "key", name: "key", help: "the occurrence to defer, as show lists it"}}},
		},
		"releases": {
			{use: "list", short: "List the release catalogue", method: "GET", path: "/v1/releases"},
			{use: "get", short: "Show a release and its waves", method: "GET", path: "/v1/releases/{releaseId}"},
			{use: "publish", short: "Publish a release", method: "POST", path: "/v1/releases",
				fields: []field{{flag: "release", name: "release", kind: "json", required: true, help: "the release as JSON (docs/maintenance.md)"}}},
			{use: "resume", short: "Resume a halted release", method: "POST", path: "/v1/releases/{releaseId}/resume"},
		},
		"network": {
			{use: "show", short: "Show peerings, PrivateLink, load balancers and private endpoints", method: "GET", path: "/v1/deployments/{id}/network"},
			{use: "peer", short: "Request a VPC peering", method: "POST", path: "/v1/deployments/{id}/peerings",
				fields: []field{{flag: "peer-account", name: "peerAccount", required: true, help: "the peer VPC's account"},
					{flag: "peer-vpc", name: "peerVpcId", required: true, help: "the peer VPC (vpc-...)"}, {flag: "peer-region", name: "peerRegion", required: true, help: "the peer VPC's region"},
					{flag: "peer-cidr", name: "peerCidrs", kind: "strings", required: true, help: "the peer VPC's CIDRs"},
					{flag: "accepter-role", name: "accepterRoleArn", help: "the accepter role of the peer-side template (else the customer accepts by hand)"},
					{flag: "name", name: "name", required: true, help: "a name for the peering"}}},
			{use: "unpeer", short: "Delete a peering (target: the peer VPC id, or privatelink)", method: "DELETE", path: "/v1/deployments/{id}/peerings/{target}",
				fields: []field{{flag: "force", name: "force", kind: "bool", help: "delete the last private path although the public load balancer is removed"}}},
			{use: "privatelink", short: "Offer PrivateLink to accounts", method: "PUT", path: "/v1/deployments/{id}/privatelink",
				fields: []field{{flag: "allowed-account", name: "allowedAccounts", kind: "strings", required: true, help: "accounts allowed to connect"}}},
			{use: "register-endpoint", short: "Register a PrivateLink endpoint", method: "POST", path: "/v1/deployments/{id}/privatelink/endpoints",
				fields: []field{{flag: "endpoint-id", name: "endpointId", required: true, help: "the customer's endpoint (vpce-...)"}}},
			{use: "public-lb", short: "Remove or restore the public load balancer", method: "PATCH", path: "/v1/deployments/{id}/public-load-balancer",
				fields: []field{{flag: "enabled", name: "enabled", kind: "bool", help: "true restores it, false removes it"},
					{flag: "verified", name: "verified", kind: "bool", help: "the private path was verified (needed to remove it)"}}},
		},
	}
}

// commands builds the command tree.
func commands(g *globals) []*cobra.Command {
	var out []*cobra.Command
	shorts := map[string]string{
		"deployments": "Deployments: list, count, show, delete (teardown), retry, audit",
		"services":    "A deployment's services: list, show, start, stop, idle, terminate, scale, backup, access list",
		"maintenance": "A deployment's maintenance window",
		"releases":    "The release catalogue",
		"network":     "Private connectivity: peerings, PrivateLink, the public load balancer",
	}
	for name, eps := range groups() {
		group := &cobra.Command{Use: name, Short: shorts[name], Args: cobra.ArbitraryArgs,
			RunE: func(cmd *cobra.Command, args []string) error {
				if len(args) > 0 {
					return usage("unknown command %q for %q (see %s --help)", args[0], cmd.CommandPath(), cmd.CommandPath())
				}
				return cmd.Help()
			}}
		for _, ep := range eps {
			group.AddCommand(endpointCommand(g, ep))
		}
		out = append(out, group)
	}
	out = append(out, inviteCommand(g), prometheusCommand(g), operationCommand(g), rawCommand(g), adminCommand(g))
	return out
}

// placeholders are the {names} of a path, in order.
func placeholders(path string) []string {
	var out []string
	for _, part := range strings.Split(path, "/") {
		if strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}") {
			out = append(out, strings.Trim(part, "{}"))
		}
	}
	return out
}

func endpointCommand(g *globals, ep endpoint) *cobra.Command {
	args := placeholders(ep.path)
	use := ep.use
	for _, a := range args {
		use += " <" + a + ">"
	}
	values := map[string]any{}
	cmd := &cobra.Command{Use: use, Short: ep.short, Args: cobra.ExactArgs(len(args))}
	f := cmd.Flags()
	for _, fl := range ep.fields {
		switch fl.kind {
		case "bool":
			values[fl.name] = f.Bool(fl.flag, false, fl.help)
		case "int":
			values[fl.name] = f.Int(fl.flag, 0, fl.help)
		case "strings":
			values[fl.name] = f.StringSlice(fl.flag, nil, fl.help)
		case "", "string", "json":
			values[fl.name] = f.String(fl.flag, "", fl.help)
		}
		if fl.required {
			_ = cmd.MarkFlagRequired(fl.flag)
		}
	}
	if ep.wait {
		f.BoolVar(&g.wait, "wait", false, "follow the workflow until it ends, with progress")
		f.DurationVar(&g.timeout, "timeout", 30*time.Minute, "how long --wait follows")
	}
	cmd.RunE = func(cmd *cobra.Command, argv []string) error {
		path := ep.path
		for i, a := range args {
			path = strings.Replace(path, "{"+a+"}", url.PathEscape(argv[i]), 1)
		}
		body := map[string]any{}
		query := url.Values{}
		for _, fl := range ep.fields {
			var v any
			set := fl.flag != "" && cmd.Flags().Changed(fl.flag)
			switch {
			case strings.HasPrefix(fl.kind, "const:"):
				v, set = strings.TrimPrefix(fl.kind, "const:"), true
			case !set:
				continue
			case fl.kind == "bool":
				v = *values[fl.name].(*bool)
			case fl.kind == "int":
				v = *values[fl.name].(*int)
			case fl.kind == "strings":
				v = *values[fl.name].(*[]string)
			case fl.kind == "json":
				raw := *values[fl.name].(*string)
				if strings.HasPrefix(raw, "@") {
					b, err := stdinOrFile(strings.TrimPrefix(raw, "@"))
					if err != nil {
						return usage("--%s: %v", fl.flag, err)
					}
					raw = string(b)
				}
				if !json.Valid([]byte(raw)) {
					return usage("--%s: not valid JSON", fl.flag)
				}
				v = json.RawMessage(raw)
			default:
				v = *values[fl.name].(*string)
			}
			if ep.method == http.MethodGet {
				query.Set(fl.name, fmt.Sprint(v))
			} else {
				body[fl.name] = v
			}
		}
		if len(query) > 0 {
			path += "?" + query.Encode()
		}
		var payload any
		if ep.method != http.MethodGet {
			payload = body
		}
		return g.call(cmd.Context(), ep.method, path, payload, ep.wait, ep.table)
	}
	return cmd
}

// call makes one API call, prints its result and, with --wait, follows its operation.
func (g *globals) call(ctx context.Context, method, path string, body any, wait bool, table func(json.RawMessage, io.Writer) error) error {
	if ctx == nil {
		ctx = context.Background()
	}
	c, err := g.clientFor(ctx)
	if err != nil {
		return err
	}
	key := ""
	if method != http.MethodGet {
		key = g.newKey()
	}
	r, err := c.Call(ctx, method, path, body, key, nil)
	if err != nil {
		return err
	}
	if r.Replayed {
		fmt.Fprintln(g.errOut, "(the answer of an earlier request with this idempotency key)")
	}
	if !wait || !g.wait {
		return g.print(r.Result, table)
	}
	var op apiclient.Operation
	if err := json.Unmarshal(r.Result, &op); err != nil || op.Name == "" {
		return g.print(r.Result, table)
	}
	fmt.Fprintf(g.errOut, "%s %s: %s\n", op.Workflow, op.Name, map[bool]string{true: "started", false: "already running"}[op.Started])
	return g.follow(ctx, c, op)
}

// follow waits for an operation to end, printing each status it passes through, then prints
// the outcome; a workflow that did not succeed is ExitWorkflowEnd.
func (g *globals) follow(ctx context.Context, c *apiclient.Client, op apiclient.Operation) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	last := ""
	final, err := c.Wait(ctx, op, 2*time.Second, func(cur apiclient.Operation, elapsed time.Duration) {
		if cur.Status != last {
			fmt.Fprintf(g.errOut, "  %s after %s\n", cur.Status, elapsed.Round(time.Second))
			last = cur.Status
		}
	})
	if err != nil {
		return err
	}
	b, _ := json.Marshal(final)
	if err := g.print(b, nil); err != nil {
		return err
	}
	if final.Status != "SUCCEEDED" {
		return &exitError{code: ExitWorkflowEnd, err: fmt.Errorf("%s %s ended %s: %s %s", final.Workflow, final.Name, final.Status, final.Error, final.Cause)}
	}
	return nil
}

func inviteCommand(g *globals) *cobra.Command {
	var file string
	var s struct {
		customer, account, region, cidr, prefix, channel string
		zones                                            []string
		canary                                           bool
	}
	cmd := &cobra.Command{
		Use:   "invite",
		Short: "Invite a customer: prints the bootstrap stack to apply and its quick-create link",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file != "" {
				b, err := stdinOrFile(file)
				if err != nil {
					return usage("--file: %v", err)
				}
				if !json.Valid(b) {
					return usage("--file: not valid JSON")
				}
				return g.call(cmd.Context(), http.MethodPost, "/v1/invitations", json.RawMessage(b), false, nil)
			}
			if s.customer == "" || s.account == "" || s.region == "" {
				return usage("invite needs --customer-id, --account-id and --deployment-region (or --file)")
			}
			body := map[string]any{"customerId": s.customer, "accountId": s.account, "region": s.region}
			for k, v := range map[string]string{"vpcCidr": s.cidr, "resourcePrefix": s.prefix, "channel": s.channel} {
				if v != "" {
					body[k] = v
				}
			}
			if len(s.zones) > 0 {
				body["zoneIds"] = s.zones
			}
			if s.canary {
				body["canary"] = true
			}
			return g.call(cmd.Context(), http.MethodPost, "/v1/invitations", body, false, nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&file, "file", "", "the invitation as JSON (- for stdin): the fields of POST /v1/invitations")
	f.StringVar(&s.customer, "customer-id", "", "the customer")
	f.StringVar(&s.account, "account-id", "", "the customer's dedicated AWS account")
	f.StringVar(&s.region, "deployment-region", "", "the region of the deployment (default: --region)")
	f.StringVar(&s.cidr, "vpc-cidr", "", "the BYOC VPC's CIDR (default 10.0.0.0/16)")
	f.StringSliceVar(&s.zones, "zone-ids", nil, "three availability zone ids (default: the region's first three)")
	f.StringVar(&s.prefix, "resource-prefix", "", "prefix of every resource name")
	f.StringVar(&s.channel, "channel", "", "rollout channel: fast, regular or slow")
	f.BoolVar(&s.canary, "canary", false, "a canary of its channel")
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if s.region == "" {
			s.region = g.region
		}
		return nil
	}
	return cmd
}

func prometheusCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "prometheus-config <id> <serviceId>",
		Short: "Print a service's Prometheus scrape configuration and the SQL of its scraping user",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return g.call(cmd.Context(), http.MethodGet, "/v1/deployments/"+url.PathEscape(argv[0])+"/services/"+url.PathEscape(argv[1])+"/prometheus", nil, false,
				func(raw json.RawMessage, w io.Writer) error {
					var c struct {
						YAML    string   `json:"yaml"`
						SQL     []string `json:"sql"`
						Private bool     `json:"private"`
					}
					if err := json.Unmarshal(raw, &c); err != nil {
						return err
					}
					fmt.Fprintln(w, "# prometheus.yml, under scrape_configs:")
					fmt.Fprint(w, c.YAML)
					if c.Private {
						fmt.Fprintln(w, "# the -private endpoint: scrape from a peered network")
					}
					fmt.Fprintln(w, "\n-- the scraping user (run as an admin of the service):")
					for _, q := range c.SQL {
						fmt.Fprintln(w, q+";")
					}
					return nil
				})
		},
	}
}

func operationCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "operation <workflow> <name>",
		Short: "Show (or --wait for) a workflow the API started: provision, command, teardown or peering",
		Args:  cobra.ExactArgs(2),
	}
	cmd.Flags().BoolVar(&g.wait, "wait", false, "follow it until it ends")
	cmd.Flags().DurationVar(&g.timeout, "timeout", 30*time.Minute, "how long --wait follows")
	cmd.RunE = func(cmd *cobra.Command, argv []string) error {
		c, err := g.clientFor(cmd.Context())
		if err != nil {
			return err
		}
		if !g.wait {
			return g.call(cmd.Context(), http.MethodGet, "/v1/operations/"+url.PathEscape(argv[0])+"/"+url.PathEscape(argv[1]), nil, false, nil)
		}
		return g.follow(cmd.Context(), c, apiclient.Operation{Workflow: argv[0], Name: argv[1], Status: "RUNNING"})
	}
	return cmd
}

func rawCommand(g *globals) *cobra.Command {
	var data string
	cmd := &cobra.Command{
		Use:   "api <method> <path>",
		Short: "Call any API route (docs/api.md): byoc api GET /v1/deployments",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, argv []string) error {
			var body any
			if data != "" {
				if !json.Valid([]byte(data)) {
					return usage("--data: not valid JSON")
				}
				body = json.RawMessage(data)
			}
			return g.call(cmd.Context(), strings.ToUpper(argv[0]), argv[1], body, false, nil)
		},
	}
	cmd.Flags().StringVarP(&data, "data", "d", "", "the JSON body")
	return cmd
}

// Tables.

func tab(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 2, 4, 2, ' ', 0) }

func fleetTable(raw json.RawMessage, w io.Writer) error {
	var page struct {
		Deployments []struct {
			ID       string `json:"id"`
			Status   string `json:"status"`
			Health   string `json:"health"`
			Settings struct {
				CustomerID string `json:"customerId"`
				AccountID  string `json:"accountId"`
				Region     string `json:"region"`
			} `json:"settings"`
			CreatedAt time.Time `json:"createdAt"`
		} `json:"deployments"`
		NextToken string `json:"nextToken"`
	}
	if err := json.Unmarshal(raw, &page); err != nil {
		return err
	}
	t := tab(w)
	fmt.Fprintln(t, "ID\tSTATUS\tHEALTH\tCUSTOMER\tACCOUNT\tREGION\tCREATED")
	for _, d := range page.Deployments {
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Status, d.Health, d.Settings.CustomerID, d.Settings.AccountID, d.Settings.Region, d.CreatedAt.Format(time.RFC3339))
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if page.NextToken != "" {
		fmt.Fprintf(w, "more: --next-token %s\n", page.NextToken)
	}
	return nil
}

func countsTable(raw json.RawMessage, w io.Writer) error {
	var c struct {
		Total    int            `json:"total"`
		ByStatus map[string]int `json:"byStatus"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return err
	}
	t := tab(w)
	fmt.Fprintln(t, "STATUS\tDEPLOYMENTS")
	for _, s := range lifecycle.All() {
		fmt.Fprintf(t, "%s\t%d\n", s, c.ByStatus[string(s)])
	}
	fmt.Fprintf(t, "total\t%d\n", c.Total)
	return t.Flush()
}

func deploymentTable(raw json.RawMessage, w io.Writer) error {
	var d struct {
		ID       string            `json:"id"`
		Status   string            `json:"status"`
		Settings map[string]any    `json:"settings"`
		Versions map[string]string `json:"stackVersions"`
		Health   struct {
			Health string `json:"health"`
			Reason string `json:"reason"`
		} `json:"health"`
		Failure *struct {
			Status, Resource, Reason string
		} `json:"failure"`
		Maintenance *struct {
			Window  any    `json:"window"`
			Channel string `json:"channel"`
		} `json:"maintenance"`
		Network *struct {
			Peerings []struct {
				PeerVpcID string `json:"peerVpcId"`
				State     string `json:"state"`
			} `json:"peerings"`
		} `json:"network"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		return err
	}
	t := tab(w)
	fmt.Fprintf(t, "ID\t%s\nSTATUS\t%s\nHEALTH\t%s %s\n", d.ID, d.Status, d.Health.Health, d.Health.Reason)
	for _, k := range []string{"customerId", "accountId", "region", "vpcCidr"} {
		fmt.Fprintf(t, "%s\t%v\n", strings.ToUpper(k), d.Settings[k])
	}
	for k, v := range d.Versions {
		fmt.Fprintf(t, "VERSION %s\t%s\n", k, v)
	}
	if d.Maintenance != nil {
		win, _ := json.Marshal(d.Maintenance.Window)
		fmt.Fprintf(t, "WINDOW\t%s (%s)\n", win, d.Maintenance.Channel)
	}
	if d.Network != nil {
		for _, p := range d.Network.Peerings {
			fmt.Fprintf(t, "PEERING %s\t%s\n", p.PeerVpcID, p.State)
		}
	}
	if d.Failure != nil {
		fmt.Fprintf(t, "FAILURE\t%s %s %s\n", d.Failure.Status, d.Failure.Resource, d.Failure.Reason)
	}
	return t.Flush()
}

func servicesTable(raw json.RawMessage, w io.Writer) error {
	var r struct {
		Services []struct {
			ID        string                           `json:"id"`
			Status    string                           `json:"status"`
			Health    string                           `json:"health"`
			Versions  struct{ ClickHouse string }      `json:"versions"`
			Replicas  struct{ Ready, Desired int }     `json:"replicas"`
			Endpoints struct{ Public, Private string } `json:"endpoints"`
		} `json:"services"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	t := tab(w)
	fmt.Fprintln(t, "SERVICE\tSTATUS\tHEALTH\tCLICKHOUSE\tREPLICAS\tPUBLIC\tPRIVATE")
	for _, s := range r.Services {
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Status, s.Health, s.Versions.ClickHouse,
			strconv.Itoa(s.Replicas.Ready)+"/"+strconv.Itoa(s.Replicas.Desired), dash(s.Endpoints.Public), dash(s.Endpoints.Private))
	}
	return t.Flush()
}

func auditTable(raw json.RawMessage, w io.Writer) error {
	var r struct {
		Entries []struct {
			At     time.Time `json:"at"`
			Actor  string    `json:"actor"`
			Action string    `json:"action"`
			From   string    `json:"from"`
			To     string    `json:"to"`
			Detail string    `json:"detail"`
		} `json:"entries"`
		NextToken string `json:"nextToken"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return err
	}
	t := tab(w)
	fmt.Fprintln(t, "AT\tACTOR\tACTION\tSTATUS\tDETAIL")
	for _, e := range r.Entries {
		status := ""
		if e.To != "" {
			status = e.From + " -> " + e.To
		}
		fmt.Fprintf(t, "%s\t%s\t%s\t%s\t%s\n", e.At.Format(time.RFC3339), e.Actor, e.Action, status, e.Detail)
	}
	if err := t.Flush(); err != nil {
		return err
	}
	if r.NextToken != "" {
		fmt.Fprintf(w, "more: --next-token %s\n", r.NextToken)
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
