package cfnengine

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/byocloud/byoc/infra/local/accounts"
)

// IsBusPermissionRequest reports whether a request is EventBridge PutPermission or
// RemovePermission (AWS JSON 1.1, X-Amz-Target AWSEvents.*). kumo has neither, and the
// local cloud must know every bus policy: it decides which customer accounts' forwarded
// events reach the vendor bus. Mount BusPermissions() for these requests, before kumo.
func IsBusPermissionRequest(r *http.Request) bool {
	switch r.Header.Get("X-Amz-Target") {
	case "AWSEvents.PutPermission", "AWSEvents.RemovePermission":
		return true
	}
	return false
}

// BusPermissions serves EventBridge PutPermission and RemovePermission for the vendor
// account's buses.
func (e *Engine) BusPermissions() http.Handler {
	return http.HandlerFunc(e.serveBusPermission)
}

var statementIDPattern = regexp.MustCompile(`^[a-zA-Z0-9-_]{1,64}$`)

func (e *Engine) serveBusPermission(w http.ResponseWriter, r *http.Request) {
	var in struct {
		EventBusName         string
		Action               string
		Principal            string
		StatementId          string //nolint:revive // the API's field name
		Policy               string
		RemoveAllPermissions bool
		Condition            *struct{ Type, Key, Value string }
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeJSONError(w, "ValidationException", "the request body is not valid JSON: "+err.Error())
		return
	}
	if caller := e.cfg.Accounts.CallerAccount(r); caller != e.cfg.VendorAccount {
		// The vendor's buses are the only buses; another account may not change their policy.
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.WriteHeader(http.StatusBadRequest)
		body, _ := json.Marshal(map[string]string{"__type": "AccessDeniedException",
			"message": "User: arn:aws:iam::" + caller + ":root is not authorized to perform: " + strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "AWSEvents.") + " on the vendor's event buses"})
		_, _ = w.Write(body)
		return
	}
	region := e.cfg.Region
	if scope, ok := accounts.SigningScope(r); ok && scope.Region != "" {
		region = scope.Region
	}
	bus := busName(in.EventBusName)
	busArn := fmt.Sprintf("arn:%s:events:%s:%s:event-bus/%s", partition(region), region, e.cfg.VendorAccount, bus)
	key := busKey(busArn)
	switch r.Header.Get("X-Amz-Target") {
	case "AWSEvents.PutPermission":
		doc, msg := permissionDocument(busArn, in.Policy, in.Action, in.Principal, in.StatementId, in.Condition)
		if msg != "" {
			writeJSONError(w, "ValidationException", msg)
			return
		}
		if _, err := accounts.ParsePolicy(doc); err != nil {
			writeJSONError(w, "ValidationException", "Policy: "+err.Error())
			return
		}
		e.mu.Lock()
		if e.busPolicies[key] == nil {
			e.busPolicies[key] = map[string]json.RawMessage{}
		}
		if in.Policy != "" {
			// A whole policy replaces what earlier PutPermission calls added.
			for k := range e.busPolicies[key] {
				if strings.HasPrefix(k, "perm:") {
					delete(e.busPolicies[key], k)
				}
			}
			e.busPolicies[key]["perm:"] = doc
		} else {
			e.busPolicies[key]["perm:"+in.StatementId] = doc
		}
		e.mu.Unlock()
	case "AWSEvents.RemovePermission":
		e.mu.Lock()
		if in.RemoveAllPermissions {
			for k := range e.busPolicies[key] {
				if strings.HasPrefix(k, "perm:") {
					delete(e.busPolicies[key], k)
				}
			}
			e.mu.Unlock()
			break
		}
		if _, ok := e.busPolicies[key]["perm:"+in.StatementId]; !ok || in.StatementId == "" {
			e.mu.Unlock()
			writeJSONError(w, "ResourceNotFoundException", "Statement with the provided id does not exist.")
			return
		}
		delete(e.busPolicies[key], "perm:"+in.StatementId)
		e.mu.Unlock()
	default:
		writeJSONError(w, "UnknownOperationException", "the stack engine serves only PutPermission and RemovePermission")
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_, _ = w.Write([]byte("{}"))
}

// permissionDocument builds the policy document of one PutPermission call, or says which
// parameter is wrong.
func permissionDocument(busArn, policy, action, principal, sid string, cond *struct{ Type, Key, Value string }) (json.RawMessage, string) {
	if policy != "" {
		if action != "" || principal != "" || sid != "" {
			return nil, "Policy cannot be combined with Action, Principal or StatementId."
		}
		return json.RawMessage(policy), ""
	}
	if action != "events:PutEvents" {
		return nil, fmt.Sprintf("Action %q: must be events:PutEvents.", action)
	}
	if !statementIDPattern.MatchString(sid) {
		return nil, fmt.Sprintf("StatementId %q: must be 1 to 64 letters, digits, '-' or '_'.", sid)
	}
	statement := map[string]any{"Sid": sid, "Effect": "Allow", "Action": action, "Resource": busArn}
	switch {
	case principal == "*":
		statement["Principal"] = "*"
	case accountPattern.MatchString(principal):
		statement["Principal"] = map[string]any{"AWS": "arn:aws:iam::" + principal + ":root"}
	default:
		return nil, fmt.Sprintf("Principal %q: must be a 12-digit account id or \"*\".", principal)
	}
	if cond != nil {
		statement["Condition"] = map[string]any{cond.Type: map[string]any{cond.Key: cond.Value}}
	}
	doc, _ := json.Marshal(map[string]any{"Version": "2012-10-17", "Statement": []any{statement}})
	return doc, ""
}

var accountPattern = regexp.MustCompile(`^[0-9]{12}$`)

func writeJSONError(w http.ResponseWriter, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(http.StatusBadRequest)
	body, _ := json.Marshal(map[string]string{"__type": code, "message": msg})
	_, _ = w.Write(body)
}
