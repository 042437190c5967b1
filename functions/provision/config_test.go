package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/byocloud/byoc/shared/contract"
)

func goodEnv(t *testing.T) map[string]string {
	t.Helper()
	path := filepath.Join(t.TempDir(), contract.InfraTemplateFile)
	if err := os.WriteFile(path, []byte("{\n  \"Resources\": {\n    \"Vpc\": {\"Type\": \"AWS::EC2::VPC\"}\n  }\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		contract.EnvTableName:            "byoc",
		contract.EnvStateQueueArn:        "arn:aws:sqs:us-east-1:999999999999:byoc-state",
		contract.EnvProvisionerRoleArn:   "arn:aws:iam::999999999999:role/byoc-provisioner",
		contract.EnvInfraTemplatePath:    path,
		contract.EnvMaintenanceTargetArn: "arn:aws:lambda:us-east-1:999999999999:function:byoc-maintenance",
		contract.EnvSchedulerRoleArn:     "arn:aws:iam::999999999999:role/byoc-scheduler",
		contract.EnvSchedulerDLQArn:      "arn:aws:sqs:us-east-1:999999999999:byoc-events-dlq",
		contract.EnvScheduleGroup:        "ByocControlPlane-maintenance",
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := goodEnv(t)
	c, err := ConfigFromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if c.ControlPlaneAccountID != "999999999999" || c.ControlPlaneRoleArn != env[contract.EnvProvisionerRoleArn] || c.MaxAttempts != DefaultMaxAttempts || c.StateQueueArn != env[contract.EnvStateQueueArn] {
		t.Fatalf("config %+v", c)
	}
	if c.TemplateBody != `{"Resources":{"Vpc":{"Type":"AWS::EC2::VPC"}}}` {
		t.Fatalf("template not compacted: %q", c.TemplateBody)
	}
	if c.StateQueueURL != "" {
		t.Fatalf("state queue URL %q without STATE_QUEUE_URL", c.StateQueueURL)
	}
	env[contract.EnvStateQueueURL] = "https://sqs.us-east-1.amazonaws.com/999999999999/byoc-state"
	if c, err := ConfigFromEnv(func(k string) string { return env[k] }); err != nil || c.StateQueueURL != env[contract.EnvStateQueueURL] {
		t.Fatalf("state queue URL %q, %v", c.StateQueueURL, err)
	}
	env[contract.EnvMaxProvisionAttempts] = "5"
	if c, _ := ConfigFromEnv(func(k string) string { return env[k] }); c.MaxAttempts != 5 {
		t.Fatalf("max attempts %d", c.MaxAttempts)
	}
}

func TestConfigFromEnvRefusesBadValues(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.json")
	_ = os.WriteFile(big, []byte(`{"Description":"`+strings.Repeat("x", maxTemplateBody)+`"}`), 0o600)
	notJSON := filepath.Join(t.TempDir(), "t.yaml")
	_ = os.WriteFile(notJSON, []byte("Resources:\n  Vpc: {}\n"), 0o600)
	cases := []struct {
		name, key, value, want string
	}{
		{"no table", contract.EnvTableName, "", "TABLE_NAME must be set"},
		{"no queue", contract.EnvStateQueueArn, "", "STATE_QUEUE_ARN must be set"},
		{"no role", contract.EnvProvisionerRoleArn, "", "PROVISIONER_ROLE_ARN must be set"},
		{"bad role", contract.EnvProvisionerRoleArn, "byoc-provisioner", "must be an IAM role ARN"},
		{"no template", contract.EnvInfraTemplatePath, "", "INFRA_TEMPLATE_PATH must be set"},
		{"missing template", contract.EnvInfraTemplatePath, "/nonexistent/t.json", "no such file"},
		{"yaml template", contract.EnvInfraTemplatePath, notJSON, "is not a JSON template"},
		{"huge template", contract.EnvInfraTemplatePath, big, "over CloudFormation's TemplateBody limit"},
		{"attempts zero", contract.EnvMaxProvisionAttempts, "0", "MAX_PROVISION_ATTEMPTS \"0\" must be a whole number from 1 to 10"},
		{"attempts word", contract.EnvMaxProvisionAttempts, "three", "must be a whole number"},
		{"unknown region", contract.EnvSupportedRegions, "us-east-1,atlantis-1", "atlantis-1"},
		{"state queue name", contract.EnvStateQueueURL, "byoc-state", `STATE_QUEUE_URL "byoc-state" must be an SQS queue URL`},
		{"state queue arn", contract.EnvStateQueueURL, "arn:aws:sqs:us-east-1:999999999999:byoc-state", "must be an SQS queue URL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := goodEnv(t)
			env[c.key] = c.value
			_, err := ConfigFromEnv(func(k string) string { return env[k] })
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to contain %q", err, c.want)
			}
		})
	}
}
