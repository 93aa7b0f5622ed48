package console

import (
	"bufio"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Handler streams one organisation's events as text/event-stream to a GET.
// orgOf says which organisation the request may watch (from its
// authenticated session); ok false is 403. The stream ends when the client
// goes away, when it falls too far behind, or when the hub closes.
func (h *Hub) Handler(orgOf func(r *http.Request) (org string, ok bool)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.serve(w, r, orgOf)
	})
}

func (h *Hub) serve(w http.ResponseWriter, r *http.Request, orgOf func(*http.Request) (string, bool)) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	org, ok := orgOf(r)
	if !ok || org == "" {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	sub, err := h.Subscribe(org, r.Header.Get("Last-Event-ID"))
	if err != nil {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "live feed unavailable", http.StatusServiceUnavailable)
		return
	}
	defer sub.Close()

	rc := http.NewResponseController(w)
	defer func() { _ = rc.SetWriteDeadline(time.Time{}) }()
	hd := w.Header()
	hd.Set("Content-Type", "text/event-stream")
	hd.Set("Cache-Control", "no-store")
	hd.Set("X-Accel-Buffering", "no")
	hd.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)

	bw := bufio.NewWriterSize(w, 4096)
	flush := func() error {
		// A browser that stops reading must not hold this goroutine: each
		// flush gets its own deadline (ignored where unsupported).
		_ = rc.SetWriteDeadline(time.Now().Add(h.cfg.WriteTimeout))
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}
	bw.WriteString(": vigil live feed\nretry: " + strconv.FormatInt(h.cfg.Retry.Milliseconds(), 10) + "\n\n")
	for _, ev := range sub.Backlog() {
		writeEvent(bw, ev)
	}
	reason := "client gone"
	defer func() {
		h.log.DebugContext(r.Context(), "console stream ended", "org_id", org, "reason", reason)
	}()
	if err := flush(); err != nil {
		reason = "write failed"
		return
	}

	heartbeat := time.NewTicker(h.cfg.Heartbeat)
	defer heartbeat.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.Done():
			reason = "hub closed"
			if errors.Is(sub.Err(), ErrSlow) {
				reason = "too slow"
			}
			return
		case ev := <-sub.Events():
			writeEvent(bw, ev)
			// Take what else is queued before one flush.
			for more := true; more; {
				select {
				case ev := <-sub.Events():
					writeEvent(bw, ev)
				default:
					more = false
				}
			}
		case <-heartbeat.C:
			bw.WriteString(":\n\n")
		}
		if err := flush(); err != nil {
			reason = "write failed"
			return
		}
	}
}

// writeEvent writes ev in the SSE format. Publish made sure the name is a
// token and the data one line.
func writeEvent(bw *bufio.Writer, ev Event) {
	if ev.ID != "" {
		bw.WriteString("id: " + ev.ID + "\n")
	}
	bw.WriteString("event: " + ev.Name + "\ndata: ")
	bw.Write(ev.Data)
	bw.WriteString("\n\n")
}
