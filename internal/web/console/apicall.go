package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// APIError is a refusal of the JSON API as a console page shows it: the
// status, the API's error code, the field it names (if any) and its
// message.
type APIError struct {
	Status  int
	Code    string
	Field   string
	Message string
}

func (e *APIError) Error() string {
	if e.Field != "" {
		return e.Field + ": " + e.Message
	}
	return e.Message
}

// apiCall runs one JSON API request in-process as the caller of r: the
// same session cookie, the same peer address, so the API's guard,
// permission table, validation and audit decide exactly as they do for a
// browser calling the API itself. body (if not nil) is sent as JSON; a 2xx
// answer is decoded into out (if not nil). A 4xx/5xx answer is returned as
// *APIError (the page shows it, with its field); err is only for a request
// that could not be made or an answer that could not be read.
//
// The outer console request has already passed CrossOriginProtection; the
// inner one carries no Origin or Sec-Fetch-Site, so the API treats it as
// same-origin.
func (c *Console) apiCall(r *http.Request, method, path string, body, out any) (*APIError, error) {
	res, err := c.apiDo(r, method, path, body)
	if err != nil {
		return nil, err
	}
	return res.result(method, path, out)
}

// apiDo runs the request and keeps the whole answer (apiCall; the sign-in
// steps also pass its Set-Cookie on).
func (c *Console) apiDo(r *http.Request, method, path string, body any) (*recorder, error) {
	if c.api == nil {
		return nil, fmt.Errorf("console: no API handler")
	}
	var rd io.Reader = http.NoBody
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("console: encode %s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	in, err := http.NewRequestWithContext(r.Context(), method, path, rd)
	if err != nil {
		return nil, fmt.Errorf("console: build %s %s: %w", method, path, err)
	}
	in.RemoteAddr = r.RemoteAddr
	in.Host = r.Host
	in.TLS = r.TLS
	if body != nil {
		in.Header.Set("Content-Type", "application/json")
	}
	for _, ck := range r.Cookies() {
		if ck.Name == sessionCookie || ck.Name == deviceCookie {
			in.AddCookie(ck)
		}
	}
	res := &recorder{h: http.Header{}, code: http.StatusOK}
	c.api.ServeHTTP(res, in)
	return res, nil
}

// result is a 4xx/5xx answer as *APIError, or a 2xx answer decoded into
// out (if not nil).
func (res *recorder) result(method, path string, out any) (*APIError, error) {
	if res.code >= 400 {
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Field   string `json:"field"`
				Message string `json:"message"`
			} `json:"error"`
		}
		_ = json.Unmarshal(res.body.Bytes(), &e)
		msg := e.Error.Message
		if msg == "" {
			msg = strings.ToLower(http.StatusText(res.code))
		}
		return &APIError{Status: res.code, Code: e.Error.Code, Field: e.Error.Field, Message: msg}, nil
	}
	if out != nil && res.code != http.StatusNoContent {
		if err := json.Unmarshal(res.body.Bytes(), out); err != nil {
			return nil, fmt.Errorf("console: decode %s %s: %w", method, path, err)
		}
	}
	return nil, nil
}

// apiRefused answers a page whose API call was refused: the API's status
// (404 for another organisation's object, 403 for a missing permission,
// 401 → back to sign-in) with its message.
func (c *Console) apiRefused(w http.ResponseWriter, r *http.Request, e *APIError) {
	switch e.Status {
	case http.StatusUnauthorized:
		if r.Header.Get("HX-Request") == "true" {
			w.Header().Set("HX-Redirect", "/")
		} else {
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		}
		c.errorPage(w, r, http.StatusUnauthorized, "Sign in again.")
	case http.StatusNotFound:
		c.errorPage(w, r, http.StatusNotFound, "No such page.")
	case http.StatusForbidden:
		c.errorPage(w, r, http.StatusForbidden, "Your role does not allow this.")
	default:
		c.errorPage(w, r, e.Status, e.Error())
	}
}

// recorder keeps an in-process API answer (apiCall).
type recorder struct {
	h     http.Header
	code  int
	wrote bool
	body  bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.h }

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.code, r.wrote = code, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.body.Write(b)
}
