package accounts

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/google/uuid"
)

const stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

// ServeHTTP answers STS in AWS's Query protocol (form-encoded request, XML response):
// AssumeRole and GetCallerIdentity.
func (a *Accounts) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeSTSError(w, http.StatusBadRequest, "Sender", "MalformedQueryString", err.Error())
		return
	}
	caller := a.Caller(r)
	switch action := r.Form.Get("Action"); action {
	case "AssumeRole":
		a.assumeRole(w, r, caller)
	case "GetCallerIdentity":
		writeSTSResult(w, "GetCallerIdentity", struct {
			Arn     string `xml:"Arn"`
			UserID  string `xml:"UserId"`
			Account string `xml:"Account"`
		}{caller.Arn, caller.UserID, caller.Account})
	default:
		writeSTSError(w, http.StatusBadRequest, "Sender", "InvalidAction",
			fmt.Sprintf("Could not find operation %s for version 2011-06-15", action))
	}
}

var (
	sessionNamePattern = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	externalIDPattern  = regexp.MustCompile(`^[\w+=,.@:/-]+$`) // length 2..1224 checked apart: RE2 caps repeats at 1000
)

func (a *Accounts) assumeRole(w http.ResponseWriter, r *http.Request, caller Principal) {
	roleArn := r.Form.Get("RoleArn")
	sessionName := r.Form.Get("RoleSessionName")
	if roleArn == "" {
		writeValidation(w, "Value null at 'roleArn' failed to satisfy constraint: Member must not be null")
		return
	}
	if sessionName == "" {
		writeValidation(w, "Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null")
		return
	}
	if !sessionNamePattern.MatchString(sessionName) {
		writeValidation(w, fmt.Sprintf("Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* and have length between 2 and 64", sessionName))
		return
	}
	duration := time.Hour
	if v := r.Form.Get("DurationSeconds"); v != "" {
		secs, err := strconv.Atoi(v)
		if err != nil || secs < 900 || secs > 43200 {
			writeValidation(w, fmt.Sprintf("Value '%s' at 'durationSeconds' failed to satisfy constraint: Member must have value between 900 and 43200", v))
			return
		}
		duration = time.Duration(secs) * time.Second
	}
	externalID, hasExternalID := r.Form["ExternalId"]
	if hasExternalID && (len(externalID[0]) < 2 || len(externalID[0]) > 1224 || !externalIDPattern.MatchString(externalID[0])) {
		writeValidation(w, fmt.Sprintf("Value '%s' at 'externalId' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@:\\/-]* and have length between 2 and 1224", externalID[0]))
		return
	}
	account, path, name, err := parseRoleArn(roleArn)
	if err != nil {
		writeValidation(w, err.Error())
		return
	}

	denied := func(why string) {
		a.logger.Info("sts:AssumeRole denied", "caller", caller.Arn, "role", roleArn, "why", why)
		writeSTSError(w, http.StatusForbidden, "Sender", "AccessDenied",
			fmt.Sprintf("User: %s is not authorized to perform: sts:AssumeRole on resource: %s", caller.Arn, roleArn))
	}
	role, ok := a.LookupRole(account, name)
	if !ok || role.Path != path {
		// AWS answers AccessDenied, not NoSuchEntity, so callers cannot probe for roles.
		denied("the role does not exist in account " + account)
		return
	}
	req := Request{Principal: caller, Action: "sts:AssumeRole", Resource: roleArn, Context: map[string][]string{
		"sts:RoleSessionName": {sessionName},
	}}
	if hasExternalID {
		req.Context["sts:ExternalId"] = externalID
	}
	trust, _ := ParsePolicy(role.TrustPolicy) // validated by RegisterRole
	if d := trust.Evaluate(req, true); !d.Allowed {
		denied("trust policy: " + d.Reason)
		return
	}
	if why := a.identityDenies(caller, account, req); why != "" {
		denied(why)
		return
	}
	if duration > role.MaxSessionDuration {
		writeValidation(w, "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.")
		return
	}
	creds := a.issue(account, roleArn, name, sessionName, caller.Origin, duration)
	type assumedRoleUser struct {
		Arn           string `xml:"Arn"`
		AssumedRoleID string `xml:"AssumedRoleId"`
	}
	type credentials struct {
		AccessKeyID     string `xml:"AccessKeyId"`
		SecretAccessKey string `xml:"SecretAccessKey"`
		SessionToken    string `xml:"SessionToken"`
		Expiration      string `xml:"Expiration"`
	}
	p := a.principalFor(creds.AccessKeyID)
	writeSTSResult(w, "AssumeRole", struct {
		AssumedRoleUser assumedRoleUser `xml:"AssumedRoleUser"`
		Credentials     credentials     `xml:"Credentials"`
	}{
		AssumedRoleUser: assumedRoleUser{Arn: p.Arn, AssumedRoleID: p.UserID},
		Credentials: credentials{
			AccessKeyID:     creds.AccessKeyID,
			SecretAccessKey: creds.SecretAccessKey,
			SessionToken:    creds.SessionToken,
			Expiration:      creds.Expires.UTC().Format(time.RFC3339),
		},
	})
}

// identityDenies applies the caller's own permissions to a cross-account AssumeRole: AWS
// requires both the target's trust policy and the caller's identity policies to allow it.
// Root users, and sessions of roles the local cloud does not know, are not checked.
func (a *Accounts) identityDenies(caller Principal, targetAccount string, req Request) string {
	if caller.IsRoot() || caller.Account == targetAccount {
		return ""
	}
	_, _, name, err := parseRoleArn(caller.RoleArn)
	if err != nil {
		return ""
	}
	role, ok := a.LookupRole(caller.Account, name)
	if !ok {
		return ""
	}
	allowed := false
	reason := "the caller's role " + caller.RoleArn + " has no policy allowing sts:AssumeRole on " + req.Resource
	for _, doc := range role.IdentityPolicies {
		p, err := ParsePolicy(doc)
		if err != nil {
			continue
		}
		d := p.Evaluate(req, false)
		if d.Denied {
			return "caller's identity policy: " + d.Reason
		}
		allowed = allowed || d.Allowed
	}
	if !allowed {
		return reason
	}
	return ""
}

func writeValidation(w http.ResponseWriter, msg string) {
	writeSTSError(w, http.StatusBadRequest, "Sender", "ValidationError", msg)
}

func writeSTSResult(w http.ResponseWriter, action string, result any) {
	type metadata struct {
		RequestID string `xml:"RequestId"`
	}
	out, err := xml.Marshal(struct {
		XMLName  xml.Name
		Xmlns    string `xml:"xmlns,attr"`
		Result   resultElement
		Metadata metadata `xml:"ResponseMetadata"`
	}{
		XMLName:  xml.Name{Local: action + "Response"},
		Xmlns:    stsNamespace,
		Result:   resultElement{XMLName: xml.Name{Local: action + "Result"}, Value: result},
		Metadata: metadata{uuid.NewString()},
	})
	if err != nil {
		writeSTSError(w, http.StatusInternalServerError, "Receiver", "InternalFailure", err.Error())
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	_, _ = w.Write(append([]byte(xml.Header), out...))
}

// resultElement wraps an action's result struct under <ActionResult>.
type resultElement struct {
	XMLName xml.Name
	Value   any
}

func (e resultElement) MarshalXML(enc *xml.Encoder, start xml.StartElement) error {
	return enc.EncodeElement(e.Value, xml.StartElement{Name: e.XMLName})
}

func writeSTSError(w http.ResponseWriter, status int, errType, code, msg string) {
	type errorBody struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	out, _ := xml.Marshal(struct {
		XMLName   xml.Name  `xml:"ErrorResponse"`
		Xmlns     string    `xml:"xmlns,attr"`
		Error     errorBody `xml:"Error"`
		RequestID string    `xml:"RequestId"`
	}{Xmlns: stsNamespace, Error: errorBody{errType, code, msg}, RequestID: uuid.NewString()})
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write(append([]byte(xml.Header), out...))
}

// AssumeDenied says why caller may not assume roleArn (its trust policy, or, across
// accounts, the caller's own policies), or "" when it may. Services that assume a role on
// their caller's behalf (CloudFormation with a VPC peering's PeerRoleArn) check this way.
func (a *Accounts) AssumeDenied(caller Principal, roleArn string) string {
	account, path, name, err := parseRoleArn(roleArn)
	if err != nil {
		return err.Error()
	}
	role, ok := a.LookupRole(account, name)
	if !ok || role.Path != path {
		return "the role does not exist in account " + account
	}
	req := Request{Principal: caller, Action: "sts:AssumeRole", Resource: roleArn, Context: map[string][]string{}}
	trust, _ := ParsePolicy(role.TrustPolicy)
	if d := trust.Evaluate(req, true); !d.Allowed {
		return "trust policy: " + d.Reason
	}
	return a.identityDenies(caller, account, req)
}

// RoleDenies says why the role's permissions policies do not allow action on resource
// (with the request's condition keys in context), or "" when they do.
func (a *Accounts) RoleDenies(roleArn, action, resource string, context map[string][]string) string {
	account, _, name, err := parseRoleArn(roleArn)
	if err != nil {
		return err.Error()
	}
	role, ok := a.LookupRole(account, name)
	if !ok {
		return "the role does not exist in account " + account
	}
	allowed := false
	for _, doc := range role.IdentityPolicies {
		p, err := ParsePolicy(doc)
		if err != nil {
			continue
		}
		d := p.Evaluate(Request{Action: action, Resource: resource, Context: context}, false)
		if d.Denied {
			return "denied: " + d.Reason
		}
		allowed = allowed || d.Allowed
	}
	if !allowed {
		return fmt.Sprintf("no policy of %s allows %s on %s", roleArn, action, resource)
	}
	return ""
}
