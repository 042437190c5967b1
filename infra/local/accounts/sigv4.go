package accounts

import (
	"net/http"
	"strings"
)

// Scope is the credential scope of a SigV4-signed request.
type Scope struct {
	AccessKeyID string
	Date        string // yyyymmdd
	Region      string
	Service     string // signing name: "sts", "cloudformation", "states", "sqs", ...
}

// SigningScope extracts the credential scope from a request signed with SigV4, either in
// the Authorization header or in a presigned URL (X-Amz-Credential). ok is false for an
// unsigned request.
func SigningScope(r *http.Request) (scope Scope, ok bool) {
	cred := ""
	if auth := r.Header.Get("Authorization"); strings.HasPrefix(auth, "AWS4-HMAC-SHA256") {
		for _, part := range strings.Split(strings.TrimPrefix(auth, "AWS4-HMAC-SHA256"), ",") {
			part = strings.TrimSpace(part)
			if v, found := strings.CutPrefix(part, "Credential="); found {
				cred = v
				break
			}
		}
	} else if v := r.URL.Query().Get("X-Amz-Credential"); v != "" {
		cred = v
	}
	if cred == "" {
		return Scope{}, false
	}
	// <access key>/<date>/<region>/<service>/aws4_request
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || parts[4] != "aws4_request" {
		return Scope{}, false
	}
	return Scope{AccessKeyID: parts[0], Date: parts[1], Region: parts[2], Service: parts[3]}, true
}
