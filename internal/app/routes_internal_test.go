package app

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// Security row 17: a handler panic gives the client a generic 500; the
// detail reaches only the server log.
func TestPanicIsGeneric500(t *testing.T) {
	var logBuf bytes.Buffer
	a := &App{log: slog.New(slog.NewTextHandler(&logBuf, nil))}
	h := a.harden(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("secret detail: db password hunter2 at store.go:42")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", rec.Code)
	}
	body := rec.Body.String()
	for _, leak := range []string{"hunter2", "store.go", "goroutine", "panic"} {
		if strings.Contains(body, leak) {
			t.Errorf("500 body reveals %q: %s", leak, body)
		}
	}
	if !strings.Contains(logBuf.String(), "store.go:42") {
		t.Errorf("panic detail missing from the server log: %s", logBuf.String())
	}
}
