package console

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"image/png"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/boombuler/barcode"
	"github.com/boombuler/barcode/qr"

	"vigil/internal/auth"
)

// deviceRoutes are the devices pages: the list (last seen, battery,
// firmware, assignment), registering a device (its credentials and a
// pairing QR code shown once, in the answer to the POST) and issuing an
// enrolment token (shown once likewise).
var deviceRoutes = []route{
	{"GET /console/{org}/devices", false, func(c *Console) http.HandlerFunc { return c.devicesPage }},
	{"GET /console/{org}/devices/new", false, func(c *Console) http.HandlerFunc { return c.newDevicePage }},
	{"POST /console/{org}/devices", false, func(c *Console) http.HandlerFunc { return c.registerDevice }},
	{"POST /console/{org}/devices/{id}/enrol-token", false, func(c *Console) http.HandlerFunc { return c.enrolToken }},
	{"POST /console/{org}/devices/{id}/revoke", false, func(c *Console) http.HandlerFunc { return c.deviceTrust("revoke") }},
	{"POST /console/{org}/devices/{id}/release", false, func(c *Console) http.HandlerFunc { return c.deviceTrust("release") }},
}

// mqttPort is the device listener's default port (config mqtt.listen).
const mqttPort = "8883"

type deviceRow struct {
	deviceAPI
	PersonName string
	Seen       string
	Power      string
}

type enrolTokenView struct {
	DeviceID   string
	DeviceName string
	Token      string
	ExpiresAt  time.Time
}

type devicesView struct {
	Nav      Nav
	Org      string
	Devices  []deviceRow
	CanWrite bool
	Token    *enrolTokenView // shown once, after the POST that made it
	Error    string
}

func (c *Console) devicesView(r *http.Request, p *auth.Principal, org string) (devicesView, *APIError, error) {
	v := devicesView{Nav: nav(p, org, "devices"), Org: org, CanWrite: can(p, org, auth.DevicesWrite)}
	var out struct {
		Devices []deviceAPI `json:"devices"`
	}
	e, err := c.apiCall(r, http.MethodGet, "/api/v1/orgs/"+org+"/devices", nil, &out)
	if err != nil || e != nil {
		return v, e, err
	}
	names := map[string]string{}
	if can(p, org, auth.PeopleRead) {
		ps, e, err := c.people(r, org)
		if err != nil {
			return v, nil, err
		}
		if e == nil {
			for _, x := range ps {
				names[x.ID] = x.Name
			}
		}
	}
	slices.SortFunc(out.Devices, func(a, b deviceAPI) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	for _, d := range out.Devices {
		row := deviceRow{deviceAPI: d, PersonName: names[d.PersonID], Seen: "never", Power: "—"}
		if d.LastSeen != nil {
			row.Seen = d.LastSeen.UTC().Format("2006-01-02 15:04 UTC")
		}
		if d.Battery != nil {
			row.Power = strconv.Itoa(*d.Battery) + " %"
		}
		v.Devices = append(v.Devices, row)
	}
	return v, nil, nil
}

func (c *Console) devicesPage(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.DevicesRead)
	if !ok {
		return
	}
	v, e, err := c.devicesView(r, p, org)
	switch {
	case err != nil:
		c.fail(w, r, err)
	case e != nil:
		c.apiRefused(w, r, e)
	default:
		c.render(w, http.StatusOK, "devices.html", v)
	}
}

// --- registering --------------------------------------------------------------

// credsView is a new device's credentials, shown once.
type credsView struct {
	DeviceID string
	Secret   string
	Name     string
	PersonID string
	Person   string
	MQTTHost string
	MQTTPort string
	PairLink string
	QR       template.URL // data:image/png;base64 QR code of PairLink
}

type deviceNewView struct {
	Nav        Nav
	Org        string
	People     []personAPI
	SeesPeople bool
	Form       struct{ Name, PersonID string }
	Errors     formErrors
	Creds      *credsView
}

func (c *Console) deviceNewView(r *http.Request, p *auth.Principal, org string) (deviceNewView, error) {
	v := deviceNewView{Nav: nav(p, org, "devices"), Org: org, Errors: formErrors{}}
	if can(p, org, auth.PeopleRead) {
		ps, e, err := c.people(r, org)
		if err != nil {
			return v, err
		}
		v.People, v.SeesPeople = ps, e == nil
	}
	return v, nil
}

func (c *Console) newDevicePage(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.DevicesWrite)
	if !ok {
		return
	}
	v, err := c.deviceNewView(r, p, org)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	v.Form.PersonID = r.URL.Query().Get("person")
	c.render(w, http.StatusOK, "device_new.html", v)
}

// registerDevice registers through POST /api/v1/orgs/{org}/devices and
// shows the answer's credentials in this one response (no-store, no
// redirect: the secret is in no URL and no later page).
func (c *Console) registerDevice(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.DevicesWrite)
	if !ok {
		return
	}
	if !form(w, r) {
		c.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	body := map[string]string{"name": r.PostFormValue("name")}
	if pid := r.PostFormValue("person_id"); pid != "" {
		body["person_id"] = pid
	}
	var out struct {
		DeviceID string `json:"device_id"`
		Secret   string `json:"secret"`
		Name     string `json:"name"`
		PersonID string `json:"person_id"`
	}
	e, err := c.apiCall(r, http.MethodPost, "/api/v1/orgs/"+org+"/devices", body, &out)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	v, verr := c.deviceNewView(r, p, org)
	if verr != nil {
		c.fail(w, r, verr)
		return
	}
	if e != nil {
		fe, ok := fieldError(e, "name", "person_id")
		if !ok {
			c.apiRefused(w, r, e)
			return
		}
		v.Form.Name, v.Form.PersonID, v.Errors = body["name"], body["person_id"], fe
		c.render(w, e.Status, "device_new.html", v)
		return
	}
	host := r.Host
	if h, _, err := net.SplitHostPort(r.Host); err == nil {
		host = h
	}
	link := "https://" + r.Host + "/app/#device=" + url.QueryEscape(out.DeviceID) + "&secret=" + url.QueryEscape(out.Secret)
	qrURL, err := qrDataURL(link)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	cv := &credsView{DeviceID: out.DeviceID, Secret: out.Secret, Name: out.Name, PersonID: out.PersonID,
		MQTTHost: host, MQTTPort: mqttPort, PairLink: link, QR: qrURL}
	for _, x := range v.People {
		if x.ID == out.PersonID {
			cv.Person = x.Name
		}
	}
	v.Creds = cv
	c.render(w, http.StatusOK, "device_new.html", v)
}

// qrDataURL is a QR code of s as a PNG data: URL.
func qrDataURL(s string) (template.URL, error) {
	code, err := qr.Encode(s, qr.M, qr.Auto)
	if err != nil {
		return "", fmt.Errorf("console: qr code: %w", err)
	}
	code, err = barcode.Scale(code, 256, 256)
	if err != nil {
		return "", fmt.Errorf("console: qr code: %w", err)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, code); err != nil {
		return "", fmt.Errorf("console: qr code: %w", err)
	}
	// A PNG the server made: safe as an image URL.
	return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes())), nil
}

// enrolToken issues a single-use enrolment token through POST
// /api/v1/devices/{id}/enrol-token and shows it once on the list.
func (c *Console) enrolToken(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.DevicesWrite)
	if !ok {
		return
	}
	id := r.PathValue("id")
	v, e, err := c.devicesView(r, p, org)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if e != nil {
		c.apiRefused(w, r, e)
		return
	}
	// The device must be this organisation's (the API checks its own
	// organisation; the page checks the path's).
	var name string
	found := false
	for _, d := range v.Devices {
		if d.ID == id {
			name, found = d.Name, true
		}
	}
	if !found {
		c.decided(w, r, p, auth.Hide, org, auth.DevicesWrite, "device", id)
		return
	}
	var out struct {
		DeviceID  string    `json:"device_id"`
		Token     string    `json:"token"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	e, err = c.apiCall(r, http.MethodPost, "/api/v1/devices/"+url.PathEscape(id)+"/enrol-token", map[string]string{}, &out)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if e != nil {
		if e.Status == http.StatusConflict || e.Status == http.StatusServiceUnavailable {
			v.Error = e.Message
			c.render(w, e.Status, "devices.html", v)
			return
		}
		c.apiRefused(w, r, e)
		return
	}
	v.Token = &enrolTokenView{DeviceID: id, DeviceName: name, Token: out.Token, ExpiresAt: out.ExpiresAt}
	c.render(w, http.StatusOK, "devices.html", v)
}

// quarantineReasons says in words why a device was quarantined.
var quarantineReasons = map[string]string{
	"acl_denials":       "kept publishing or subscribing outside its own topics",
	"flood":             "sent far more messages than a tracker does",
	"impossible_travel": "reported positions further apart than anything travels",
}

// deviceTrust revokes a device for good or releases it from quarantine,
// through POST /api/v1/devices/{id}/revoke|release with the admin's
// reason (both audited with high severity by the API).
func (c *Console) deviceTrust(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, org, ok := c.adminAccess(w, r, auth.DevicesWrite)
		if !ok {
			return
		}
		if !form(w, r) {
			c.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
			return
		}
		id := r.PathValue("id")
		v, e, err := c.devicesView(r, p, org)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		if e != nil {
			c.apiRefused(w, r, e)
			return
		}
		if !slices.ContainsFunc(v.Devices, func(d deviceRow) bool { return d.ID == id }) {
			c.decided(w, r, p, auth.Hide, org, auth.DevicesWrite, "device", id)
			return
		}
		e, err = c.apiCall(r, http.MethodPost, "/api/v1/devices/"+url.PathEscape(id)+"/"+action,
			map[string]string{"reason": r.PostFormValue("reason")}, nil)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		if e != nil {
			if e.Status == http.StatusBadRequest || e.Status == http.StatusConflict || e.Status == http.StatusServiceUnavailable {
				v.Error = e.Error()
				if e.Field == "reason" {
					v.Error = "Give a reason (it goes to the audit log)."
				}
				c.render(w, e.Status, "devices.html", v)
				return
			}
			c.apiRefused(w, r, e)
			return
		}
		http.Redirect(w, r, "/console/"+url.PathEscape(org)+"/devices", http.StatusSeeOther)
	}
}
