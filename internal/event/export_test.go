package event

// Test hooks into the fast paths, for the differential tests in
// fast_test.go.
var (
	FastMessage = fastMessage
	FastEvent   = fastEvent
	AppendEvent = appendEvent
)

// StrictUnmarshal is the encoding/json path the fast paths fall back to.
func StrictUnmarshal(b []byte, v any) error { return strictUnmarshal(b, v) }
