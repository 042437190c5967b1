package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/byocloud/byoc/shared/cloud"
	"github.com/byocloud/byoc/shared/contract"
	"github.com/byocloud/byoc/shared/lifecycle"
	"github.com/byocloud/byoc/shared/maintenance"
	"github.com/byocloud/byoc/shared/settings"
	"github.com/byocloud/byoc/shared/store"
	"github.com/byocloud/byoc/shared/window"
)

// Config is what the control-plane stack tells invite through its environment.
type Config struct {
	Rules                settings.Rules
	EventBusName         string // the vendor bus customers are admitted to
	EventBusArn          string // bootstrap parameter VendorEventBusArn
	ProvisionerRoleArn   string // bootstrap parameter ControlPlaneRoleArn
	BootstrapTemplateURL string
}

// ConfigFromEnv reads the configuration and refuses a missing variable or an unsupported
// region list at cold start, so a broken deployment fails its first invocation loudly
// rather than inviting customers with empty parameters.
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		Rules:                settings.RulesFromEnv(getenv(contract.EnvSupportedRegions)),
		EventBusName:         getenv(contract.EnvEventBusName),
		EventBusArn:          getenv(contract.EnvEventBusArn),
		ProvisionerRoleArn:   getenv(contract.EnvProvisionerRoleArn),
		BootstrapTemplateURL: getenv(contract.EnvBootstrapTemplateURL),
	}
	var missing []string
	for name, v := range map[string]string{
		contract.EnvTableName: getenv(contract.EnvTableName), contract.EnvEventBusName: c.EventBusName,
		contract.EnvEventBusArn: c.EventBusArn, contract.EnvProvisionerRoleArn: c.ProvisionerRoleArn,
		contract.EnvBootstrapTemplateURL: c.BootstrapTemplateURL,
	} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return Config{}, fmt.Errorf("invite: environment variable(s) %s must be set", strings.Join(missing, ", "))
	}
	if err := c.Rules.Validate(); err != nil {
		return Config{}, fmt.Errorf("invite: %s: %w", contract.EnvSupportedRegions, err)
	}
	return c, nil
}

// New wires a handler to AWS.
func New(cfg aws.Config, table string, c Config, log *slog.Logger) *Handler {
	return &Handler{Store: store.New(cloud.NewDynamoDB(cfg), table), Bus: eventbridge.NewFromConfig(cfg), Config: c, Log: log}
}

// Handler invites a customer: it validates the settings, stores the deployment with a fresh
// ExternalId and admits the account to the vendor bus.
type Handler struct {
	Store  *store.Store
	Bus    cloud.EventBusPolicy
	Config Config
	Log    *slog.Logger
}

// Request is the invocation payload: the deployment settings, its maintenance window and
// rollout channel (defaults: the region's night, regular), plus who asks.
type Request struct {
	settings.Settings
	Window  *window.Window `json:"window,omitempty"`
	Channel string         `json:"channel,omitempty"`
	Canary  bool           `json:"canary,omitempty"`
	Actor   string         `json:"actor,omitempty"`
}

// Response is everything the customer needs to apply the bootstrap stack.
type Response struct {
	DeploymentID   string            `json:"deploymentId"`
	ExternalID     string            `json:"externalId"`
	StackName      string            `json:"stackName"`
	TemplateURL    string            `json:"templateUrl"`
	QuickCreateURL string            `json:"quickCreateUrl"`
	Parameters     map[string]string `json:"parameters"`
	Settings       settings.Settings `json:"settings"`
	ServerPodLimit int               `json:"serverPodLimit"`
	// Maintenance is the deployment's window and channel.
	Maintenance store.Maintenance `json:"maintenance"`
}

// DeploymentExists is returned when the account already has a deployment in the region. Its
// name is the Lambda errorType callers see.
type DeploymentExists struct{ Err error }

func (e *DeploymentExists) Error() string { return e.Err.Error() }
func (e *DeploymentExists) Unwrap() error { return e.Err }

const maxActorLength = 128

// undoReserve is the time kept back from the invocation's deadline for removing a
// deployment whose admission failed: admission must give up that much before Lambda stops the
// function, so the undo still runs.
const undoReserve = 5 * time.Second

// Handle invites one customer. Bad input returns a *settings.ValidationError (errorType
// "ValidationError") listing every broken rule, and writes nothing.
func (h *Handler) Handle(ctx context.Context, payload json.RawMessage) (Response, error) {
	req, err := decode(payload)
	if err != nil {
		return Response{}, err
	}
	s, err := h.Config.Rules.Normalize(req.Settings)
	if err != nil {
		return Response{}, err
	}
	m, err := maintenance.New(req.Window, s.Region, req.Channel, req.Canary)
	if err != nil {
		return Response{}, err
	}
	actor := "invite"
	if req.Actor != "" {
		actor = "invite:" + req.Actor
	}
	id, err := NewDeploymentID()
	if err != nil {
		return Response{}, err
	}
	externalID, err := NewExternalID()
	if err != nil {
		return Response{}, err
	}
	d, err := h.Store.Create(ctx, store.Deployment{
		ID:         id,
		Settings:   s,
		Status:     lifecycle.Invited,
		ExternalID: externalID,
		StackName:  InfraStackName(s.ResourcePrefix, id),
		// The schedule is armed once provisioning succeeds: before that there is nothing to
		// maintain.
		Maintenance: &m,
	}, store.Audit{Actor: actor, Action: "invite", Detail: fmt.Sprintf("account %s region %s", s.AccountID, s.Region)})
	if errors.Is(err, store.ErrExists) {
		return h.repeated(ctx, s, m, actor, err)
	}
	if err != nil {
		return Response{}, err
	}
	// The store write comes first: it is the check that the account is free. Admission
	// second, undone by UndoCreate if it fails, so a failed invitation leaves neither a
	// deployment nor a claimed account behind (the reverse order could not undo a
	// permission without revoking the one of an existing invitation).
	if err := h.admit(ctx, s.AccountID); err != nil {
		// The admission may have failed because its deadline passed: the undo must not
		// share that context, or the account stays claimed and never admitted.
		undoCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), undoReserve)
		defer cancel()
		if undoErr := h.Store.UndoCreate(undoCtx, d); undoErr != nil {
			h.Log.ErrorContext(ctx, "invite: admission failed and the deployment could not be removed",
				"deploymentId", id, "admitError", err.Error(), "undoError", undoErr.Error())
			return Response{}, fmt.Errorf("admit account %s to the vendor bus: %w (and removing deployment %s failed: %v)", s.AccountID, err, id, undoErr)
		}
		return Response{}, fmt.Errorf("admit account %s to the vendor bus: %w (nothing was stored)", s.AccountID, err)
	}
	h.Log.InfoContext(ctx, "invited", "deploymentId", id, "account", s.AccountID, "region", s.Region, "actor", actor)
	return h.response(d), nil
}

// repeated answers an invitation of an account that already has a deployment in the region.
// The same invitation again (the deployment still invited, with the same settings) is an
// operator's retry after a lost answer or a crash: it gets the stored invitation, and the
// admission is made again, so a crash between the two writes is finished by the retry.
// Anything else is DeploymentExists.
func (h *Handler) repeated(ctx context.Context, s settings.Settings, m store.Maintenance, actor string, exists error) (Response, error) {
	d, err := h.Store.ByAccount(ctx, s.AccountID, s.Region)
	if errors.Is(err, store.ErrNotFound) || err == nil && (d.Status != lifecycle.Invited || !reflect.DeepEqual(d.Settings, s) || !reflect.DeepEqual(d.Maintenance, &m)) {
		return Response{}, &DeploymentExists{Err: exists}
	}
	if err != nil {
		return Response{}, fmt.Errorf("read the deployment of account %s in %s: %w", s.AccountID, s.Region, err)
	}
	if err := h.admit(ctx, s.AccountID); err != nil {
		return Response{}, fmt.Errorf("admit account %s to the vendor bus (invitation %s repeated): %w", s.AccountID, d.ID, err)
	}
	// A concurrent first invitation whose admission failed undoes its deployment: answer only
	// one that is still there.
	if _, err := h.Store.Get(ctx, d.ID); err != nil {
		return Response{}, fmt.Errorf("invitation %s was withdrawn while it was repeated (ask again): %w", d.ID, err)
	}
	h.Log.InfoContext(ctx, "invitation repeated: the stored one is answered", "deploymentId", d.ID, "account", s.AccountID, "region", s.Region, "actor", actor)
	return h.response(d), nil
}

// admit lets the customer account put events (its forwarded stack events) on the vendor bus.
// The statement id is per account, so inviting the same account again (another region, or
// after an undone attempt) replaces the statement instead of piling up new ones.
func (h *Handler) admit(ctx context.Context, accountID string) error {
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-undoReserve))
		defer cancel()
	}
	_, err := h.Bus.PutPermission(ctx, &eventbridge.PutPermissionInput{
		EventBusName: aws.String(h.Config.EventBusName),
		Action:       aws.String("events:PutEvents"),
		Principal:    aws.String(accountID),
		StatementId:  aws.String(StatementID(accountID)),
	})
	return err
}

// StatementID is the vendor bus policy statement that admits one customer account.
func StatementID(accountID string) string { return contract.BusStatementCustomer(accountID) }

func (h *Handler) response(d store.Deployment) Response {
	params := map[string]string{
		contract.BootstrapParamExternalID:          d.ExternalID,
		contract.BootstrapParamControlPlaneRoleArn: h.Config.ProvisionerRoleArn,
		contract.BootstrapParamVendorEventBusArn:   h.Config.EventBusArn,
		contract.BootstrapParamResourcePrefix:      d.Settings.ResourcePrefix,
	}
	r := Response{
		DeploymentID:   d.ID,
		ExternalID:     d.ExternalID,
		StackName:      contract.BootstrapStackName,
		TemplateURL:    h.Config.BootstrapTemplateURL,
		QuickCreateURL: QuickCreateURL(d.Settings.Region, h.Config.BootstrapTemplateURL, contract.BootstrapStackName, params),
		Parameters:     params,
		Settings:       d.Settings,
		ServerPodLimit: d.Settings.ServerPodLimit,
	}
	if d.Maintenance != nil {
		r.Maintenance = *d.Maintenance
	}
	return r
}

// QuickCreateURL is the CloudFormation console link that opens the create-stack page of the
// customer's region with the template, stack name and parameters filled in
// (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/cfn-console-create-stacks-quick-create-links.html).
func QuickCreateURL(region, templateURL, stackName string, params map[string]string) string {
	q := url.Values{}
	q.Set("templateURL", templateURL)
	q.Set("stackName", stackName)
	for k, v := range params {
		q.Set("param_"+k, v)
	}
	return fmt.Sprintf("%s/cloudformation/home?region=%s#/stacks/create/review?%s", consoleOrigin(region), url.QueryEscape(region), q.Encode())
}

func consoleOrigin(region string) string {
	switch cloud.Partition(region) {
	case "aws-cn":
		return "https://" + region + ".console.amazonaws.cn"
	case "aws-us-gov":
		return "https://" + region + ".console.amazonaws-us-gov.com"
	default:
		return "https://" + region + ".console.aws.amazon.com"
	}
}

// decode reads the payload strictly: a misspelt setting ("vpcCIDR") would otherwise be
// ignored and its default silently used.
func decode(payload json.RawMessage) (Request, error) {
	var req Request
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return Request{}, &settings.ValidationError{Errors: []settings.FieldError{jsonFieldError(err)}}
	}
	if _, err := dec.Token(); err != io.EOF {
		return Request{}, &settings.ValidationError{Errors: []settings.FieldError{{Field: "(payload)", Rule: "must be a single JSON object"}}}
	}
	if len(req.Actor) > maxActorLength || strings.IndexFunc(req.Actor, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return Request{}, &settings.ValidationError{Errors: []settings.FieldError{{Field: "actor", Value: req.Actor, Rule: fmt.Sprintf("must be at most %d printable characters", maxActorLength)}}}
	}
	return req, nil
}

func jsonFieldError(err error) settings.FieldError {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		// Fields of the embedded Settings come as "Settings.accountId".
		return settings.FieldError{Field: strings.TrimPrefix(typeErr.Field, "Settings."), Value: typeErr.Value, Rule: "must be of JSON type " + jsonType(typeErr.Type.Kind().String())}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return settings.FieldError{Field: strings.Trim(name, `"`), Rule: "is not a setting (known: customerId, accountId, region, vpcCidr, zoneIds, resourcePrefix, acknowledgeSmallCidr, window, channel, canary, actor)"}
	}
	return settings.FieldError{Field: "(payload)", Rule: "must be a JSON object of settings: " + err.Error()}
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "slice", "array":
		return "array"
	case "bool":
		return "boolean"
	case "int", "int64", "float64":
		return "number"
	default:
		return kind
	}
}

// Deployment ids: 13 characters of [a-z0-9] starting with a letter, so "<prefix>-<id>" is a
// valid EKS cluster name, S3 bucket prefix and IAM role name prefix. 5 + 12×5.2 ≈ 67 random
// bits make collisions negligible; the store refuses one anyway.
const (
	idLetters = "abcdefghijklmnopqrstuvwxyz"
	idChars   = idLetters + "0123456789"
)

// NewDeploymentID returns a random deployment id.
func NewDeploymentID() (string, error) {
	var b [settings.IDLength]byte
	if err := randomFrom(b[:1], idLetters); err != nil {
		return "", err
	}
	if err := randomFrom(b[1:], idChars); err != nil {
		return "", err
	}
	return string(b[:]), nil
}

// randomFrom fills b with characters drawn uniformly from alphabet (rejection sampling, so
// no character is more likely than another).
func randomFrom(b []byte, alphabet string) error {
	limit := 256 - 256%len(alphabet)
	var buf [64]byte
	for i := 0; i < len(b); {
		if _, err := rand.Read(buf[:]); err != nil {
			return fmt.Errorf("read random bytes: %w", err)
		}
		for _, r := range buf {
			if int(r) < limit && i < len(b) {
				b[i] = alphabet[int(r)%len(alphabet)]
				i++
			}
		}
	}
	return nil
}

// ExternalIDBytes is the ExternalId's entropy: 160 bits, written as 40 hex characters (within
// STS's [\w+=,.@:/-]{2,1224}).
const ExternalIDBytes = 20

// NewExternalID returns a fresh ExternalId for a customer's management role trust policy.
func NewExternalID() (string, error) {
	var b [ExternalIDBytes]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random bytes: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// InfraStackName is the infrastructure stack of a deployment. It starts with "<prefix>-" so
// the bootstrap stack's forwarding rule and the management role's CloudFormation scope,
// both written for "<prefix>-*", cover it.
func InfraStackName(prefix, id string) string { return prefix + "-" + id + "-infra" }
