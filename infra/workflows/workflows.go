// Package workflows holds the Amazon States Language definitions of the control plane's
// workflows. The CDK app fills their ${...} placeholders with DefinitionSubstitutions; the
// local cloud fills them with Render. Both read the same embedded files, so what runs locally
// is what deploys.
package workflows

import (
	_ "embed"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Provision is the provision workflow (JSONPath ASL). Its only placeholder is
// ${ProvisionFunctionArn}: the provision Lambda, which every task invokes with a "step".
//
//go:embed provision.asl.json
var Provision string

// ProvisionFunctionArn is the placeholder name of the provision Lambda's ARN in Provision.
const ProvisionFunctionArn = "ProvisionFunctionArn"

// Command is the command workflow (JSONPath ASL): it sends one command to a deployment's
// agent through sendcommand and waits, through statewait, until the service acknowledges
// it succeeded. Its placeholders are ${SendCommandFunctionArn} and ${StateWaitFunctionArn}.
//
//go:embed command.asl.json
var Command string

// The placeholder names of Command.
const (
	SendCommandFunctionArn = "SendCommandFunctionArn"
	StateWaitFunctionArn   = "StateWaitFunctionArn"
)

// Upgrade is the upgrade workflow (JSONPath ASL): the upgrade Lambda's steps (plan, next,
// apply, await, poll, done, finish, fail), and for the operator and ClickHouse steps
// sendcommand and statewait as the command workflow uses them. Its placeholders are
// ${UpgradeFunctionArn}, ${SendCommandFunctionArn} and ${StateWaitFunctionArn}.
//
//go:embed upgrade.asl.json
var Upgrade string

// UpgradeFunctionArn is the placeholder name of the upgrade Lambda's ARN in Upgrade.
const UpgradeFunctionArn = "UpgradeFunctionArn"

// Peering is the peering workflow (JSONPath ASL): one peering's creation or deletion, or
// the PrivateLink endpoint service's, through the peering Lambda's steps and, to enable the
// private load balancer, sendcommand and statewait. Its placeholders are
// ${PeeringFunctionArn}, ${SendCommandFunctionArn} and ${StateWaitFunctionArn}.
//
//go:embed peering.asl.json
var Peering string

// PeeringFunctionArn is the placeholder name of the peering Lambda's ARN in Peering.
const PeeringFunctionArn = "PeeringFunctionArn"

// Teardown is the teardown workflow (JSONPath ASL): a deployment's retirement through the
// teardown Lambda's steps (begin, delete, await, poll, data, close, finish, fail) and the
// invite Lambda's release of the account's bus admission. Its placeholders are
// ${TeardownFunctionArn} and ${InviteFunctionArn}.
//
//go:embed teardown.asl.json
var Teardown string

// The placeholder names of Teardown.
const (
	TeardownFunctionArn = "TeardownFunctionArn"
	InviteFunctionArn   = "InviteFunctionArn"
)

// A placeholder is ${Name}, the syntax of CloudFormation's DefinitionSubstitutions. JSONPath
// never contains "${", so nothing else in a definition can look like one.
var placeholder = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)\}`)

// Placeholders returns the distinct placeholder names of a definition, sorted.
func Placeholders(def string) []string {
	var names []string
	for _, m := range placeholder.FindAllStringSubmatch(def, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	sort.Strings(names)
	return names
}

// Render replaces every ${Name} in def by subs[Name]. It refuses a placeholder without a
// value and a value without a placeholder: either means the caller and the definition
// disagree about the workflow's wiring, which must fail loudly rather than run half-wired.
// Values are inserted verbatim and must not contain characters that need JSON escaping.
func Render(def string, subs map[string]string) (string, error) {
	used := Placeholders(def)
	var missing, unknown []string
	for _, name := range used {
		if _, ok := subs[name]; !ok {
			missing = append(missing, name)
		}
	}
	for name, value := range subs {
		if !slices.Contains(used, name) {
			unknown = append(unknown, name)
		}
		if strings.ContainsAny(value, "\"\\\n\r\t") {
			return "", fmt.Errorf("render workflow: value of %s must not contain quotes, backslashes or control characters", name)
		}
	}
	sort.Strings(unknown)
	switch {
	case len(missing) > 0:
		return "", fmt.Errorf("render workflow: no value for placeholder(s) %s", strings.Join(missing, ", "))
	case len(unknown) > 0:
		return "", fmt.Errorf("render workflow: the definition has no placeholder(s) %s", strings.Join(unknown, ", "))
	}
	return placeholder.ReplaceAllStringFunc(def, func(m string) string {
		return subs[m[2:len(m)-1]]
	}), nil
}
