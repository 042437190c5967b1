package stacks

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/byocloud/byoc/shared/contract"
)

var regionName = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-\d+$`)

// SynthInfrastructureTemplate synthesizes the infrastructure stack alone, in a throwaway app,
// and returns it as the provision step will send it: compact JSON without CDK metadata.
func SynthInfrastructureTemplate() ([]byte, error) {
	t, err := SynthCustomerTemplates()
	if err != nil {
		return nil, err
	}
	return t[contract.InfraTemplateFile], nil
}

// SynthCustomerTemplates synthesizes, in one in-process app, the templates functions pass
// inline to CreateStack in customer accounts: the infrastructure template (provision) and
// the peering and PrivateLink templates (peering), compacted, keyed by their file name in
// the function's bundle. Each must fit CloudFormation's TemplateBody limit.
func SynthCustomerTemplates() (map[string][]byte, error) {
	dir, err := os.MkdirTemp("", "byoc-customer-synth-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	app := awscdk.NewApp(&awscdk.AppProps{
		Outdir:             jsii.String(dir),
		AnalyticsReporting: jsii.Bool(false),
		Context:            &map[string]any{"aws:cdk:enable-path-metadata": false},
	})
	NewInfrastructureStack(app, InfrastructureStackID)
	NewPeeringStack(app, PeeringStackID)
	NewPrivateLinkStack(app, PrivateLinkStackID)
	assembly := app.Synth(nil)
	out := map[string][]byte{}
	for file, id := range map[string]string{contract.InfraTemplateFile: InfrastructureStackID,
		contract.PeeringTemplateFile: PeeringStackID, contract.PrivateLinkTemplateFile: PrivateLinkStackID} {
		raw, err := os.ReadFile(*assembly.GetStackByName(jsii.String(id)).TemplateFullPath())
		if err != nil {
			return nil, fmt.Errorf("read synthesized %s template: %w", id, err)
		}
		template, err := CompactTemplate(raw)
		if err != nil {
			return nil, err
		}
		if err := CheckTemplateBodySize(template); err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		out[file] = template
	}
	return out, nil
}

// CompactTemplate rewrites a synthesized template without what only the CDK reads: resource
// Metadata (construct paths, cdk-nag suppressions) and the CDKMetadata resource. Keys come out
// sorted, so the same template always gives the same bytes.
func CompactTemplate(raw []byte) ([]byte, error) {
	var template map[string]any
	if err := json.Unmarshal(raw, &template); err != nil {
		return nil, fmt.Errorf("compact template: %w", err)
	}
	resources, ok := template["Resources"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("compact template: Resources must be an object")
	}
	delete(resources, "CDKMetadata")
	for _, r := range resources {
		if resource, ok := r.(map[string]any); ok {
			delete(resource, "Metadata")
		}
	}
	if conditions, ok := template["Conditions"].(map[string]any); ok {
		delete(conditions, "CDKMetadataAvailable")
		if len(conditions) == 0 {
			delete(template, "Conditions")
		}
	}
	var out bytes.Buffer
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(template); err != nil {
		return nil, err
	}
	return bytes.TrimRight(out.Bytes(), "\n"), nil
}

// CheckTemplateBodySize fails when the template cannot be passed inline to CreateStack.
func CheckTemplateBodySize(template []byte) error {
	if len(template) > TemplateBodyLimit {
		return fmt.Errorf("infrastructure template is %d bytes: CloudFormation's TemplateBody limit is %d bytes; make the template leaner",
			len(template), TemplateBodyLimit)
	}
	return nil
}

// stageProvisionBundle writes the provision function's code directory: its bootstrap binary
// and the infrastructure template it passes to CreateStack (read from
// /var/task/<contract.InfraTemplateFile> at run time). The directory is rebuilt from scratch
// so no stale file can ship.
func stageProvisionBundle(dir, bootstrap string, template []byte) error {
	return stageBundle(dir, bootstrap, map[string][]byte{contract.InfraTemplateFile: template})
}

// stageBundle writes a function's code directory: its bootstrap binary and the files it
// reads from /var/task at run time.
func stageBundle(dir, bootstrap string, files map[string][]byte) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := copyFile(bootstrap, filepath.Join(dir, "bootstrap"), 0o755); err != nil {
		return fmt.Errorf("stage bundle %s: %w", dir, err)
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o644); err != nil {
			return fmt.Errorf("stage bundle %s: %w", dir, err)
		}
	}
	return nil
}

func copyFile(from, to string, mode os.FileMode) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
