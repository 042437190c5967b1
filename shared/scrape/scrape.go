// Package scrape is the Prometheus integration ClickHouse Cloud offers: the scrape
// configuration for a service's /metrics_all endpoint and the SQL of a scraping user with
// the least privileges it needs.
package scrape

import (
	"fmt"
	"strconv"
	"strings"
)

// Path and Port are where a service serves its metrics: HTTPS, beside its SQL interface.
const (
	Path = "/metrics_all"
	Port = 8443
	// User is the name the SQL gives the scraping user.
	User = "scraping_user"
)

// Config is what an operator hands the customer's Prometheus.
type Config struct {
	JobName string `json:"jobName"`
	Target  string `json:"target"` // host:8443
	// Private: the target is the -private endpoint (the deployment is peered), reachable
	// only from the peered networks.
	Private bool   `json:"private"`
	YAML    string `json:"yaml"` // a scrape_configs entry, basic_auth left for the user's own
	// SQL creates the scraping user: REMOTE on *.* (to reach every replica) and SELECT on
	// system.custom_metrics, nothing else.
	SQL []string `json:"sql"`
}

// For gives the configuration of one service at host.
func For(serviceID, host string, private bool) Config {
	job := "clickhouse-" + serviceID
	target := host + ":" + strconv.Itoa(Port)
	var b strings.Builder
	fmt.Fprintf(&b, "- job_name: %q\n", job)
	b.WriteString("  static_configs:\n")
	fmt.Fprintf(&b, "    - targets: [%q]\n", target)
	b.WriteString("  scheme: https\n")
	fmt.Fprintf(&b, "  metrics_path: %q\n", Path)
	b.WriteString("  basic_auth:\n")
	fmt.Fprintf(&b, "    username: %q\n", User)
	b.WriteString("    password: \"<the scraping user's password>\"\n")
	b.WriteString("  honor_labels: true\n")
	return Config{JobName: job, Target: target, Private: private, YAML: b.String(), SQL: []string{
		"CREATE USER IF NOT EXISTS " + User + " IDENTIFIED BY '<password>'",
		"GRANT REMOTE ON *.* TO " + User,
		"GRANT SELECT ON system.custom_metrics TO " + User,
	}}
}
