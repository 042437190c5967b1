package schedules

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// kumo's Scheduler store writes its own account into every ARN; the local cloud answers with
// the account that owns the schedules, as EventBridge Scheduler does.
func TestSchedulerARNsNameTheirOwner(t *testing.T) {
	kumo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "999")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"ScheduleArn":"arn:aws:scheduler:us-east-1:123456789012:schedule/byoc-maintenance/d1","Target":{"RoleArn":"arn:aws:iam::123456789012:role/r"}}`)
	})
	rec := httptest.NewRecorder()
	OwnAccount(kumo, "000000000000").ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/schedules/d1", strings.NewReader("{}")))
	body := rec.Body.String()
	if rec.Code != http.StatusCreated || !strings.Contains(body, "arn:aws:scheduler:us-east-1:000000000000:schedule/byoc-maintenance/d1") {
		t.Fatalf("%d %s", rec.Code, body)
	}
	if !strings.Contains(body, "arn:aws:iam::123456789012:role/r") {
		t.Fatalf("a role ARN given by the caller was rewritten: %s", body)
	}
	if got := OwnArn("arn:aws:scheduler:us-east-1:123456789012:schedule/default/s", "000000000000"); got != "arn:aws:scheduler:us-east-1:000000000000:schedule/default/s" {
		t.Fatalf("OwnArn = %s", got)
	}
}
