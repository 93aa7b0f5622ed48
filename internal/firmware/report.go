package firmware

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// States a device reports.
var states = map[string]bool{"installed": true, "failed": true, "checking": true}

// ValidateReport checks a device's report.
func ValidateReport(r StatusReport) error {
	if _, err := ParseVersion(r.Version); err != nil {
		return &FieldError{Field: "version", Msg: "want MAJOR.MINOR.PATCH, e.g. 1.2.0"}
	}
	if !states[r.State] {
		return &FieldError{Field: "state", Msg: "want installed, failed or checking"}
	}
	if len(r.Error) > 500 {
		return &FieldError{Field: "error", Msg: "at most 500 characters"}
	}
	if r.Error != "" && r.State != "failed" {
		return &FieldError{Field: "error", Msg: "only with state failed"}
	}
	switch r.Refusal {
	case "", RefusedRollback, RefusedFrozen, RefusedMixed, RefusedOversize, RefusedUntrusted, RefusedNotApproved,
		RefusedHardware, RefusedIncomplete, RefusedCorrupt, RefusedInvalid:
	default:
		return &FieldError{Field: "refusal", Msg: "not a known refusal"}
	}
	if r.Refusal != "" && r.State != "failed" {
		return &FieldError{Field: "refusal", Msg: "only with state failed"}
	}
	if r.SHA256 != "" {
		if b, err := hex.DecodeString(r.SHA256); err != nil || len(b) != sha256.Size {
			return &FieldError{Field: "sha256", Msg: "want 64 hex digits"}
		}
	}
	return nil
}

// MaxReportBytes bounds a status report body.
const MaxReportBytes = 4 << 10

// DecodeReport reads a device's status report strictly: one JSON object,
// known fields only, validated.
func DecodeReport(body []byte) (StatusReport, error) {
	var r StatusReport
	if len(body) > MaxReportBytes {
		return r, &FieldError{Field: "", Msg: fmt.Sprintf("body larger than %d bytes", MaxReportBytes)}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		var ute *json.UnmarshalTypeError
		if errors.As(err, &ute) {
			return r, &FieldError{ute.Field, "wrong type, want " + ute.Type.String()}
		}
		if f, ok := strings.CutPrefix(err.Error(), `json: unknown field "`); ok {
			return r, &FieldError{strings.TrimSuffix(f, `"`), "unknown field"}
		}
		return r, &FieldError{Field: "", Msg: "malformed JSON"}
	}
	if dec.More() {
		return r, &FieldError{Field: "", Msg: "trailing data after the JSON object"}
	}
	return r, ValidateReport(r)
}

// QuarantineUnknownFirmware is the quarantine reason of a device that
// reports firmware not in the release set.
const QuarantineUnknownFirmware = "unknown_firmware"

// FieldError is bad input to a firmware operation, naming the field.
type FieldError struct{ Field, Msg string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }
