package datasim

import (
	"crypto/subtle"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// MetricsPath is where a ClickHouse service serves its Prometheus metrics (HTTPS, port 8443
// on AWS), the path byoc's scrape configuration names.
const MetricsPath = "/metrics_all"

// Metrics writes a service's /metrics_all in ClickHouse Cloud's exposition format: the
// custom metrics of system.custom_metrics (gauges) and the error counters of system.errors,
// one sample per replica host, as the seed's sample response shows.
func (s *Simulator) Metrics(w io.Writer, deploymentID, serviceID string) error {
	s.mu.Lock()
	p := s.dps[deploymentID]
	var svc *service
	if p != nil {
		svc = p.services[serviceID]
	}
	var replicas int
	var errors int
	if svc != nil {
		replicas = svc.ready
		if svc.broken {
			errors = 1
		}
	}
	s.mu.Unlock()
	if svc == nil {
		return fmt.Errorf("deployment %s has no simulated service %s", deploymentID, serviceID)
	}
	gauges := []struct{ name, help string }{
		{"ClickHouse_CustomMetric_StorageSystemTablesS3DiskBytes", "Bytes stored on disk `s3disk`"},
		{"ClickHouse_CustomMetric_NumberOfBrokenDetachedParts", "Number of broken detached parts"},
		{"ClickHouse_CustomMetric_LostPartCount", "The age of the oldest mutation (in seconds)"},
		{"ClickHouse_CustomMetric_NumberOfWarnings", "The number of warnings issued by the server. It usually indicates about possible misconfiguration"},
		{"ClickHouse_CustomMetric_TotalNumberOfErrors", "Total number of errors on server since the last restart"},
	}
	hosts := make([]string, replicas)
	for i := range hosts {
		hosts[i] = fmt.Sprintf("c-%s-server-%s-%d", strings.ReplaceAll(serviceID, "_", "-"), deploymentID[:min(7, len(deploymentID))], i)
	}
	var b strings.Builder
	for _, g := range gauges {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", g.name, g.help, g.name)
		for _, h := range hosts {
			v := 0
			switch g.name {
			case "ClickHouse_CustomMetric_StorageSystemTablesS3DiskBytes":
				v = 1 << 30
			case "ClickHouse_CustomMetric_TotalNumberOfErrors":
				v = errors
			}
			fmt.Fprintf(&b, "%s{hostname=%q} %d\n", g.name, h, v)
		}
	}
	fmt.Fprintf(&b, "# HELP ClickHouseErrorMetric_FILE_DOESNT_EXIST FILE_DOESNT_EXIST\n# TYPE ClickHouseErrorMetric_FILE_DOESNT_EXIST counter\n")
	for _, h := range hosts {
		fmt.Fprintf(&b, "ClickHouseErrorMetric_FILE_DOESNT_EXIST{hostname=%q,table=\"system.errors\"} %d\n", h, errors)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// MetricsHandler serves /metrics_all of one service behind HTTP basic auth, as a ClickHouse
// service does for its scraping user: a wrong or missing password is 401.
func (s *Simulator) MetricsHandler(deploymentID, serviceID, user, password string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, pw, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(pw), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="ClickHouse"`)
			http.Error(w, "Authentication failed", http.StatusUnauthorized)
			return
		}
		if r.URL.Path != MetricsPath {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		if err := s.Metrics(w, deploymentID, serviceID); err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
		}
	})
}
