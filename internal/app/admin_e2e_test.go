package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"vigil/internal/store"
)

// admDialogs counts the JavaScript dialogs a page opens (hostile text that
// ran would open one).
func admDialogs(b *chrome) *atomic.Int32 {
	b.t.Helper()
	var n atomic.Int32
	if err := chromedp.Listen(b.ctx, func(ev any) {
		if fmt.Sprintf("%T", ev) == "*page.EventJavascriptDialogOpening" {
			n.Add(1)
		}
	}); err != nil {
		b.t.Fatal(err)
	}
	return &n
}

// admJSON is s as a JavaScript string literal.
func admJSON(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestAdminPagesInBrowser: in headless Chromium the admin creates a person
// with a hostile name (nothing runs), registers a device for nobody, sees
// its credentials and the pairing QR image once (a reload shows the list,
// registers nothing and shows no secret), assigns it on the person's page;
// an auditor signs in and meets the 403 page on the registration page.
// The pages log no error and no CSP violation.
func TestAdminPagesInBrowser(t *testing.T) {
	chromiumPath(t)
	w, _, secret := admWorld(t)
	ctx := context.Background()
	st := w.a.Store()
	w.clk.Advance(30 * time.Second) // the enrolment used this step's code
	b := newChrome(t, "https://"+w.a.Addr("https"), 90*time.Second)
	dialogs := admDialogs(b)
	b.signIn("ada@example.org", strongPassword, secret, w.clk.Now())

	// A person with a hostile name.
	b.do("create a person",
		chromedp.Navigate(b.base+"/console/acme/people"),
		chromedp.WaitVisible(chromedp.CSS("#person-form")),
		chromedp.SendKeys(chromedp.CSS("#person-name"), admXSSImg),
		chromedp.SetValue(chromedp.CSS("#person-kind"), "worker"),
		chromedp.Click(chromedp.CSS(`#person-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("h1#person-name")),
	)
	if got := b.text("h1#person-name"); got != admXSSImg {
		t.Errorf("person heading %q", got)
	}
	ps, err := st.ListPeople(ctx, "acme")
	if err != nil || len(ps) != 1 {
		t.Fatalf("people %+v %v", ps, err)
	}
	pid := ps[0].ID

	// Register a device: the credentials and the QR code, once.
	b.do("register a device",
		chromedp.Navigate(b.base+"/console/acme/devices"),
		chromedp.WaitVisible(chromedp.CSS("#register-link")),
		chromedp.Click(chromedp.CSS("#register-link")),
		chromedp.WaitVisible(chromedp.CSS("#device-form")),
		chromedp.SendKeys(chromedp.CSS("#device-name"), "pendant "+admXSSSVG),
		chromedp.Click(chromedp.CSS(`#device-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("#device-secret")),
	)
	devSecret, devID := b.text("#device-secret"), b.text("#device-id")
	if len(devSecret) < 40 || devID == "" {
		t.Fatalf("credentials shown: id %q secret %q", devID, devSecret)
	}
	b.poll("the QR image loads", `(() => { const i = document.getElementById("pairing-qr"); return !!i && i.complete && i.naturalWidth >= 200 })()`, 10*time.Second)
	// The secret is in no URL: the history entry is the plain list.
	if n := b.eval(`location.pathname === "/console/acme/devices" && !location.href.includes(` + admJSON(devSecret) + `) ? 1 : 0`); n != 1 {
		t.Errorf("location after registering: %d", n)
	}
	b.do("reload", chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#devices")))
	if n := b.eval(`document.querySelectorAll("#device-secret, #pairing-qr").length + (document.body.innerHTML.includes(` + admJSON(devSecret) + `) ? 10 : 0)`); n != 0 {
		t.Errorf("after reload the credentials are still shown (%d)", n)
	}
	if ds, _ := st.ListDevices(ctx, "acme"); len(ds) != 1 {
		t.Errorf("reload registered again: %d devices", len(ds))
	}

	// Assign it on the person's page.
	b.do("assign the device",
		chromedp.Navigate(b.base+"/console/acme/people/"+pid),
		chromedp.WaitVisible(chromedp.CSS("#assign-form")),
		chromedp.SetValue(chromedp.CSS("#device-id"), devID),
		chromedp.Click(chromedp.CSS(`#assign-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS("p.notice")),
	)
	if d, err := st.GetDevice(ctx, devID); err != nil || d.PersonID != pid {
		t.Errorf("device %+v %v", d, err)
	}
	b.do("the list", chromedp.Navigate(b.base+"/console/acme/devices"), chromedp.WaitVisible(chromedp.CSS("#device-"+devID)))
	if got := b.text("#device-" + devID + " td.person"); got != admXSSImg {
		t.Errorf("assigned to %q", got)
	}
	b.screenshot("devices")
	if n := b.eval(`document.querySelectorAll('img[src="x"], svg').length`); n != 0 || dialogs.Load() != 0 {
		t.Errorf("hostile text ran: %d elements, %d dialogs", n, dialogs.Load())
	}
	b.noProblems()

	// An auditor may read the devices but not register one.
	w.clk.Advance(30 * time.Second)
	_, audSecret := admUser(t, w, "acme", store.RoleAuditor, "otto@example.org")
	w.clk.Advance(30 * time.Second)
	a := newChrome(t, "https://"+w.a.Addr("https"), 60*time.Second)
	a.signIn("otto@example.org", strongPassword, audSecret, w.clk.Now())
	a.do("the auditor's device list", chromedp.Navigate(a.base+"/console/acme/devices"), chromedp.WaitVisible(chromedp.CSS("#devices")))
	if n := a.eval(`document.querySelectorAll("#register-link, button.enrol").length`); n != 0 {
		t.Errorf("auditor sees %d write controls", n)
	}
	a.noProblems()
	a.do("the registration page", chromedp.Navigate(a.base+"/console/acme/devices/new"), chromedp.WaitVisible(chromedp.CSS("p.error")))
	if h, msg := a.text("h1"), a.text("p.error"); h != "403" || !strings.Contains(msg, "does not allow") {
		t.Errorf("auditor on the registration page: %q %q", h, msg)
	}
	if n := a.eval(`document.querySelectorAll("#device-form").length`); n != 0 {
		t.Error("the auditor got the registration form")
	}
}
