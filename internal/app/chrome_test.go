package app_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"vigil/internal/auth/mfa"
)

// chrome is one headless Chromium for a browser test: its context (with
// a deadline), the console log it collects, and small helpers that fail
// the test with the page's HTML.
type chrome struct {
	t    *testing.T
	ctx  context.Context
	logs *consoleLog
	base string // https://host:port of the server under test
}

// newChrome starts Debian's Chromium headless for the server at base
// (https://host:port) with a fresh profile; it trusts the server's own CA
// in this browser only. extra adds options (e.g. window size). The browser
// and its log listener stop when the test ends; on failure the browser's
// log is printed.
func newChrome(t *testing.T, base string, timeout time.Duration, extra ...chromedp.ExecAllocatorOption) *chrome {
	t.Helper()
	chromium := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.IgnoreCertErrors,
		chromedp.WindowSize(1366, 768),
	)
	opts = append(opts, extra...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	logs := &consoleLog{}
	lctx, stopListening := context.WithCancel(bctx)
	listened := make(chan struct{})
	messages := chromedp.Console(lctx)
	go func() {
		defer close(listened)
		for m, err := range messages {
			if err != nil {
				return
			}
			logs.add(m)
		}
	}()
	ctx, cancel := context.WithTimeout(bctx, timeout)
	t.Cleanup(func() {
		cancel()
		stopListening()
		<-listened
		if t.Failed() {
			for _, l := range logs.lines() {
				t.Log("browser: " + l)
			}
		}
		cancelBrowser()
		cancelAlloc()
	})
	return &chrome{t: t, ctx: ctx, logs: logs, base: base}
}

// failed ends the test with what failed and the page's HTML.
func (b *chrome) failed(what string, err error) {
	b.t.Helper()
	html, _ := chromedp.Run(b.ctx, chromedp.OuterHTML(chromedp.CSS("html")))
	b.t.Fatalf("%s: %v\npage:\n%s", what, err, html)
}

// do runs steps or fails the test.
func (b *chrome) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.failed(what, err)
	}
}

// text reads an element's text content in one evaluation ("" if absent):
// a live region may be re-rendered between finding a node and reading it.
func (b *chrome) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](fmt.Sprintf(
		`(() => { const e = document.querySelector(%q); return e ? e.textContent : "" })()`, sel)))
	if err != nil {
		b.failed("text of "+sel, err)
	}
	return strings.TrimSpace(s)
}

// eval evaluates js, which must give a number.
func (b *chrome) eval(js string) int {
	b.t.Helper()
	n, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](js))
	if err != nil {
		b.failed(js, err)
	}
	return n
}

// poll waits until js is true.
func (b *chrome) poll(what, js string, timeout time.Duration) {
	b.t.Helper()
	if _, err := chromedp.Run(b.ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(timeout))); err != nil {
		b.failed(what, err)
	}
}

// signIn signs in at the console's sign-in page with password and a TOTP
// code for now (the caller advances the clock between uses of one code)
// and waits for the signed-in page.
func (b *chrome) signIn(email, password string, totpSecret []byte, now time.Time) {
	b.t.Helper()
	b.do("sign in",
		chromedp.Navigate(b.base+"/"),
		chromedp.WaitVisible(chromedp.CSS("#login-form")),
		chromedp.SendKeys(chromedp.CSS("#email"), email),
		chromedp.SendKeys(chromedp.CSS("#password"), password),
		chromedp.Submit(chromedp.CSS("#login-form")),
		chromedp.WaitVisible(chromedp.CSS("#totp-form")),
		chromedp.SendKeys(chromedp.CSS("#code"), mfa.TOTPCode(totpSecret, now)),
		chromedp.Submit(chromedp.CSS("#totp-form")),
		chromedp.WaitNotPresent(chromedp.CSS("#totp-form")),
	)
}

// problems fails the test if the page logged an error, an exception or a
// CSP violation.
func (b *chrome) noProblems() {
	b.t.Helper()
	if p := b.logs.problems(); len(p) > 0 {
		b.t.Errorf("the page logged errors or CSP violations:\n%s", strings.Join(p, "\n"))
	}
}

// screenshot saves the viewport as PNG: into docs/screenshots/<name>.png
// when VIGIL_SCREENSHOTS=1 (to refresh the README's pictures; commit
// them), into the test's temporary directory otherwise, so the step runs
// either way.
func (b *chrome) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		b.failed("screenshot "+name, err)
	}
	dir := b.t.TempDir()
	if os.Getenv("VIGIL_SCREENSHOTS") == "1" {
		dir = filepath.Join("..", "..", "docs", "screenshots")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
