package web

import (
	"bytes"
	"io"
	"reflect"
	"strings"
	"time"
)

var durationType = reflect.TypeOf(time.Duration(0))

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// unknownField extracts the field name from encoding/json's
// "json: unknown field \"x\"" error.
func unknownField(err error) (string, bool) {
	const p = `json: unknown field "`
	s := err.Error()
	if !strings.HasPrefix(s, p) || !strings.HasSuffix(s, `"`) {
		return "", false
	}
	return s[len(p) : len(s)-1], true
}
