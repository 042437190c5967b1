package scrape

import (
	"strings"
	"testing"
)

// The seed's scrape configuration: job, https, /metrics_all, basic_auth, honor_labels, 8443;
// and a scraping user with exactly the two grants the seed names.
func TestForGivesTheSeedsConfiguration(t *testing.T) {
	c := For("ch-primary", "h5ju65kv87-private.mhp0y4dmph.us-west-2.aws.byoc.clickhouse.cloud", true)
	want := `- job_name: "clickhouse-ch-primary"
  static_configs:
    - targets: ["h5ju65kv87-private.mhp0y4dmph.us-west-2.aws.byoc.clickhouse.cloud:8443"]
  scheme: https
  metrics_path: "/metrics_all"
  basic_auth:
    username: "scraping_user"
    password: "<the scraping user's password>"
  honor_labels: true
`
	if c.YAML != want {
		t.Fatalf("yaml:\n%s\nwant:\n%s", c.YAML, want)
	}
	if !c.Private || c.Target != "h5ju65kv87-private.mhp0y4dmph.us-west-2.aws.byoc.clickhouse.cloud:8443" {
		t.Fatalf("%+v", c)
	}
	grants := 0
	for _, q := range c.SQL {
		if strings.HasPrefix(q, "GRANT ") {
			grants++
		}
	}
	if grants != 2 || c.SQL[1] != "GRANT REMOTE ON *.* TO scraping_user" || c.SQL[2] != "GRANT SELECT ON system.custom_metrics TO scraping_user" {
		t.Fatalf("sql %v", c.SQL)
	}
}
