// Package scenario runs byoc's onboarding end to end on a local cloud: deploy the control
// plane from the synthesized template, invite a customer, apply the bootstrap stack as
// that customer, and follow the forwarded event, the provision workflow and the
// infrastructure stack to the final deployment record. Its failure scenarios are the ones
// the control plane must survive; byoc-local runs them for people, the e2e tests for CI.
package scenario

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/byocloud/byoc/infra/local/localcloud"
	"github.com/byocloud/byoc/shared/contract"
)

// Template files the CDK app writes to cdk.out/.
const (
	ControlPlaneTemplate = "ByocControlPlane.template.json"
	BootstrapTemplate    = "ByocBootstrap.template.json"
	PeerAccessTemplate   = "ByocPeerAccess.template.json"
	ControlPlaneStack    = localcloud.ControlPlaneStack
)

// ControlPlane is the deployed control plane: its stack outputs.
type ControlPlane struct {
	Outputs  map[string]string
	Warnings []string
}

// Output names of the control-plane stack the scenarios read.
const (
	outTable             = "TableName"
	outProvisionMachine  = "ProvisionStateMachineArn"
	outBootstrapTemplate = "BootstrapTemplateUrl"
	outVendorBusName     = "VendorEventBusName"
)

// OutputCommandMachine is the output holding the command workflow's ARN: an operator (or a
// test) starts it to send a command to a deployment and wait for its acknowledgement.
const OutputCommandMachine = "CommandStateMachineArn"

// Outputs of the maintenance part: the upgrade workflow and the schedule group of the
// deployments' maintenance schedules.
const (
	OutputUpgradeMachine   = "UpgradeStateMachineArn"
	outMaintenanceSchedule = "MaintenanceScheduleGroup"
)

// Deploy deploys cdk.out/ByocControlPlane.template.json into the vendor account and
// publishes the bootstrap template where the invite's quick-create link points.
func Deploy(ctx context.Context, c *localcloud.Cloud, templatesDir string) (ControlPlane, error) {
	body, err := os.ReadFile(filepath.Join(templatesDir, ControlPlaneTemplate))
	if err != nil {
		return ControlPlane{}, fmt.Errorf("read the control-plane template (run `make synth`): %w", err)
	}
	if err := c.UseAssets(body, templatesDir); err != nil {
		return ControlPlane{}, err
	}
	outputs, warnings, err := c.Stacks.DeployTemplate(ctx, localcloud.VendorAccount, ControlPlaneStack, body, nil)
	if err != nil {
		return ControlPlane{}, fmt.Errorf("deploy the control plane: %w", err)
	}
	for _, name := range []string{outTable, outProvisionMachine, outBootstrapTemplate, outVendorBusName, OutputCommandMachine, OutputUpgradeMachine, outMaintenanceSchedule} {
		if outputs[name] == "" {
			return ControlPlane{}, fmt.Errorf("deploy the control plane: the stack has no output %s", name)
		}
	}
	bootstrap, err := os.ReadFile(filepath.Join(templatesDir, BootstrapTemplate))
	if err != nil {
		return ControlPlane{}, fmt.Errorf("read the bootstrap template (run `make synth`): %w", err)
	}
	if err := publish(ctx, c, outputs[outBootstrapTemplate], bootstrap); err != nil {
		return ControlPlane{}, fmt.Errorf("publish the bootstrap template: %w", err)
	}
	// The peer-side template is published beside it, the same way.
	peer, err := os.ReadFile(filepath.Join(templatesDir, PeerAccessTemplate))
	if err != nil {
		return ControlPlane{}, fmt.Errorf("read the peer access template (run `make synth`): %w", err)
	}
	if err := publish(ctx, c, outputs[contract.OutputPeerAccessTemplateURL], peer); err != nil {
		return ControlPlane{}, fmt.Errorf("publish the peer access template: %w", err)
	}
	return ControlPlane{Outputs: outputs, Warnings: warnings}, nil
}

// publish puts a template in the local S3 at the object a virtual-hosted S3 URL names
// (https://<bucket>.s3.<region>.amazonaws.com/<key>), as the vendor's release publishes it.
func publish(ctx context.Context, c *localcloud.Cloud, templateURL string, body []byte) error {
	u, err := url.Parse(templateURL)
	if err != nil || !strings.Contains(u.Host, ".s3.") {
		return fmt.Errorf("%q is not a virtual-hosted S3 URL", templateURL)
	}
	bucket := u.Host[:strings.Index(u.Host, ".s3.")]
	key := strings.TrimPrefix(u.Path, "/")
	cfg := c.WatchConfig()
	if err := s3Put(ctx, cfg, c.URL+"/"+bucket, nil); err != nil && !strings.Contains(err.Error(), "BucketAlready") {
		return err
	}
	return s3Put(ctx, cfg, c.URL+"/"+bucket+"/"+key, body)
}

// s3Put sends a SigV4-signed PUT to S3 at the front door (path style): the project's
// modules include no S3 client, and publishing needs only two PUTs.
func s3Put(ctx context.Context, cfg aws.Config, target string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		return err
	}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hash, "s3", cfg.Region, time.Now()); err != nil {
		return err
	}
	client := http.DefaultClient
	if hc, ok := cfg.HTTPClient.(*http.Client); ok {
		client = hc
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("S3 PUT %s: %s: %s", target, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}

// functionOutput is the control-plane output naming a function ("InviteFunctionName").
func functionOutput(byocName string) string {
	return strings.ToUpper(byocName[:1]) + byocName[1:] + "FunctionName"
}

// FunctionName returns the Lambda name of a control-plane function (contract.Functions).
func (cp ControlPlane) FunctionName(byocName string) (string, error) {
	if n := cp.Outputs[functionOutput(byocName)]; n != "" {
		return n, nil
	}
	return "", fmt.Errorf("the control plane has no function %q (known: %s)", byocName, strings.Join(contract.Functions, ", "))
}
