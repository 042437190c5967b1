package localcloud

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/byocloud/byoc/shared/contract"
)

// UseAssets reads a synthesized template for where the CDK staged each function's bundle
// (the "aws:asset:path" metadata, relative to templatesDir) so the function processes see
// the bundle's files under /var/task, as on Lambda. Call it before deploying the template.
func (c *Cloud) UseAssets(template []byte, templatesDir string) error {
	var t struct {
		Resources map[string]struct {
			Type       string
			Metadata   map[string]any
			Properties struct {
				Tags []struct{ Key, Value string }
			}
		}
	}
	if err := json.Unmarshal(template, &t); err != nil {
		return fmt.Errorf("read the template's function assets: %w", err)
	}
	found := map[string]string{}
	for id, r := range t.Resources {
		if r.Type != "AWS::Lambda::Function" {
			continue
		}
		name := ""
		for _, tag := range r.Properties.Tags {
			if tag.Key == contract.FunctionTagKey {
				name = tag.Value
			}
		}
		path, _ := r.Metadata["aws:asset:path"].(string)
		if name == "" || path == "" {
			continue
		}
		dir, err := filepath.Abs(filepath.Join(templatesDir, path))
		if err != nil {
			return err
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return fmt.Errorf("function %s (%s): its bundle %s is missing: run `make synth`", id, name, dir)
		}
		found[name] = dir
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range found {
		c.assets[k] = v
	}
	return nil
}
