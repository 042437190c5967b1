package schedules

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"time"
)

// IsScheduleWrite reports whether a Scheduler request creates or updates a schedule.
func IsScheduleWrite(r *http.Request) bool {
	return (r.Method == http.MethodPost || r.Method == http.MethodPut) && strings.HasPrefix(r.URL.Path, "/schedules/")
}

// Validate checks CreateSchedule and UpdateSchedule as EventBridge Scheduler does before
// passing them to next (kumo's store, which accepts any expression and time zone): a
// schedule that could never fire is refused at once, not discovered when it stays silent.
func Validate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			refuse(w, "the request body could not be read")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var req struct {
			ScheduleExpression         *string
			ScheduleExpressionTimezone string
			FlexibleTimeWindow         *struct {
				Mode                   string
				MaximumWindowInMinutes *int
			}
			Target *struct {
				Arn, RoleArn string
			}
			ActionAfterCompletion string
			State                 string
		}
		if err := json.Unmarshal(body, &req); err != nil {
			refuse(w, "the request body is not valid JSON")
			return
		}
		switch {
		case req.ScheduleExpression == nil:
			refuse(w, "ScheduleExpression is required")
			return
		case req.FlexibleTimeWindow == nil:
			refuse(w, "FlexibleTimeWindow is required")
			return
		case req.FlexibleTimeWindow.Mode != "OFF" && req.FlexibleTimeWindow.Mode != "FLEXIBLE":
			refuse(w, "FlexibleTimeWindow.Mode must be OFF or FLEXIBLE")
			return
		case req.FlexibleTimeWindow.Mode == "FLEXIBLE" && (req.FlexibleTimeWindow.MaximumWindowInMinutes == nil ||
			*req.FlexibleTimeWindow.MaximumWindowInMinutes < 1 || *req.FlexibleTimeWindow.MaximumWindowInMinutes > 1440):
			refuse(w, "FlexibleTimeWindow.MaximumWindowInMinutes must be 1 to 1440 when Mode is FLEXIBLE")
			return
		case req.Target == nil || req.Target.Arn == "" || req.Target.RoleArn == "":
			refuse(w, "Target.Arn and Target.RoleArn are required")
			return
		case req.ActionAfterCompletion != "" && req.ActionAfterCompletion != "NONE" && req.ActionAfterCompletion != "DELETE":
			refuse(w, "ActionAfterCompletion must be NONE or DELETE")
			return
		case req.State != "" && req.State != "ENABLED" && req.State != "DISABLED":
			refuse(w, "State must be ENABLED or DISABLED")
			return
		}
		loc, err := LoadZone(req.ScheduleExpressionTimezone)
		if err != nil {
			refuse(w, err.Error())
			return
		}
		if _, err := Parse(*req.ScheduleExpression, loc, time.Now()); err != nil {
			refuse(w, "Invalid Schedule Expression: "+err.Error())
			return
		}
		next.ServeHTTP(w, r)
	})
}

func refuse(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Errortype", "ValidationException")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"Message": msg})
}

// kumoAccount is the account kumo writes into every Scheduler ARN (its fixed IAM/Scheduler
// account), whoever created the schedule.
const kumoAccount = "123456789012"

// OwnAccount answers Scheduler requests with ARNs in account, the account whose schedules
// they are (the vendor's), where kumo writes its own fixed account: a schedule's ARN (in
// GetSchedule, ListSchedules and <aws.scheduler.schedule-arn>) names its owner on AWS.
func OwnAccount(next http.Handler, account string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{header: http.Header{}, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		body := bytes.ReplaceAll(rec.body.Bytes(), []byte(":"+kumoAccount+":schedule"), []byte(":"+account+":schedule"))
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.status)
		_, _ = w.Write(body)
	})
}

// OwnArn is a schedule ARN in account instead of kumo's.
func OwnArn(arn, account string) string {
	return strings.Replace(arn, ":"+kumoAccount+":schedule", ":"+account+":schedule", 1)
}

type recorder struct {
	header http.Header
	body   bytes.Buffer
	status int
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }
