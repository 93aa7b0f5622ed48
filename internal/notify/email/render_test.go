package email

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin on machines without a zone database

	"vigil/internal/clock"
	"vigil/internal/notify"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestGolden renders the bodies and subjects of each kind of message and
// compares them with testdata/golden (go test -update rewrites them).
func TestGolden(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	raised := time.Date(2026, 3, 14, 10, 2, 3, 0, time.UTC)
	n, err := New(Config{Host: "smtp.example.org", From: "alerts@vigil.example.org", Location: berlin, IDKey: []byte("k")},
		clock.NewManual(raised.Add(95*time.Second)), nil)
	if err != nil {
		t.Fatal(err)
	}
	base := notify.Message{
		Event: notify.EventRaised, AlertID: "al_1", OrgID: "org_1", Kind: "sos", Severity: "critical", State: "open",
		RaisedAt: raised, PersonName: "Bea Worker", Note: "Pressed twice.\nSecond line <b>bold?</b>",
		Position:   &notify.Position{Lat: 51.50735, Lon: -0.12776, AccuracyM: 8, At: raised.Add(-20 * time.Second)},
		ConsoleURL: "https://vigil.example.org/console/alerts/al_1",
		MapURL:     "https://vigil.example.org/map?alert=al_1&z=17",
		AckURL:     "https://vigil.example.org/ack/al_1?t=abc&sig=def",
	}
	reminder := base
	reminder.Event, reminder.Step, reminder.Attempt = notify.EventReminder, 1, 2
	cancelled := base
	cancelled.Event, cancelled.State, cancelled.AckURL, cancelled.Position, cancelled.Note = notify.EventCancelled, "cancelled", "", nil, ""
	acked := base
	acked.Event, acked.State, acked.AckedBy, acked.AckURL, acked.Kind = notify.EventAcked, "acknowledged", "Carl Supervisor", "", "missed_checkin"
	for name, m := range map[string]notify.Message{"raised": base, "reminder": reminder, "cancelled": cancelled, "acknowledged": acked} {
		t.Run(name, func(t *testing.T) {
			v := n.view(m, n.clk.Now())
			var text, html strings.Builder
			if err := n.text.Execute(&text, v); err != nil {
				t.Fatal(err)
			}
			if err := n.html.Execute(&html, v); err != nil {
				t.Fatal(err)
			}
			golden(t, name+".txt", "Subject: "+v.Subject+"\n\n"+text.String())
			golden(t, name+".html", html.String())
		})
	}
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it)\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestSubjectAndLinks(t *testing.T) {
	for _, tc := range []struct {
		in, want string
	}{
		{"Bea\r\nBcc: evil@example.org", "Bea Bcc: evil@example.org"},
		{"  Ann   \t Lee ", "Ann Lee"},
		{strings.Repeat("x", 70), strings.Repeat("x", 60) + "…"},
	} {
		if got := oneLine(tc.in, 60); got != tc.want {
			t.Errorf("oneLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		keep bool
	}{
		{"https://vigil.example.org/a?b=c&d=e%2F", true},
		{"http://localhost:8080/console", true},
		{"javascript:alert(1)", false},
		{"//evil.example/x", false},
		{"https://user:pw@vigil.example.org/", false},
		{"https://vigil.example.org/\"onmouseover=x", false},
		{"data:text/html,<script>", false},
		{"/relative/path", false},
	} {
		if got := linkOrEmpty(tc.in); (got == tc.in) != tc.keep || (!tc.keep && got != "") {
			t.Errorf("linkOrEmpty(%q) = %q, keep %v", tc.in, got, tc.keep)
		}
	}
	if got := idPart("al_1"); got != "al_1" {
		t.Errorf("idPart(al_1) = %q", got)
	}
	if got := idPart("a>b@c"); strings.ContainsAny(got, "<>@") {
		t.Errorf("idPart kept unsafe characters: %q", got)
	}
}
