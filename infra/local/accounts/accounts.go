// Package accounts is the local cloud's notion of AWS accounts: who is calling (from the
// SigV4 access key of a request), which IAM roles exist in which account, and STS
// (AssumeRole, GetCallerIdentity) that enforces role trust policies and sts:ExternalId the
// way AWS does. kumo's STS answers any AssumeRole with credentials, which would hide exactly
// the onboarding failures byoc must handle (wrong ExternalId, role not created yet).
//
// Access keys:
//   - a key this package issued (AssumeRole, FunctionCredentials, WorkloadCredentials) acts
//     as that role session;
//   - a key that is exactly a 12-digit account id acts as that account's root user, so
//     `AWS_ACCESS_KEY_ID=111111111111 aws cloudformation ...` works in a customer account;
//   - any other key (the usual static dummy keys) is the vendor account's root user.
//
// Signatures are not verified and expirations are reported but not enforced: this is a
// development cloud, the checks that matter to byoc are who may assume which role.
package accounts

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// VendorAccount is the account the control plane runs in; it is kumo's own account id for
// Lambda, SQS, EventBridge and DynamoDB, so ARNs agree across the local cloud.
const VendorAccount = "000000000000"

// Principal is an authenticated caller.
type Principal struct {
	Account string // 12-digit account id
	Arn     string // arn:aws:iam::<acct>:root or arn:aws:sts::<acct>:assumed-role/<name>/<session>
	UserID  string // the account id for root; "<role id>:<session>" for role sessions
	RoleArn string // the IAM role ARN for role sessions, "" for root
	// Origin is the session name of the service session (a Lambda function's, a pod's) a
	// chain of AssumeRole calls began at; "" for root users and for sessions a root user
	// assumed. The local cloud's fault injection uses it to find which function process made
	// a call.
	Origin string
}

// IsRoot reports whether the principal is an account's root user.
func (p Principal) IsRoot() bool { return p.RoleArn == "" }

// Role is an IAM role known to the local cloud, created by a stack in its account.
type Role struct {
	Name               string
	Path               string          // "/" when empty
	TrustPolicy        json.RawMessage // AssumeRolePolicyDocument
	MaxSessionDuration time.Duration   // 1 hour when zero
	// IdentityPolicies are the permissions policies attached to the role (inline and
	// customer managed). They are evaluated when the role's sessions call AssumeRole, so a
	// control plane whose role may not assume the target role fails as it would on AWS.
	IdentityPolicies []json.RawMessage
}

// Arn returns the role's ARN in account.
func (r Role) Arn(account string) string {
	return fmt.Sprintf("arn:aws:iam::%s:role%s%s", account, normalizePath(r.Path), r.Name)
}

type session struct {
	principal Principal
	expires   time.Time
	secret    string // what a SigV4 signature is checked with (the local API gateway)
	token     string // the session token every request of the session must carry
}

// Accounts holds roles per account and the sessions it issued. Safe for concurrent use.
type Accounts struct {
	mu       sync.RWMutex
	roles    map[string]map[string]*Role // account -> role name -> role
	sessions map[string]session          // access key id -> session
	now      func() time.Time
	logger   *slog.Logger
}

// New returns an empty set of accounts: no roles, no sessions.
func New() *Accounts {
	return &Accounts{
		roles:    map[string]map[string]*Role{},
		sessions: map[string]session{},
		now:      time.Now,
		logger:   slog.Default(),
	}
}

// SetLogger sets where denied AssumeRole calls are explained (AWS's message says only
// "not authorized"; the log says which check failed).
func (a *Accounts) SetLogger(l *slog.Logger) { a.logger = l }

var (
	accountIDPattern = regexp.MustCompile(`^[0-9]{12}$`)
	roleNamePattern  = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
)

// RegisterRole records a role created in account (by a stack there). Registering a role
// that exists replaces it, as an update of the stack would.
func (a *Accounts) RegisterRole(account string, role Role) error {
	if !accountIDPattern.MatchString(account) {
		return fmt.Errorf("account %q: must be a 12-digit account id", account)
	}
	if !roleNamePattern.MatchString(role.Name) {
		return fmt.Errorf("RoleName %q: must be 1 to 64 characters of letters, digits and +=,.@_-", role.Name)
	}
	if _, err := ParsePolicy(role.TrustPolicy); err != nil {
		return fmt.Errorf("AssumeRolePolicyDocument of role %s: %w", role.Name, err)
	}
	for i, p := range role.IdentityPolicies {
		if _, err := ParsePolicy(p); err != nil {
			return fmt.Errorf("policy %d of role %s: %w", i, role.Name, err)
		}
	}
	role.Path = normalizePath(role.Path)
	if role.MaxSessionDuration == 0 {
		role.MaxSessionDuration = time.Hour
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.roles[account] == nil {
		a.roles[account] = map[string]*Role{}
	}
	a.roles[account][role.Name] = &role
	return nil
}

// RemoveRole forgets a role (its stack deleted it). Sessions already issued keep working
// until they expire, as on AWS.
func (a *Accounts) RemoveRole(account, roleName string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	delete(a.roles[account], roleName)
}

// LookupRole returns a copy of a registered role.
func (a *Accounts) LookupRole(account, roleName string) (Role, bool) {
	a.mu.RLock()
	defer a.mu.RUnlock()
	r, ok := a.roles[account][roleName]
	if !ok {
		return Role{}, false
	}
	return *r, true
}

// CallerAccount returns the account a request acts in, from its SigV4 access key.
func (a *Accounts) CallerAccount(r *http.Request) string {
	return a.Caller(r).Account
}

// Caller returns the principal a request acts as, from its SigV4 access key.
func (a *Accounts) Caller(r *http.Request) Principal {
	scope, _ := SigningScope(r)
	return a.principalFor(scope.AccessKeyID)
}

// PrincipalForAccessKey is Caller for an access key id already extracted.
func (a *Accounts) PrincipalForAccessKey(accessKeyID string) Principal {
	return a.principalFor(accessKeyID)
}

func (a *Accounts) principalFor(accessKeyID string) Principal {
	a.mu.RLock()
	s, ok := a.sessions[accessKeyID]
	a.mu.RUnlock()
	if ok {
		return s.principal
	}
	if accountIDPattern.MatchString(accessKeyID) {
		return RootPrincipal(accessKeyID)
	}
	return RootPrincipal(VendorAccount)
}

// AdminSecret is the secret access key of every account's root credentials (AdminCredentials):
// the access key id is the 12-digit account id.
const AdminSecret = "local"

// Secret returns the secret access key an access key id was issued with, and its principal:
// an account's root key (its 12-digit id, AdminSecret) or a live session's. sessionToken is
// the request's X-Amz-Security-Token. ok is false, as AWS answers "The security token
// included in the request is invalid", for a key the local cloud never issued, an expired
// session, a session key without its own token, and a root key with a token. Only services
// that check signatures (the local API gateway) ask; the rest of the local cloud trusts the
// key id, as its docs say.
func (a *Accounts) Secret(accessKeyID, sessionToken string) (secret string, p Principal, ok bool) {
	if accountIDPattern.MatchString(accessKeyID) {
		if sessionToken != "" {
			return "", Principal{}, false
		}
		return AdminSecret, RootPrincipal(accessKeyID), true
	}
	a.mu.RLock()
	s, found := a.sessions[accessKeyID]
	a.mu.RUnlock()
	if !found || !a.now().Before(s.expires) || subtle.ConstantTimeCompare([]byte(sessionToken), []byte(s.token)) != 1 {
		return "", Principal{}, false
	}
	return s.secret, s.principal, true
}

// RootPrincipal is the root user of account.
func RootPrincipal(account string) Principal {
	return Principal{Account: account, Arn: "arn:aws:iam::" + account + ":root", UserID: account}
}

// AdminCredentials returns credentials that act as account's root user (a customer applying
// the bootstrap stack, for example).
func AdminCredentials(account string) aws.Credentials {
	return aws.Credentials{AccessKeyID: account, SecretAccessKey: AdminSecret, Source: "byoc-local", AccountID: account}
}

// FunctionCredentials issues session credentials for a Lambda function running with the
// execution role roleArn, as the Lambda service does (it needs no trust check: the role's
// trust policy names lambda.amazonaws.com). The function's calls then carry the role's
// identity, which is what customer trust policies name.
func (a *Accounts) FunctionCredentials(roleArn, sessionName string, lifetime time.Duration) (aws.Credentials, error) {
	return a.serviceSession(roleArn, sessionName, lifetime)
}

// WorkloadCredentials issues session credentials for a role as EKS Pod Identity issues them
// to a pod whose service account is associated with the role (the local cloud plays EKS for
// the simulated data planes). There is no trust check, as for FunctionCredentials: the role
// trusts pods.eks.amazonaws.com, which the local cloud is. The session's UserID is
// RoleID(roleArn)+":"+sessionName, what SQS reports as the SenderId of its messages.
func (a *Accounts) WorkloadCredentials(roleArn, sessionName string, lifetime time.Duration) (aws.Credentials, error) {
	return a.serviceSession(roleArn, sessionName, lifetime)
}

// serviceSession is the one path for sessions an AWS service (Lambda, EKS) obtains for a
// workload: no caller, no trust check, default lifetime 12 hours.
func (a *Accounts) serviceSession(roleArn, sessionName string, lifetime time.Duration) (aws.Credentials, error) {
	account, _, name, err := parseRoleArn(roleArn)
	if err != nil {
		return aws.Credentials{}, err
	}
	// The session name becomes part of the UserID "<role id>:<session>" and of the session
	// ARN, so it must not contain ':' or '/': STS's characters, 1 to 64 of them.
	if !serviceSessionPattern.MatchString(sessionName) {
		return aws.Credentials{}, fmt.Errorf("session name %q: must be 1 to 64 characters of letters, digits and +=,.@_-", sessionName)
	}
	if lifetime <= 0 {
		lifetime = 12 * time.Hour
	}
	return a.issue(account, roleArn, name, sessionName, sessionName, lifetime), nil
}

var serviceSessionPattern = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)

func (a *Accounts) issue(account, roleArn, roleName, sessionName, origin string, lifetime time.Duration) aws.Credentials {
	p := Principal{
		Origin:  origin,
		Account: account,
		Arn:     fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", account, roleName, sessionName),
		UserID:  RoleID(roleArn) + ":" + sessionName,
		RoleArn: roleArn,
	}
	expires := a.now().Add(lifetime).UTC().Truncate(time.Second)
	key := "ASIA" + randomBase32(16)
	secret := base64.StdEncoding.EncodeToString(randomBytes(30))
	token := "IQoJb3JpZ2luX2VjE" + base64.StdEncoding.EncodeToString(randomBytes(96))
	a.mu.Lock()
	a.sessions[key] = session{principal: p, expires: expires, secret: secret, token: token}
	a.mu.Unlock()
	return aws.Credentials{
		AccessKeyID:     key,
		SecretAccessKey: secret,
		SessionToken:    token,
		Source:          "byoc-local",
		CanExpire:       true,
		Expires:         expires,
		AccountID:       account,
	}
}

// RoleID is the stable unique id of a role ("AROA..."), derived from its ARN.
func RoleID(roleArn string) string {
	sum := sha256.Sum256([]byte(roleArn))
	return "AROA" + base32.StdEncoding.EncodeToString(sum[:])[:17]
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return b
}

func randomBase32(n int) string {
	return base32.StdEncoding.EncodeToString(randomBytes(n))[:n]
}

func normalizePath(p string) string {
	if p == "" {
		return "/"
	}
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	if !strings.HasSuffix(p, "/") {
		p += "/"
	}
	return p
}

var roleArnPattern = regexp.MustCompile(`^arn:aws:iam::([0-9]{12}):role(/(?:[\x21-\x7e]*/)?)([\w+=,.@-]{1,64})$`)

// parseRoleArn splits arn:aws:iam::<acct>:role/<path/><name>.
func parseRoleArn(arn string) (account, path, name string, err error) {
	m := roleArnPattern.FindStringSubmatch(arn)
	if m == nil {
		return "", "", "", fmt.Errorf("%q is not a role ARN (arn:aws:iam::<12-digit account>:role/<name>)", arn)
	}
	return m[1], normalizePath(m[2]), m[3], nil
}
