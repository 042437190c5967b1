package settings

import "regexp"

// DeploymentIDPattern is the one rule for a deployment id, everywhere it is read or written:
// invite generates ids that follow it, the infrastructure template refuses others (the id
// names the cluster, bucket, roles and command queue, whose AWS limits set the length), and
// the state messages, commands and waits that name a deployment are checked against it.
const DeploymentIDPattern = `^[a-z][a-z0-9]{2,19}$`

// DeploymentIDRule says DeploymentIDPattern in words, for error messages ("must be " + rule).
const DeploymentIDRule = "3 to 20 characters: lowercase letters and digits, starting with a letter"

var deploymentIDPattern = regexp.MustCompile(DeploymentIDPattern)

// ValidDeploymentID reports whether s follows DeploymentIDPattern.
func ValidDeploymentID(s string) bool { return deploymentIDPattern.MatchString(s) }
