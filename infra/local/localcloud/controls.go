package localcloud

import (
	"encoding/json"
	"net/http"
)

// controls are the local cloud's own endpoints under frontdoor.LocalPrefix, for demos and
// for poking a running cloud from a shell:
//
//	POST /_byoc/schedules/{group}/{name}/fire   fire a Scheduler schedule now
//	POST /_byoc/events/{id}/redeliver           deliver a recent vendor-bus event again
func (c *Cloud) controls() {
	c.Door.HandleLocal("POST /_byoc/schedules/{group}/{name}/fire", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fired, err := c.Firer.FireNow(r.Context(), r.PathValue("group"), r.PathValue("name"))
		if err != nil && fired.ExecutionID == "" {
			answer(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			return
		}
		out := map[string]any{"schedule": fired.ScheduleArn, "target": fired.Target, "executionId": fired.ExecutionID, "attempt": fired.Attempt, "input": fired.Input}
		if err != nil {
			out["error"] = err.Error()
			answer(w, http.StatusBadGateway, out)
			return
		}
		answer(w, http.StatusOK, out)
	}))
	c.Door.HandleLocal("POST /_byoc/events/{id}/redeliver", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := c.Bus.Redeliver(r.Context(), r.PathValue("id")); err != nil {
			answer(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			return
		}
		answer(w, http.StatusOK, map[string]string{"redelivered": r.PathValue("id")})
	}))
}

func answer(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
