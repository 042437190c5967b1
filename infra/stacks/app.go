// Package stacks is byoc's CDK app: the vendor's control-plane stack and the two templates
// customers' accounts receive (bootstrap, applied by the customer; infrastructure, created by
// the provision step). Build assembles all three into one app; cmd infra synthesizes it.
package stacks

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/byocloud/byoc/infra/workflows"
	"github.com/byocloud/byoc/shared/contract"
)

// CDK context keys the app reads (cdk.json "context", or `cdk synth -c key=value`).
const (
	// ContextBootstrapTemplateURL: where customers fetch cdk.out/ByocBootstrap.template.json.
	// Default: DefaultBootstrapTemplateURL.
	ContextBootstrapTemplateURL = "bootstrapTemplateUrl"
	// ContextXRayTracing: "true" turns on X-Ray for the functions and the workflow.
	ContextXRayTracing = "xrayTracing"
	// ContextSupportedRegions: comma-separated regions customers may choose; default: the
	// functions' built-in list (ClickHouse Cloud's AWS regions).
	ContextSupportedRegions = "supportedRegions"
	// ContextBuildDir: where `make build` leaves <function>/bootstrap. Default "build".
	ContextBuildDir = "buildDir"
	// ContextStateStaleAfter: statesweep's STATE_STALE_AFTER, a duration from 1m to 24h;
	// default: the function's own (5m).
	ContextStateStaleAfter = "stateStaleAfter"
)

// DefaultBootstrapTemplateURL is used when no bootstrapTemplateUrl is given: an S3 bucket of
// the vendor's account and region named byoc-templates-<account>-<region>, where the vendor
// publishes the bootstrap template (docs/cdk.md says how).
const DefaultBootstrapTemplateURL = "https://byoc-templates-${AWS::AccountId}-${AWS::Region}.s3.${AWS::Region}.${AWS::URLSuffix}/" +
	BootstrapStackID + ".template.json"

// TemplateBodyLimit is CloudFormation's limit on a TemplateBody passed to CreateStack. The
// provision step passes the infrastructure template inline, so the template must fit.
const TemplateBodyLimit = 51200

// Config is what the app needs besides its code: where the function binaries are and the
// choices CDK context can make.
type Config struct {
	BuildDir             string // holds <function>/bootstrap for every contract.Functions
	BootstrapTemplateURL string // literal URL; empty means DefaultBootstrapTemplateURL
	SupportedRegions     string
	Tracing              bool
	ProvisionDefinition  string // the provision ASL; ConfigFromContext sets workflows.Provision
	StateStaleAfter      string // statesweep's STATE_STALE_AFTER; empty keeps its default
}

// ConfigFromContext reads the app's CDK context. A malformed value is an error naming the key.
func ConfigFromContext(app awscdk.App) (Config, error) {
	cfg := Config{BuildDir: "build", ProvisionDefinition: workflows.Provision}
	get := func(key string) (string, bool) {
		v := app.Node().TryGetContext(jsii.String(key))
		if v == nil {
			return "", false
		}
		return fmt.Sprint(v), true
	}
	if v, ok := get(ContextBuildDir); ok {
		cfg.BuildDir = v
	}
	if v, ok := get(ContextBootstrapTemplateURL); ok {
		cfg.BootstrapTemplateURL = v
	}
	if v, ok := get(ContextSupportedRegions); ok {
		cfg.SupportedRegions = v
	}
	if v, ok := get(ContextStateStaleAfter); ok {
		cfg.StateStaleAfter = v
	}
	if v, ok := get(ContextXRayTracing); ok {
		on, err := strconv.ParseBool(v)
		if err != nil {
			return Config{}, fmt.Errorf("context %s=%q: must be true or false", ContextXRayTracing, v)
		}
		cfg.Tracing = on
	}
	return cfg, nil
}

// Validate checks the configuration before anything is built or written.
func (c Config) Validate() error {
	var errs []error
	if c.BootstrapTemplateURL != "" {
		u, err := url.Parse(c.BootstrapTemplateURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			errs = append(errs, fmt.Errorf("%s %q: must be an https:// URL (customers' CloudFormation fetches the template from it)",
				ContextBootstrapTemplateURL, c.BootstrapTemplateURL))
		}
	}
	for _, region := range strings.Split(c.SupportedRegions, ",") {
		if c.SupportedRegions != "" && !regionName.MatchString(strings.TrimSpace(region)) {
			errs = append(errs, fmt.Errorf("%s %q: %q is not a region name such as us-east-1", ContextSupportedRegions, c.SupportedRegions, region))
		}
	}
	if err := checkDefinition(c.ProvisionDefinition); err != nil {
		errs = append(errs, err)
	}
	if err := checkStaleAfter(c.StateStaleAfter); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", ContextStateStaleAfter, err))
	}
	var missing []string
	for _, fn := range contract.Functions {
		path := filepath.Join(c.BuildDir, fn, "bootstrap")
		if info, err := os.Stat(path); err != nil || !info.Mode().IsRegular() {
			missing = append(missing, path)
		}
	}
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("function binaries missing: %s: run `make build` first (it builds every function for linux/arm64 into %s/<function>/bootstrap)",
			strings.Join(missing, ", "), c.BuildDir))
	}
	return errors.Join(errs...)
}

// App is the assembled app: the three stacks and the infrastructure template as bundled for
// the provision function.
type App struct {
	ControlPlane   *ControlPlane
	Bootstrap      *Bootstrap
	Infrastructure *Infrastructure
	// PeerAccess is the peer-side template customers apply in the peer VPC's account.
	PeerAccess awscdk.Stack
	// InfraTemplate is the compact infrastructure template in the provision bundle.
	InfraTemplate []byte
	// ProvisionBundle is the directory deployed as the provision function's code.
	ProvisionBundle string
}

// NewApp creates the CDK app. Run by the CDK CLI it uses the CLI's output directory and
// context; run directly (`go run ./infra`) it writes to cdk.out, reads the context of cdk.json
// and turns on the metadata the CLI asks for by default, so both ways write the same templates.
// The environment is read here, in Go: the jsii runtime's process may have been started before
// it was set.
func NewApp() (awscdk.App, error) {
	outdir := os.Getenv("CDK_OUTDIR")
	if outdir == "" {
		outdir = "cdk.out"
	}
	var ctx map[string]any
	if fromCLI := os.Getenv("CDK_CONTEXT_JSON"); fromCLI != "" {
		if err := json.Unmarshal([]byte(fromCLI), &ctx); err != nil {
			return nil, fmt.Errorf("CDK_CONTEXT_JSON: %w", err)
		}
	} else {
		var err error
		if ctx, err = cdkJSONContext("cdk.json"); err != nil {
			return nil, err
		}
		for key, value := range map[string]any{
			"aws:cdk:enable-path-metadata":  true,
			"aws:cdk:enable-asset-metadata": true,
			"aws:cdk:version-reporting":     true,
		} {
			if _, set := ctx[key]; !set {
				ctx[key] = value
			}
		}
	}
	return awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(outdir), Context: &ctx}), nil
}

func cdkJSONContext(path string) (map[string]any, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]any{}, nil
	}
	if err != nil {
		return nil, err
	}
	var file struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if file.Context == nil {
		file.Context = map[string]any{}
	}
	return file.Context, nil
}

// Build adds the three stacks to app, with cdk-nag on each. The configuration is checked first
// and nothing is written when it is wrong. Otherwise it synthesizes the infrastructure
// template in-process and stages it with the provision binary in <outdir>/.bundles/provision,
// the provision function's code.
func Build(app awscdk.App, cfg Config) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	templates, err := SynthCustomerTemplates()
	if err != nil {
		return nil, err
	}
	template := templates[contract.InfraTemplateFile]
	bundle := filepath.Join(*app.Outdir(), ".bundles", contract.FunctionProvision)
	if err := stageProvisionBundle(bundle, filepath.Join(cfg.BuildDir, contract.FunctionProvision, "bootstrap"), template); err != nil {
		return nil, err
	}

	codeDirs := map[string]string{}
	for _, fn := range contract.Functions {
		dir, err := filepath.Abs(filepath.Join(cfg.BuildDir, fn))
		if err != nil {
			return nil, err
		}
		codeDirs[fn] = dir
	}
	codeDirs[contract.FunctionProvision] = bundle
	peeringBundle := filepath.Join(*app.Outdir(), ".bundles", contract.FunctionPeering)
	if err := stageBundle(peeringBundle, filepath.Join(cfg.BuildDir, contract.FunctionPeering, "bootstrap"), map[string][]byte{
		contract.PeeringTemplateFile: templates[contract.PeeringTemplateFile], contract.PrivateLinkTemplateFile: templates[contract.PrivateLinkTemplateFile],
	}); err != nil {
		return nil, err
	}
	codeDirs[contract.FunctionPeering] = peeringBundle

	templateURL, peerURL := cfg.BootstrapTemplateURL, ""
	if templateURL == "" {
		templateURL, peerURL = sub(DefaultBootstrapTemplateURL), sub(peerAccessTemplateURL(DefaultBootstrapTemplateURL))
	} else {
		peerURL = peerAccessTemplateURL(templateURL)
	}
	cp, err := NewControlPlaneStack(app, ControlPlaneStackID, ControlPlaneProps{
		CodeDirs:              codeDirs,
		BootstrapTemplateURL:  templateURL,
		PeerAccessTemplateURL: peerURL,
		ProvisionDefinition:   cfg.ProvisionDefinition,
		SupportedRegions:      cfg.SupportedRegions,
		Tracing:               cfg.Tracing,
		StateStaleAfter:       cfg.StateStaleAfter,
	})
	if err != nil {
		return nil, err
	}
	built := &App{
		ControlPlane:    cp,
		Bootstrap:       NewBootstrapStack(app, BootstrapStackID),
		Infrastructure:  NewInfrastructureStack(app, InfrastructureStackID),
		PeerAccess:      NewPeerAccessStack(app, PeerAccessStackID),
		InfraTemplate:   template,
		ProvisionBundle: bundle,
	}
	// The peering and PrivateLink templates are synthesized with the infrastructure template
	// (SynthCustomerTemplates) and added here too, so cdk-nag and cfn-lint check them.
	peering, privateLink := NewPeeringStack(app, PeeringStackID), NewPrivateLinkStack(app, PrivateLinkStackID)
	for _, stack := range []awscdk.Stack{cp.Stack, built.Bootstrap.Stack, built.Infrastructure.Stack, built.PeerAccess, peering, privateLink} {
		applyNag(stack)
	}
	return built, nil
}
