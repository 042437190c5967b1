package cfnengine

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/byocloud/byoc/infra/local/accounts"
	"github.com/byocloud/byoc/infra/local/cfnengine/template"
)

const cfnNamespace = "http://cloudformation.amazonaws.com/doc/2010-05-15/"

// apiError is an error answered to the caller with CloudFormation's code.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func validationError(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "ValidationError", message: fmt.Sprintf(format, args...)}
}

// asAPIError turns template and other errors into ValidationError, CloudFormation's
// answer to any template or parameter problem.
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return validationError("%s", err.Error())
}

// ServeHTTP answers the CloudFormation API (Query protocol: form-encoded requests, XML
// responses). The caller's account comes from its access key; the region from its SigV4
// scope.
func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeError(w, &apiError{status: http.StatusBadRequest, code: "MalformedQueryString", message: err.Error()})
		return
	}
	account := e.cfg.Accounts.CallerAccount(r)
	region := e.cfg.Region
	if scope, ok := accounts.SigningScope(r); ok && scope.Region != "" {
		region = scope.Region
	}
	c := &call{e: e, form: r.Form, account: account, caller: e.cfg.Accounts.Caller(r), region: region, ctx: r.Context()}
	action := r.Form.Get("Action")
	handlers := map[string]func() (any, *apiError){
		"CreateStack":                 c.createStack,
		"UpdateStack":                 c.updateStack,
		"DeleteStack":                 c.deleteStack,
		"DescribeStacks":              c.describeStacks,
		"DescribeStackEvents":         c.describeStackEvents,
		"DescribeStackResources":      c.describeStackResources,
		"DescribeStackResource":       c.describeStackResource,
		"ListStackResources":          c.listStackResources,
		"ListStacks":                  c.listStacks,
		"GetTemplate":                 c.getTemplate,
		"ValidateTemplate":            c.validateTemplate,
		"ListExports":                 c.listExports,
		"UpdateTerminationProtection": c.updateTerminationProtection,
	}
	h, ok := handlers[action]
	if !ok {
		writeError(w, &apiError{status: http.StatusBadRequest, code: "InvalidAction",
			message: fmt.Sprintf("Could not find operation %s for version 2010-05-15 (the local cloud serves %s)", action, strings.Join(sortedKeys(handlers), ", "))})
		return
	}
	result, apiErr := h()
	if apiErr != nil {
		writeError(w, apiErr)
		return
	}
	writeResult(w, action, result)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

type call struct {
	e               *Engine
	form            url.Values
	account, region string
	caller          accounts.Principal
	ctx             context.Context
}

// members reads a Query-protocol list: <prefix>.member.1[.<field>], .member.2, ...
func (c *call) members(prefix string, fields ...string) []map[string]string {
	var out []map[string]string
	for i := 1; ; i++ {
		base := fmt.Sprintf("%s.member.%d", prefix, i)
		item := map[string]string{}
		found := false
		if len(fields) == 0 {
			if v, ok := c.form[base]; ok {
				item[""] = v[0]
				found = true
			}
		}
		for _, f := range fields {
			if v, ok := c.form[base+"."+f]; ok {
				item[f] = v[0]
				found = true
			}
		}
		if !found {
			return out
		}
		out = append(out, item)
	}
}

func (c *call) list(prefix string) []string {
	var out []string
	for _, m := range c.members(prefix) {
		out = append(out, m[""])
	}
	return out
}

func (c *call) tags() ([]Tag, bool) {
	_, given := c.form["Tags"]
	var tags []Tag
	for _, m := range c.members("Tags", "Key", "Value") {
		tags = append(tags, Tag{Key: m["Key"], Value: m["Value"]})
		given = true
	}
	return tags, given
}

// maxTemplateBody is CloudFormation's limit on TemplateBody; larger templates must be
// uploaded to S3 and passed as TemplateURL.
const maxTemplateBody = 51200

var stackNamePattern = regexp.MustCompile(`^[a-zA-Z][-a-zA-Z0-9]{0,127}$`)

// templateBody reads TemplateBody or TemplateURL (an S3 URL, fetched from the local S3).
func (c *call) templateBody() ([]byte, *apiError) {
	body, hasBody := c.form["TemplateBody"]
	u, hasURL := c.form["TemplateURL"]
	switch {
	case hasBody && hasURL:
		return nil, validationError("Exactly one of TemplateBody or TemplateUrl must be specified.")
	case hasBody:
		if len(body[0]) > maxTemplateBody {
			return nil, validationError("1 validation error detected: Value at 'templateBody' failed to satisfy constraint: Member must have length less than or equal to %d", maxTemplateBody)
		}
		return []byte(body[0]), nil
	case hasURL:
		data, err := c.e.fetchTemplate(c.ctx, u[0])
		if err != nil {
			return nil, validationError("TemplateURL must reference a valid S3 object to which you have access. (%v)", err)
		}
		return data, nil
	}
	return nil, validationError("Either Template URL or Template Body must be specified.")
}

// fetchTemplate reads a template from S3 in the local cloud. It accepts virtual-hosted and
// path-style S3 URLs, and path-style URLs of the front door itself.
func (e *Engine) fetchTemplate(ctx context.Context, raw string) ([]byte, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%q is not a URL", raw)
	}
	host := u.Hostname()
	path := strings.TrimPrefix(u.Path, "/")
	var bucket, key string
	switch {
	case strings.Contains(host, ".s3.") || strings.Contains(host, ".s3-"):
		bucket, key = host[:strings.Index(host, ".s3")], path
	case strings.HasPrefix(host, "s3.") || strings.HasPrefix(host, "s3-") || host == hostOf(e.cfg.AWS.BaseEndpoint):
		bucket, key, _ = strings.Cut(path, "/")
	default:
		return nil, fmt.Errorf("%q is not an S3 URL", raw)
	}
	if bucket == "" || key == "" {
		return nil, fmt.Errorf("%q names no bucket and key", raw)
	}
	return e.vendor.s3Do(ctx, http.MethodGet, "/"+bucket+"/"+key, nil)
}

func hostOf(endpoint *string) string {
	if endpoint == nil {
		return "\x00"
	}
	u, err := url.Parse(*endpoint)
	if err != nil {
		return "\x00"
	}
	return u.Hostname()
}

// prepare validates a template and its parameters for a stack: everything CloudFormation
// checks before it accepts a create or update.
func (e *Engine) prepare(s *stack, body []byte, given map[string]string, capabilities []string) (*plan, *apiError) {
	tpl, err := template.Parse(body)
	if err != nil {
		return nil, asAPIError(err)
	}
	params, err := tpl.ResolveParameters(given, e.ssm)
	if err != nil {
		return nil, asAPIError(err)
	}
	env := e.templateEnv(s, params, nil)
	if err := tpl.EvaluateConditions(env); err != nil {
		return nil, asAPIError(err)
	}
	if err := tpl.CheckRules(env); err != nil {
		return nil, asAPIError(err)
	}
	order, err := tpl.Order(env)
	if err != nil {
		return nil, asAPIError(err)
	}
	if need, _ := tpl.IAMCapability(); need != "" && !hasCapability(capabilities, need) {
		return nil, &apiError{status: http.StatusBadRequest, code: "InsufficientCapabilitiesException", message: "Requires capabilities : [" + need + "]"}
	}
	return &plan{body: body, tpl: tpl, params: params, conditions: env.Conditions, order: order, capabilities: capabilities}, nil
}

func hasCapability(have []string, need string) bool {
	for _, c := range have {
		if c == need || (need == "CAPABILITY_IAM" && c == "CAPABILITY_NAMED_IAM") {
			return true
		}
	}
	return false
}

func (c *call) givenParameters(previous map[string]template.ParamValue) (map[string]string, *apiError) {
	given := map[string]string{}
	for _, m := range c.members("Parameters", "ParameterKey", "ParameterValue", "UsePreviousValue") {
		key := m["ParameterKey"]
		if key == "" {
			return nil, validationError("Parameters: every parameter needs a ParameterKey")
		}
		if strings.EqualFold(m["UsePreviousValue"], "true") {
			prev, ok := previous[key]
			if !ok {
				return nil, validationError("Invalid input for parameter key %s. Cannot specify usePreviousValue as true for a parameter key not in the previous template", key)
			}
			given[key] = prev.Value
			continue
		}
		given[key] = m["ParameterValue"]
	}
	return given, nil
}

type createStackResult struct {
	StackID string `xml:"StackId"`
}

func (c *call) createStack() (any, *apiError) {
	name := c.form.Get("StackName")
	if !stackNamePattern.MatchString(name) {
		return nil, validationError("1 validation error detected: Value '%s' at 'stackName' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z][-a-zA-Z0-9]* and have length 1 to 128", name)
	}
	body, apiErr := c.templateBody()
	if apiErr != nil {
		return nil, apiErr
	}
	given, apiErr := c.givenParameters(nil)
	if apiErr != nil {
		return nil, apiErr
	}
	tags, _ := c.tags()
	disableRollback := strings.EqualFold(c.form.Get("DisableRollback"), "true")
	onFailure := c.form.Get("OnFailure")
	if onFailure != "" && c.form.Has("DisableRollback") {
		return nil, validationError("You cannot specify both DisableRollback and OnFailure.")
	}
	switch onFailure {
	case "", "ROLLBACK", "DO_NOTHING", "DELETE":
	default:
		return nil, validationError("1 validation error detected: Value '%s' at 'onFailure' failed to satisfy constraint: Member must satisfy enum value set: [DO_NOTHING, ROLLBACK, DELETE]", onFailure)
	}
	id, err := c.e.createStack(createInput{
		account: c.account, caller: c.caller, region: c.region, name: name, body: body, params: given,
		capabilities: c.list("Capabilities"), tags: tags, disableRollback: disableRollback, onFailure: onFailure,
		token: c.form.Get("ClientRequestToken"), notificationARNs: c.list("NotificationARNs"),
		protected: strings.EqualFold(c.form.Get("EnableTerminationProtection"), "true"),
	})
	if err != nil {
		return nil, err
	}
	return createStackResult{StackID: id}, nil
}

type createInput struct {
	account, region, name string
	caller                accounts.Principal // who asked: CloudFormation acts with their permissions
	body                  []byte
	params                map[string]string
	capabilities          []string
	tags                  []Tag
	disableRollback       bool
	onFailure             string
	token                 string
	notificationARNs      []string
	protected             bool
}

func (e *Engine) createStack(in createInput) (string, *apiError) {
	s := &stack{
		id: stackID(in.account, in.region, in.name, uuid.NewString()), name: in.name, account: in.account, region: in.region,
		capabilities: in.capabilities, tags: in.tags, disableRollback: in.disableRollback, onFailure: in.onFailure,
		notificationARNs: in.notificationARNs, resources: map[string]*liveResource{}, protected: in.protected, lastToken: in.token,
		caller: in.caller,
	}
	if s.onFailure == "" {
		s.onFailure = "ROLLBACK"
	}
	p, apiErr := e.prepare(s, in.body, in.params, in.capabilities)
	if apiErr != nil {
		return "", apiErr
	}
	e.mu.Lock()
	if existing := e.find(in.account, in.region, in.name); existing != nil {
		e.mu.Unlock()
		if in.token != "" && existing.lastToken == in.token {
			return existing.id, nil // a retry of the request that created it
		}
		return "", &apiError{status: http.StatusBadRequest, code: "AlreadyExistsException", message: fmt.Sprintf("Stack [%s] already exists", in.name)}
	}
	s.body, s.tpl, s.params, s.description = p.body, p.tpl, p.params, p.tpl.Description
	s.created = e.clock.Now().UTC()
	e.stacks = append(e.stacks, s)
	e.mu.Unlock()
	op := e.newOperation(s, in.token)
	op.emitStack("CREATE_IN_PROGRESS", "User Initiated")
	e.start(s, func() { op.runCreate(p) })
	return s.id, nil
}

type updateStackResult struct {
	StackID string `xml:"StackId"`
}

func (c *call) updateStack() (any, *apiError) {
	name := c.form.Get("StackName")
	c.e.mu.Lock()
	s := c.e.find(c.account, c.region, name)
	var status string
	var body []byte
	var previousParams map[string]template.ParamValue
	var previousTags []Tag
	var capabilities []string
	busy := false
	lastToken := ""
	if s != nil {
		status, body, previousParams, previousTags, busy, capabilities = s.status, s.body, s.params, s.tags, s.busy, s.capabilities
		lastToken = s.lastToken
	}
	c.e.mu.Unlock()
	if s == nil || status == "DELETE_COMPLETE" {
		return nil, validationError("Stack [%s] does not exist", name)
	}
	if token := c.form.Get("ClientRequestToken"); token != "" && token == lastToken {
		return updateStackResult{StackID: s.id}, nil // a retry of the request that started the last update
	}
	if busy || !updatable(status) {
		return nil, validationError("Stack:%s is in %s state and can not be updated.", s.id, status)
	}
	if strings.EqualFold(c.form.Get("UsePreviousTemplate"), "true") {
		if c.form.Has("TemplateBody") || c.form.Has("TemplateURL") {
			return nil, validationError("You cannot specify UsePreviousTemplate together with TemplateBody or TemplateURL.")
		}
	} else {
		var apiErr *apiError
		if body, apiErr = c.templateBody(); apiErr != nil {
			return nil, apiErr
		}
	}
	given, apiErr := c.givenParameters(previousParams)
	if apiErr != nil {
		return nil, apiErr
	}
	tags, tagsGiven := c.tags()
	if !tagsGiven {
		tags = previousTags
	}
	if c.form.Has("Capabilities.member.1") {
		capabilities = c.list("Capabilities")
	}
	id, err := c.e.updateStack(s, c.caller, body, given, capabilities, tags, c.form.Get("ClientRequestToken"))
	if err != nil {
		return nil, err
	}
	return updateStackResult{StackID: id}, nil
}

func (e *Engine) updateStack(s *stack, caller accounts.Principal, body []byte, given map[string]string, capabilities []string, tags []Tag, token string) (string, *apiError) {
	p, apiErr := e.prepare(s, body, given, capabilities)
	if apiErr != nil {
		return "", apiErr
	}
	p.tags = tags
	e.mu.Lock()
	if token != "" && s.lastToken == token {
		e.mu.Unlock()
		return s.id, nil // a retry of the request that started the current update
	}
	if s.busy || !updatable(s.status) {
		e.mu.Unlock()
		return "", validationError("Stack:%s is in %s state and can not be updated.", s.id, s.status)
	}
	previous := &plan{body: s.body, tpl: s.tpl, params: s.params, tags: s.tags}
	if bytes.Equal(bytes.TrimSpace(s.body), bytes.TrimSpace(body)) && sameParams(s.params, p.params) && sameTags(s.tags, tags) {
		e.mu.Unlock()
		return "", validationError("No updates are to be performed.")
	}
	s.body, s.tpl, s.params, s.tags, s.capabilities, s.lastToken, s.caller = p.body, p.tpl, p.params, tags, capabilities, token, caller
	s.description = p.tpl.Description
	s.updated = e.clock.Now().UTC()
	e.mu.Unlock()
	op := e.newOperation(s, token)
	op.emitStack("UPDATE_IN_PROGRESS", "User Initiated")
	e.start(s, func() { op.runUpdate(p, previous) })
	return s.id, nil
}

func sameParams(a, b map[string]template.ParamValue) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k].Value != v.Value || b[k].ResolvedValue != v.ResolvedValue {
			return false
		}
	}
	return true
}

func sameTags(a, b []Tag) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (c *call) deleteStack() (any, *apiError) {
	name := c.form.Get("StackName")
	if name == "" {
		return nil, validationError("1 validation error detected: Value null at 'stackName' failed to satisfy constraint: Member must not be null")
	}
	c.e.mu.Lock()
	s := c.e.find(c.account, c.region, name)
	protected := s != nil && s.protected && s.status != "DELETE_COMPLETE"
	c.e.mu.Unlock()
	if protected {
		return nil, validationError("Stack [%s] cannot be deleted while TerminationProtection is enabled", s.name)
	}
	if s != nil {
		c.e.beginDelete(s, c.form.Get("ClientRequestToken"))
	}
	return nil, nil
}

type updateProtectionResult struct {
	StackID string `xml:"StackId"`
}

func (c *call) updateTerminationProtection() (any, *apiError) {
	enable, given := c.form["EnableTerminationProtection"]
	if !given {
		return nil, validationError("1 validation error detected: Value null at 'enableTerminationProtection' failed to satisfy constraint: Member must not be null")
	}
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	s, apiErr := c.stackNamed()
	if apiErr != nil {
		return nil, apiErr
	}
	if s.status == "DELETE_IN_PROGRESS" || s.status == "DELETE_COMPLETE" {
		return nil, validationError("Stack:%s is in %s state and its termination protection can not be changed.", s.id, s.status)
	}
	s.protected = strings.EqualFold(enable[0], "true")
	return updateProtectionResult{StackID: s.id}, nil
}

const timeFormat = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(timeFormat)
}

type xmlParameter struct {
	ParameterKey   string `xml:"ParameterKey"`
	ParameterValue string `xml:"ParameterValue"`
	ResolvedValue  string `xml:"ResolvedValue,omitempty"`
}

type xmlOutput struct {
	OutputKey   string `xml:"OutputKey"`
	OutputValue string `xml:"OutputValue"`
	Description string `xml:"Description,omitempty"`
	ExportName  string `xml:"ExportName,omitempty"`
}

type xmlTag struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

type xmlDrift struct {
	StackDriftStatus string `xml:"StackDriftStatus"`
}

type xmlStack struct {
	StackID                     string         `xml:"StackId"`
	StackName                   string         `xml:"StackName"`
	Description                 string         `xml:"Description,omitempty"`
	Parameters                  []xmlParameter `xml:"Parameters>member"`
	CreationTime                string         `xml:"CreationTime"`
	LastUpdatedTime             string         `xml:"LastUpdatedTime,omitempty"`
	DeletionTime                string         `xml:"DeletionTime,omitempty"`
	StackStatus                 string         `xml:"StackStatus"`
	StackStatusReason           string         `xml:"StackStatusReason,omitempty"`
	DisableRollback             bool           `xml:"DisableRollback"`
	NotificationARNs            []string       `xml:"NotificationARNs>member"`
	Capabilities                []string       `xml:"Capabilities>member"`
	Outputs                     []xmlOutput    `xml:"Outputs>member"`
	Tags                        []xmlTag       `xml:"Tags>member"`
	EnableTerminationProtection bool           `xml:"EnableTerminationProtection"`
	DriftInformation            xmlDrift       `xml:"DriftInformation"`
}

// describe renders a stack. Caller holds e.mu.
func describe(s *stack) xmlStack {
	x := xmlStack{
		StackID: s.id, StackName: s.name, Description: s.description, CreationTime: formatTime(s.created),
		LastUpdatedTime: formatTime(s.updated), DeletionTime: formatTime(s.deleted), StackStatus: s.status,
		StackStatusReason: s.reason, DisableRollback: s.disableRollback, NotificationARNs: s.notificationARNs,
		Capabilities: s.capabilities, DriftInformation: xmlDrift{"NOT_CHECKED"}, EnableTerminationProtection: s.protected,
	}
	for _, k := range sortedKeys(s.params) {
		p := s.params[k]
		v := p.Value
		if p.NoEcho {
			v = "****"
		}
		x.Parameters = append(x.Parameters, xmlParameter{ParameterKey: k, ParameterValue: v, ResolvedValue: p.ResolvedValue})
	}
	for _, o := range s.outputs {
		x.Outputs = append(x.Outputs, xmlOutput{OutputKey: o.Key, OutputValue: o.Value, Description: o.Description, ExportName: o.ExportName})
	}
	for _, t := range s.tags {
		x.Tags = append(x.Tags, xmlTag{t.Key, t.Value})
	}
	return x
}

type describeStacksResult struct {
	Stacks []xmlStack `xml:"Stacks>member"`
}

func (c *call) describeStacks() (any, *apiError) {
	name := c.form.Get("StackName")
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	if name != "" {
		s := c.e.find(c.account, c.region, name)
		if s == nil {
			return nil, validationError("Stack with id %s does not exist", name)
		}
		return describeStacksResult{Stacks: []xmlStack{describe(s)}}, nil
	}
	var res describeStacksResult
	for i := len(c.e.stacks) - 1; i >= 0; i-- {
		s := c.e.stacks[i]
		if s.account == c.account && s.region == c.region && s.status != "DELETE_COMPLETE" {
			res.Stacks = append(res.Stacks, describe(s))
		}
	}
	return res, nil
}

type xmlEvent struct {
	StackID              string `xml:"StackId"`
	EventID              string `xml:"EventId"`
	StackName            string `xml:"StackName"`
	LogicalResourceID    string `xml:"LogicalResourceId"`
	PhysicalResourceID   string `xml:"PhysicalResourceId"`
	ResourceType         string `xml:"ResourceType"`
	Timestamp            string `xml:"Timestamp"`
	ResourceStatus       string `xml:"ResourceStatus"`
	ResourceStatusReason string `xml:"ResourceStatusReason,omitempty"`
	ClientRequestToken   string `xml:"ClientRequestToken,omitempty"`
}

type describeEventsResult struct {
	StackEvents []xmlEvent `xml:"StackEvents>member"`
	NextToken   string     `xml:"NextToken,omitempty"`
}

const pageSize = 100

// page returns the slice [start, start+pageSize) and the token of the next page.
func page(token string, n int) (start, end int, next string, err *apiError) {
	if token != "" {
		v, convErr := strconv.Atoi(token)
		if convErr != nil || v < 0 || v > n {
			return 0, 0, "", validationError("Invalid NextToken %q", token)
		}
		start = v
	}
	end = min(start+pageSize, n)
	if end < n {
		next = strconv.Itoa(end)
	}
	return start, end, next, nil
}

func (c *call) stackNamed() (*stack, *apiError) {
	name := c.form.Get("StackName")
	s := c.e.find(c.account, c.region, name)
	if s == nil {
		return nil, validationError("Stack [%s] does not exist", name)
	}
	return s, nil
}

func (c *call) describeStackEvents() (any, *apiError) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	s, apiErr := c.stackNamed()
	if apiErr != nil {
		return nil, apiErr
	}
	start, end, next, apiErr := page(c.form.Get("NextToken"), len(s.events))
	if apiErr != nil {
		return nil, apiErr
	}
	res := describeEventsResult{NextToken: next}
	for i := start; i < end; i++ {
		ev := s.events[len(s.events)-1-i] // newest first
		res.StackEvents = append(res.StackEvents, xmlEvent{
			StackID: ev.StackID, EventID: ev.EventID, StackName: ev.StackName, LogicalResourceID: ev.LogicalResourceID,
			PhysicalResourceID: ev.PhysicalResourceID, ResourceType: ev.ResourceType, Timestamp: formatTime(ev.Timestamp),
			ResourceStatus: ev.ResourceStatus, ResourceStatusReason: ev.ResourceStatusReason, ClientRequestToken: ev.ClientRequestToken,
		})
	}
	return res, nil
}

type xmlResource struct {
	StackName            string   `xml:"StackName,omitempty"`
	StackID              string   `xml:"StackId,omitempty"`
	LogicalResourceID    string   `xml:"LogicalResourceId"`
	PhysicalResourceID   string   `xml:"PhysicalResourceId"`
	ResourceType         string   `xml:"ResourceType"`
	Timestamp            string   `xml:"Timestamp,omitempty"`
	LastUpdatedTimestamp string   `xml:"LastUpdatedTimestamp,omitempty"`
	ResourceStatus       string   `xml:"ResourceStatus"`
	ResourceStatusReason string   `xml:"ResourceStatusReason,omitempty"`
	Description          string   `xml:"Description,omitempty"`
	DriftInformation     xmlDrift `xml:"DriftInformation"`
}

func resourcesOf(s *stack, logicalID string) []xmlResource {
	var out []xmlResource
	for _, id := range s.order {
		r := s.resources[id]
		if r == nil || (logicalID != "" && id != logicalID) {
			continue
		}
		out = append(out, xmlResource{
			StackName: s.name, StackID: s.id, LogicalResourceID: id, PhysicalResourceID: r.physicalID, ResourceType: r.typ,
			Timestamp: formatTime(r.updated), ResourceStatus: r.status, ResourceStatusReason: r.reason,
			Description: r.description, DriftInformation: xmlDrift{"NOT_CHECKED"},
		})
	}
	return out
}

type describeResourcesResult struct {
	StackResources []xmlResource `xml:"StackResources>member"`
}

func (c *call) describeStackResources() (any, *apiError) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	var s *stack
	if physical := c.form.Get("PhysicalResourceId"); physical != "" && c.form.Get("StackName") == "" {
		for _, candidate := range c.e.stacks {
			if candidate.account != c.account || candidate.region != c.region {
				continue
			}
			for _, r := range candidate.resources {
				if r.physicalID == physical {
					s = candidate
				}
			}
		}
		if s == nil {
			return nil, validationError("Stack for %s does not exist", physical)
		}
	} else {
		var apiErr *apiError
		if s, apiErr = c.stackNamed(); apiErr != nil {
			return nil, apiErr
		}
	}
	return describeResourcesResult{StackResources: resourcesOf(s, c.form.Get("LogicalResourceId"))}, nil
}

type describeResourceResult struct {
	StackResourceDetail xmlResource `xml:"StackResourceDetail"`
}

func (c *call) describeStackResource() (any, *apiError) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	s, apiErr := c.stackNamed()
	if apiErr != nil {
		return nil, apiErr
	}
	id := c.form.Get("LogicalResourceId")
	found := resourcesOf(s, id)
	if id == "" || len(found) == 0 {
		return nil, validationError("Resource %s does not exist for stack %s", id, s.name)
	}
	r := found[0]
	r.LastUpdatedTimestamp, r.Timestamp = r.Timestamp, ""
	return describeResourceResult{StackResourceDetail: r}, nil
}

type listResourcesResult struct {
	StackResourceSummaries []xmlResource `xml:"StackResourceSummaries>member"`
	NextToken              string        `xml:"NextToken,omitempty"`
}

func (c *call) listStackResources() (any, *apiError) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	s, apiErr := c.stackNamed()
	if apiErr != nil {
		return nil, apiErr
	}
	all := resourcesOf(s, "")
	start, end, next, apiErr := page(c.form.Get("NextToken"), len(all))
	if apiErr != nil {
		return nil, apiErr
	}
	res := listResourcesResult{NextToken: next}
	for _, r := range all[start:end] {
		r.StackName, r.StackID, r.LastUpdatedTimestamp, r.Timestamp, r.Description = "", "", r.Timestamp, "", ""
		res.StackResourceSummaries = append(res.StackResourceSummaries, r)
	}
	return res, nil
}

type xmlSummary struct {
	StackID             string   `xml:"StackId"`
	StackName           string   `xml:"StackName"`
	TemplateDescription string   `xml:"TemplateDescription,omitempty"`
	CreationTime        string   `xml:"CreationTime"`
	LastUpdatedTime     string   `xml:"LastUpdatedTime,omitempty"`
	DeletionTime        string   `xml:"DeletionTime,omitempty"`
	StackStatus         string   `xml:"StackStatus"`
	StackStatusReason   string   `xml:"StackStatusReason,omitempty"`
	DriftInformation    xmlDrift `xml:"DriftInformation"`
}

type listStacksResult struct {
	StackSummaries []xmlSummary `xml:"StackSummaries>member"`
	NextToken      string       `xml:"NextToken,omitempty"`
}

func (c *call) listStacks() (any, *apiError) {
	filter := map[string]bool{}
	for _, f := range c.list("StackStatusFilter") {
		filter[f] = true
	}
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	var all []xmlSummary
	for i := len(c.e.stacks) - 1; i >= 0; i-- {
		s := c.e.stacks[i]
		if s.account != c.account || s.region != c.region || (len(filter) > 0 && !filter[s.status]) {
			continue
		}
		all = append(all, xmlSummary{
			StackID: s.id, StackName: s.name, TemplateDescription: s.description, CreationTime: formatTime(s.created),
			LastUpdatedTime: formatTime(s.updated), DeletionTime: formatTime(s.deleted), StackStatus: s.status,
			StackStatusReason: s.reason, DriftInformation: xmlDrift{"NOT_CHECKED"},
		})
	}
	start, end, next, apiErr := page(c.form.Get("NextToken"), len(all))
	if apiErr != nil {
		return nil, apiErr
	}
	return listStacksResult{StackSummaries: all[start:end], NextToken: next}, nil
}

type getTemplateResult struct {
	TemplateBody    string   `xml:"TemplateBody"`
	StagesAvailable []string `xml:"StagesAvailable>member"`
}

func (c *call) getTemplate() (any, *apiError) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	s, apiErr := c.stackNamed()
	if apiErr != nil {
		return nil, apiErr
	}
	return getTemplateResult{TemplateBody: string(s.body), StagesAvailable: []string{"Original", "Processed"}}, nil
}

type xmlTemplateParameter struct {
	ParameterKey string `xml:"ParameterKey"`
	DefaultValue string `xml:"DefaultValue,omitempty"`
	NoEcho       bool   `xml:"NoEcho"`
	Description  string `xml:"Description,omitempty"`
}

type validateTemplateResult struct {
	Parameters         []xmlTemplateParameter `xml:"Parameters>member"`
	Description        string                 `xml:"Description,omitempty"`
	Capabilities       []string               `xml:"Capabilities>member"`
	CapabilitiesReason string                 `xml:"CapabilitiesReason,omitempty"`
}

func (c *call) validateTemplate() (any, *apiError) {
	body, apiErr := c.templateBody()
	if apiErr != nil {
		return nil, apiErr
	}
	tpl, err := template.Parse(body)
	if err != nil {
		return nil, asAPIError(err)
	}
	res := validateTemplateResult{Description: tpl.Description}
	for _, name := range tpl.SortedParameterNames() {
		p := tpl.Parameters[name]
		xp := xmlTemplateParameter{ParameterKey: name, NoEcho: p.NoEcho, Description: p.Description}
		if p.Default != nil {
			xp.DefaultValue = *p.Default
		}
		res.Parameters = append(res.Parameters, xp)
	}
	if need, types := tpl.IAMCapability(); need != "" {
		res.Capabilities = []string{need}
		res.CapabilitiesReason = "The following resource(s) require capabilities: [" + strings.Join(types, ", ") + "]"
	}
	return res, nil
}

type xmlExport struct {
	ExportingStackID string `xml:"ExportingStackId"`
	Name             string `xml:"Name"`
	Value            string `xml:"Value"`
}

type listExportsResult struct {
	Exports []xmlExport `xml:"Exports>member"`
}

func (c *call) listExports() (any, *apiError) {
	c.e.mu.Lock()
	defer c.e.mu.Unlock()
	exports := c.e.exports[regionKey{c.account, c.region}]
	var res listExportsResult
	for _, name := range sortedKeys(exports) {
		res.Exports = append(res.Exports, xmlExport{ExportingStackID: exports[name].stackID, Name: name, Value: exports[name].value})
	}
	return res, nil
}

// resultElement wraps an action's result under <ActionResult>.
type resultElement struct {
	name  string
	value any
}

func (r resultElement) MarshalXML(enc *xml.Encoder, _ xml.StartElement) error {
	return enc.EncodeElement(r.value, xml.StartElement{Name: xml.Name{Local: r.name}})
}

type responseMetadata struct {
	RequestID string `xml:"RequestId"`
}

func writeResult(w http.ResponseWriter, action string, result any) {
	type response struct {
		XMLName  xml.Name
		Xmlns    string           `xml:"xmlns,attr"`
		Result   *resultElement   `xml:",omitempty"`
		Metadata responseMetadata `xml:"ResponseMetadata"`
	}
	resp := response{XMLName: xml.Name{Local: action + "Response"}, Xmlns: cfnNamespace, Metadata: responseMetadata{uuid.NewString()}}
	if result != nil {
		resp.Result = &resultElement{name: action + "Result", value: result}
	}
	out, err := xml.Marshal(resp)
	if err != nil {
		writeError(w, &apiError{status: http.StatusInternalServerError, code: "InternalFailure", message: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write(append([]byte(xml.Header), out...))
}

func writeError(w http.ResponseWriter, e *apiError) {
	type errorBody struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	errType := "Sender"
	if e.status >= 500 {
		errType = "Receiver"
	}
	out, _ := xml.Marshal(struct {
		XMLName   xml.Name  `xml:"ErrorResponse"`
		Xmlns     string    `xml:"xmlns,attr"`
		Error     errorBody `xml:"Error"`
		RequestID string    `xml:"RequestId"`
	}{Xmlns: cfnNamespace, Error: errorBody{errType, e.code, e.message}, RequestID: uuid.NewString()})
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.status)
	_, _ = w.Write(append([]byte(xml.Header), out...))
}
