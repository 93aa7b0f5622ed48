package app_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"vigil/internal/app"
	"vigil/internal/clock"
	"vigil/internal/vigiltest"
)

// BenchmarkLoginUnknownVsWrongPassword is security requirement 21: a
// sign-in for an e-mail with no account and one for a real account with a
// wrong password, alternately (which goes first alternates too), with the
// same wrong password each round. It checks (always, not timing) that
// both get the same status, headers and body bytes, and reports each
// kind's median latency and their ratio; row 21 wants the medians within
// 10%, which only a quiet machine can judge (docs/benchmarks.md).
//
// The manual clock moves 16 minutes before every attempt, past the
// guard's longest delay (15 min), so no attempt is throttled: each one
// does the full argon2 work (a dummy hash for the unknown e-mail).
func BenchmarkLoginUnknownVsWrongPassword(b *testing.B) {
	clk := clock.NewManual(time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC))
	var out bytes.Buffer
	a, _ := vigiltest.StartAppWith(b, vigiltest.Config(b), app.Deps{Clock: clk, Out: &out})
	tok := bootstrapRe.FindString(out.String())
	if tok == "" {
		b.Fatalf("no bootstrap token printed: %q", out.String())
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: vigiltest.ClientTLS(b, a)}, Timeout: time.Minute}
	base := "https://" + a.Addr("https")
	login := func(email, password string) (int, string, []byte, time.Duration) {
		body := fmt.Sprintf(`{"email":%q,"password":%q}`, email, password)
		start := time.Now()
		resp, err := hc.Post(base+"/api/v1/auth/login", "application/json", strings.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		rb, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		h := resp.Header.Clone()
		h.Del("Date")
		var hs strings.Builder
		_ = h.Write(&hs)
		return resp.StatusCode, hs.String(), rb, d
	}
	// The bootstrap also opens the connection every login then reuses.
	resp, err := hc.Post(base+"/api/v1/auth/bootstrap", "application/json", strings.NewReader(
		`{"token":"`+tok+`","email":"ada@example.org","name":"Ada Admin","password":"`+strongPassword+`"}`))
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		b.Fatalf("bootstrap: %d %s", resp.StatusCode, body)
	}

	kinds := [2]struct{ name, email string }{{"unknown", "nobody@example.org"}, {"wrongpw", "ada@example.org"}}
	var (
		lat                [2][]time.Duration
		refStatus          int
		refHeader, refBody string
		round              int
	)
	for b.Loop() {
		pw := fmt.Sprintf("wrong guess %06d of the benchmark", round)
		for j := range 2 {
			k := (round + j) % 2
			clk.Advance(16 * time.Minute)
			st, hdr, bd, d := login(kinds[k].email, pw)
			if st != 401 {
				b.Fatalf("round %d, %s: %d %s, want 401", round, kinds[k].name, st, bd)
			}
			if refHeader == "" {
				refStatus, refHeader, refBody = st, hdr, string(bd)
			} else if st != refStatus || hdr != refHeader || string(bd) != refBody {
				b.Fatalf("round %d, %s: answer differs:\n%d %s%s\nwant:\n%d %s%s", round, kinds[k].name, st, hdr, bd, refStatus, refHeader, refBody)
			}
			lat[k] = append(lat[k], d)
		}
		round++
	}
	b.StopTimer()
	med := func(ds []time.Duration) float64 {
		s := slices.Clone(ds)
		slices.Sort(s)
		return float64(s[len(s)/2])
	}
	u, w := med(lat[0]), med(lat[1])
	b.ReportMetric(u, "unknown-ns/login")
	b.ReportMetric(w, "wrongpw-ns/login")
	b.ReportMetric(u/w, "unknown/wrongpw")
	b.Logf("%d rounds: median unknown %v, wrong password %v, ratio %.3f; identical 401 answers (%d bytes)",
		round, time.Duration(u), time.Duration(w), u/w, len(refBody))
}
