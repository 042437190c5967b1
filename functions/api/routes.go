package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/lambda"
)

// route is one resource and method of the API. Either run serves it here, or forward hands
// it to an operator function.
type route struct {
	pattern string // http.ServeMux pattern: "GET /v1/deployments/{id}"
	run     func(h *Handler, c *call) (any, error)
	summary string // what it does, for docs/api.md and --help
}

// routes is the API, every resource and method in one table. Actions added by other work are
// wired here, the same way: a line that forwards to their function, or serves it here.
var routes = []route{
	{"POST /v1/invitations", forward(targetInvite, "", nil, inviteFields...), "invite a customer: the bootstrap stack to apply"},

	{"GET /v1/deployments", listDeployments, "the fleet, a page at a time (?status=&limit=&nextToken=)"},
	{"GET /v1/fleet", fleetCounts, "how many deployments are in each status, over the whole fleet"},
	{"GET /v1/deployments/{id}", getDeployment, "a deployment: settings, status, versions, outputs, health, window, peerings"},
	{"DELETE /v1/deployments/{id}", deleteDeployment, "tear a deployment down (body: force, deleteData, abandon)"},
	{"POST /v1/deployments/{id}/retry", retryProvisioning, "retry a failed provisioning"},
	{"GET /v1/deployments/{id}/audit", auditTrail, "the audit trail, newest first (?limit=&nextToken=)"},

	{"GET /v1/deployments/{id}/services", listServices, "a deployment's services with health, version and endpoints"},
	{"GET /v1/deployments/{id}/services/{serviceId}", getService, "one service"},
	{"PATCH /v1/deployments/{id}/services/{serviceId}/state", serviceState, "start, stop, terminate or idle a service (body: command)"},
	{"PATCH /v1/deployments/{id}/services/{serviceId}/scaling", serviceScaling, "scale a service (body: replicas)"},
	{"POST /v1/deployments/{id}/services/{serviceId}/backups", serviceBackup, "back a service up (body: backupId, optional)"},
	{"GET /v1/deployments/{id}/services/{serviceId}/prometheus", prometheusConfig, "the Prometheus scrape configuration and scraping user"},

	{"GET /v1/deployments/{id}/maintenance", forward(targetMaintenance, "show", pathAs{"id": "deploymentId"}), "the window, versions and planned maintenance"},
	{"PATCH /v1/deployments/{id}/maintenance", forward(targetMaintenance, "set", pathAs{"id": "deploymentId"}, "window", "channel", "canary"), "set the window or rollout channel"},
	{"POST /v1/deployments/{id}/maintenance/defer", forward(targetMaintenance, "defer", pathAs{"id": "deploymentId"}, "key"), "defer the next maintenance"},

	{"GET /v1/releases", forward(targetReleases, "show", nil), "the release catalogue"},
	{"POST /v1/releases", forward(targetReleases, "publish", nil, "release"), "publish a release"},
	{"GET /v1/releases/{releaseId}", forward(targetReleases, "show", pathAs{"releaseId": "releaseId"}), "one release and its waves"},
	{"POST /v1/releases/{releaseId}/resume", forward(targetReleases, "resume", pathAs{"releaseId": "releaseId"}), "resume a halted release"},

	{"GET /v1/deployments/{id}/network", forward(targetPeering, "show", pathAs{"id": "deploymentId"}), "peerings, PrivateLink, load balancers, endpoints"},
	{"POST /v1/deployments/{id}/peerings", forward(targetPeering, "request", pathAs{"id": "deploymentId"}, peeringFields...), "request a VPC peering"},
	{"DELETE /v1/deployments/{id}/peerings/{target}", forward(targetPeering, "delete", pathAs{"id": "deploymentId", "target": "target"}, "force"), "delete a peering (target: peer VPC id, or privatelink)"},
	{"PUT /v1/deployments/{id}/privatelink", forward(targetPeering, "privatelink", pathAs{"id": "deploymentId"}, "allowedAccounts"), "offer PrivateLink to accounts"},
	{"POST /v1/deployments/{id}/privatelink/endpoints", forward(targetPeering, "register-endpoint", pathAs{"id": "deploymentId"}, "endpointId"), "register a PrivateLink endpoint"},
	{"PATCH /v1/deployments/{id}/public-load-balancer", forward(targetPeering, "public-lb", pathAs{"id": "deploymentId"}, "enabled", "verified"), "remove or restore the public load balancer"},
	{"PATCH /v1/deployments/{id}/services/{serviceId}/ip-access-list", forward(targetPeering, "access-list", pathAs{"id": "deploymentId", "serviceId": "serviceId"}, "add", "remove", "allowAnywhere"), "change a service's IP access list"},

	{"GET /v1/operations/{workflow}/{name}", getOperation, "a workflow started by the API: running, succeeded or failed"},
}

// Routes lists the table's patterns and summaries (the CLI's and the docs' source).
func Routes() [][2]string {
	out := make([][2]string, len(routes))
	for i, r := range routes {
		out[i] = [2]string{r.pattern, r.summary}
	}
	return out
}

// The body fields a forwarded request accepts.
var (
	inviteFields  = []string{"customerId", "accountId", "region", "vpcCidr", "zoneIds", "resourcePrefix", "acknowledgeSmallCidr", "window", "channel", "canary"}
	peeringFields = []string{"peerAccount", "peerVpcId", "peerRegion", "peerCidrs", "accepterRoleArn", "name"}
)

// pathAs names the payload field each path wildcard fills.
type pathAs map[string]string

// errorStatus maps the operator functions' errorTypes (each a Go error type's name) to the
// API's status. Anything else is the function failing: 502.
var errorStatus = map[string]int{
	"ValidationError": http.StatusBadRequest, "InvalidRequest": http.StatusBadRequest, "InvalidRequestError": http.StatusBadRequest,
	"NotFound": http.StatusNotFound,
	"Refused":  http.StatusConflict, "Conflict": http.StatusConflict, "DeploymentExists": http.StatusConflict,
}

// forward builds a route that invokes an operator function with a payload made of the body's
// accepted fields, the path's wildcards, the action and the caller as actor. The body cannot
// set the action, the deployment or the actor, nor any field the function takes from its
// schedules or events (a firing's purpose, an event's envelope): only fields are passed on.
func forward(target, action string, path pathAs, fields ...string) func(h *Handler, c *call) (any, error) {
	return func(h *Handler, c *call) (any, error) {
		var body map[string]json.RawMessage
		if err := c.decode(&body); err != nil {
			return nil, err
		}
		payload := map[string]any{}
		var unknown []string
		for k, v := range body {
			if !slices.Contains(fields, k) {
				unknown = append(unknown, k)
				continue
			}
			payload[k] = v
		}
		if len(unknown) > 0 {
			sort.Strings(unknown)
			accepted := "none"
			if len(fields) > 0 {
				accepted = strings.Join(fields, ", ")
			}
			return nil, badRequest("%s: not a field of this request (accepted: %s)", strings.Join(unknown, ", "), accepted)
		}
		for wildcard, field := range path {
			payload[field] = c.PathValue(wildcard)
		}
		if action != "" {
			payload["action"] = action
		}
		payload["actor"] = actor(c.caller)
		return h.invoke(c.Context(), target, payload)
	}
}

// actor is how an operator is named in audit entries: the signing principal's ARN, cut to
// the 128 characters the functions accept.
func actor(caller string) string {
	if caller == "" {
		caller = "api"
	}
	return caller[:min(len(caller), 128)]
}

// invoke calls an operator function and turns its error into the API's status.
func (h *Handler) invoke(ctx context.Context, target string, payload any) (any, error) {
	in, err := json.Marshal(payload)
	if err != nil {
		return nil, err
	}
	out, err := h.Lambda.Invoke(ctx, &lambda.InvokeInput{FunctionName: aws.String(h.Config.Functions[target]), Payload: in})
	if err != nil {
		return nil, fmt.Errorf("invoke the %s function: %w", target, err)
	}
	if out.FunctionError != nil {
		var fe struct {
			ErrorMessage string `json:"errorMessage"`
			ErrorType    string `json:"errorType"`
		}
		_ = json.Unmarshal(out.Payload, &fe)
		if status, ok := errorStatus[fe.ErrorType]; ok {
			return nil, &apiError{Status: status, Message: fe.ErrorMessage}
		}
		return nil, &apiError{Status: http.StatusBadGateway, Message: fmt.Sprintf("the %s function failed (%s): %s", target, fe.ErrorType, fe.ErrorMessage)}
	}
	return json.RawMessage(out.Payload), nil
}
