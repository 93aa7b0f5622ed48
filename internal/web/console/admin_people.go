package console

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"vigil/internal/auth"
)

// peopleRoutes are the people pages: the list with a create form, and a
// person's page with medical notes, emergency contacts, carers and device.
var peopleRoutes = []route{
	{"GET /console/{org}/people", false, func(c *Console) http.HandlerFunc { return c.peoplePage }},
	{"POST /console/{org}/people", false, func(c *Console) http.HandlerFunc { return c.createPerson }},
	{"GET /console/{org}/people/{id}", false, func(c *Console) http.HandlerFunc { return c.personPage }},
	{"POST /console/{org}/people/{id}/notes", false, func(c *Console) http.HandlerFunc { return c.putNotes }},
	{"POST /console/{org}/people/{id}/contacts", false, func(c *Console) http.HandlerFunc { return c.addContact }},
	{"POST /console/{org}/people/{id}/contacts/{contact}/delete", false, func(c *Console) http.HandlerFunc { return c.deleteContact }},
	{"POST /console/{org}/people/{id}/carers", false, func(c *Console) http.HandlerFunc { return c.linkCarer }},
	{"POST /console/{org}/people/{id}/carers/{user}/delete", false, func(c *Console) http.HandlerFunc { return c.unlinkCarer }},
	{"POST /console/{org}/people/{id}/device", false, func(c *Console) http.HandlerFunc { return c.assignDevice }},
	{"GET /console/{org}/people/{id}/photo", false, func(c *Console) http.HandlerFunc { return c.personPhoto }},
	{"POST /console/{org}/people/{id}/photo", false, func(c *Console) http.HandlerFunc { return c.uploadPhoto }},
	{"POST /console/{org}/people/{id}/photo/delete", false, func(c *Console) http.HandlerFunc { return c.deletePhoto }},
}

// personAPI is a person as GET /api/v1/people/{id} answers.
type personAPI struct {
	ID           string       `json:"id"`
	OrgID        string       `json:"org_id"`
	Kind         string       `json:"kind"`
	Name         string       `json:"name"`
	CreatedAt    time.Time    `json:"created_at"`
	MedicalNotes *string      `json:"medical_notes"`
	Contacts     []contactAPI `json:"contacts"`
}

type contactAPI struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	Relation string `json:"relation"`
	Phone    string `json:"phone"`
	Email    string `json:"email"`
	Priority int    `json:"priority"`
}

// Tel is the contact's tel: link ("" for none).
func (c contactAPI) Tel() template.URL { return telURL(c.Phone) }

// deviceAPI is a device as GET /api/v1/orgs/{org}/devices lists it.
type deviceAPI struct {
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	PersonID string     `json:"person_id"`
	Firmware string     `json:"firmware"`
	LastSeen *time.Time `json:"last_seen"`
	Battery  *int       `json:"battery"`
	Disabled bool       `json:"disabled"`
	// Quarantine is why the device was flagged for misbehaving.
	Quarantine *struct {
		Reason string    `json:"reason"`
		Since  time.Time `json:"since"`
	} `json:"quarantine"`
}

// people lists the organisation's people through the API; a refusal is
// returned as *APIError.
func (c *Console) people(r *http.Request, org string) ([]personAPI, *APIError, error) {
	var out struct {
		People []personAPI `json:"people"`
	}
	e, err := c.apiCall(r, http.MethodGet, "/api/v1/orgs/"+org+"/people", nil, &out)
	if err != nil || e != nil {
		return nil, e, err
	}
	slices.SortFunc(out.People, func(a, b personAPI) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	return out.People, nil, nil
}

// devices lists the organisation's devices through the API: nil when the
// caller may not (devices.read).
func (c *Console) devices(r *http.Request, org string) ([]deviceAPI, bool, error) {
	var out struct {
		Devices []deviceAPI `json:"devices"`
	}
	e, err := c.apiCall(r, http.MethodGet, "/api/v1/orgs/"+org+"/devices", nil, &out)
	if err != nil {
		return nil, false, err
	}
	if e != nil {
		return nil, false, nil
	}
	slices.SortFunc(out.Devices, func(a, b deviceAPI) int { return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name)) })
	return out.Devices, true, nil
}

// --- the list ----------------------------------------------------------------

type personRow struct {
	personAPI
	Devices []deviceAPI
}

type peopleView struct {
	Nav         Nav
	Org         string
	People      []personRow
	SeesDevices bool
	CanWrite    bool
	Form        struct{ Name, Kind string }
	Errors      formErrors
}

func (c *Console) peopleView(r *http.Request, p *auth.Principal, org string) (peopleView, *APIError, error) {
	v := peopleView{Nav: nav(p, org, "people"), Org: org, CanWrite: can(p, org, auth.PeopleWrite), Errors: formErrors{}}
	ps, e, err := c.people(r, org)
	if err != nil || e != nil {
		return v, e, err
	}
	ds, ok, err := c.devices(r, org)
	if err != nil {
		return v, nil, err
	}
	v.SeesDevices = ok
	for _, x := range ps {
		row := personRow{personAPI: x}
		for _, d := range ds {
			if d.PersonID == x.ID {
				row.Devices = append(row.Devices, d)
			}
		}
		v.People = append(v.People, row)
	}
	return v, nil, nil
}

func (c *Console) peoplePage(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.PeopleRead)
	if !ok {
		return
	}
	v, e, err := c.peopleView(r, p, org)
	switch {
	case err != nil:
		c.fail(w, r, err)
	case e != nil:
		c.apiRefused(w, r, e)
	default:
		c.render(w, http.StatusOK, "people.html", v)
	}
}

func (c *Console) createPerson(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.PeopleWrite)
	if !ok {
		return
	}
	if !form(w, r) {
		c.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
		return
	}
	body := map[string]string{"name": r.PostFormValue("name"), "kind": r.PostFormValue("kind")}
	var out personAPI
	e, err := c.apiCall(r, http.MethodPost, "/api/v1/orgs/"+org+"/people", body, &out)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if e != nil {
		fe, ok := fieldError(e, "name", "kind")
		if !ok {
			c.apiRefused(w, r, e)
			return
		}
		v, e2, err := c.peopleView(r, p, org)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		if e2 != nil {
			c.apiRefused(w, r, e2)
			return
		}
		v.Form.Name, v.Form.Kind, v.Errors = body["name"], body["kind"], fe
		c.render(w, e.Status, "people.html", v)
		return
	}
	seeOther(w, r, "/console/"+org+"/people/"+url.PathEscape(out.ID))
}

// --- one person ---------------------------------------------------------------

type carerRow struct {
	userRef
	Linked bool
}

type personView struct {
	Nav    Nav
	Org    string
	Person personAPI
	Notice string
	Photo  photoState

	// What the caller may see and change.
	SeesNotes, CanEditNotes       bool
	SeesContacts, CanEditContacts bool
	SeesDevices, CanAssign        bool
	SeesCarers, CanEditCarers     bool

	Devices    []deviceAPI // the person's
	AllDevices []deviceAPI // the organisation's, for the assign form
	Carers     []carerRow  // carer users of the organisation
	Names      map[string]string

	Errors  formErrors
	Contact struct{ Name, Relation, Phone, Email, Priority string }
	Notes   string
}

// Linked is the carers linked to the person.
func (v personView) Linked() []carerRow {
	var out []carerRow
	for _, c := range v.Carers {
		if c.Linked {
			out = append(out, c)
		}
	}
	return out
}

// Unlinked is the carers not linked to the person, for the link form.
func (v personView) Unlinked() []carerRow {
	var out []carerRow
	for _, c := range v.Carers {
		if !c.Linked {
			out = append(out, c)
		}
	}
	return out
}

// personView loads the path's person and what the caller may see of them.
func (c *Console) personView(w http.ResponseWriter, r *http.Request, p *auth.Principal, org string) (personView, bool) {
	id := r.PathValue("id")
	v := personView{Nav: nav(p, org, "people"), Org: org, Errors: formErrors{}, Names: map[string]string{}}
	e, err := c.apiCall(r, http.MethodGet, "/api/v1/people/"+url.PathEscape(id), nil, &v.Person)
	if err != nil {
		c.fail(w, r, err)
		return v, false
	}
	if e != nil {
		c.apiRefused(w, r, e)
		return v, false
	}
	if v.Person.OrgID != org {
		// Another organisation's person under this one's path.
		c.decided(w, r, p, auth.Hide, org, auth.PeopleRead, "person", id)
		return v, false
	}
	v.Photo = c.personPhotoState(r, p, org, v.Person.ID)
	v.SeesNotes = v.Person.MedicalNotes != nil
	v.CanEditNotes = v.SeesNotes && can(p, org, auth.PeopleWrite) && can(p, org, auth.MedicalRead)
	if v.SeesNotes {
		v.Notes = *v.Person.MedicalNotes
	}
	v.SeesContacts = can(p, org, auth.ContactsRead)
	v.CanEditContacts = can(p, org, auth.ContactsWrite)
	v.Contact.Priority = "1"

	ds, ok, err := c.devices(r, org)
	if err != nil {
		c.fail(w, r, err)
		return v, false
	}
	v.SeesDevices = ok
	v.CanAssign = ok && can(p, org, auth.DevicesWrite)
	v.AllDevices = ds
	for _, d := range ds {
		if d.PersonID == v.Person.ID {
			v.Devices = append(v.Devices, d)
		}
	}
	if v.CanAssign {
		// Names of whoever else has a device, for the assign form.
		ps, e, err := c.people(r, org)
		if err != nil {
			c.fail(w, r, err)
			return v, false
		}
		if e == nil {
			for _, x := range ps {
				v.Names[x.ID] = x.Name
			}
		}
	}

	if can(p, org, auth.UsersRead) {
		us, err := c.orgUsers(r, org)
		if err != nil {
			c.fail(w, r, err)
			return v, false
		}
		cl, hasLinks := c.st.(carerLister)
		if us != nil && hasLinks {
			if !c.audited(w, r, p, org, "carer.list", "person", v.Person.ID) {
				return v, false
			}
			v.SeesCarers = true
			v.CanEditCarers = can(p, org, auth.UsersWrite)
			for _, u := range us {
				if u.Role != "carer" {
					continue
				}
				linked, err := cl.ListCarerPeople(r.Context(), u.ID)
				if err != nil {
					c.fail(w, r, err)
					return v, false
				}
				v.Carers = append(v.Carers, carerRow{userRef: u, Linked: slices.Contains(linked, v.Person.ID)})
			}
		}
	}
	return v, true
}

func (c *Console) personPage(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.PeopleRead)
	if !ok {
		return
	}
	v, ok := c.personView(w, r, p, org)
	if !ok {
		return
	}
	switch r.URL.Query().Get("done") {
	case "notes":
		v.Notice = "Medical notes saved."
	case "contact":
		v.Notice = "Contacts updated."
	case "carer":
		v.Notice = "Carers updated."
	case "device":
		v.Notice = "Device assignment saved."
	case "photo":
		v.Notice = "Photo updated."
	}
	c.render(w, http.StatusOK, "person.html", v)
}

// personForm is the common start of a person page's POST: the caller
// holds perm, the form parses, and the path's person is this
// organisation's (else 404).
func (c *Console) personForm(w http.ResponseWriter, r *http.Request, perms ...auth.Permission) (*auth.Principal, string, bool) {
	p, org, ok := c.adminAccess(w, r, perms[0])
	if !ok {
		return nil, "", false
	}
	for _, perm := range perms[1:] {
		d := p.Decide(org, perm)
		if !c.decided(w, r, p, d, org, perm, "person", r.PathValue("id")) {
			return nil, "", false
		}
	}
	if !form(w, r) {
		c.errorPage(w, r, http.StatusBadRequest, "The form could not be read.")
		return nil, "", false
	}
	var pr personAPI
	e, err := c.apiCall(r, http.MethodGet, "/api/v1/people/"+url.PathEscape(r.PathValue("id")), nil, &pr)
	if err != nil {
		c.fail(w, r, err)
		return nil, "", false
	}
	if e != nil {
		c.apiRefused(w, r, e)
		return nil, "", false
	}
	if pr.OrgID != org {
		c.decided(w, r, p, auth.Hide, org, perms[0], "person", r.PathValue("id"))
		return nil, "", false
	}
	return p, org, true
}

// personDone answers a person form: back to the page on success, the
// page with the field's error on a validation refusal, the refusal page
// otherwise.
func (c *Console) personDone(w http.ResponseWriter, r *http.Request, p *auth.Principal, org string, e *APIError, done string,
	keep func(*personView), fields ...string) {
	if e == nil {
		seeOther(w, r, "/console/"+org+"/people/"+url.PathEscape(r.PathValue("id"))+"?done="+done)
		return
	}
	fe, ok := fieldError(e, fields...)
	if !ok {
		c.apiRefused(w, r, e)
		return
	}
	v, ok := c.personView(w, r, p, org)
	if !ok {
		return
	}
	v.Errors = fe
	if keep != nil {
		keep(&v)
	}
	c.render(w, e.Status, "person.html", v)
}

func (c *Console) putNotes(w http.ResponseWriter, r *http.Request) {
	// Notes are edited only by someone who may read them.
	p, org, ok := c.personForm(w, r, auth.PeopleWrite, auth.MedicalRead)
	if !ok {
		return
	}
	notes := strings.ReplaceAll(r.PostFormValue("medical_notes"), "\r\n", "\n")
	e, err := c.apiCall(r, http.MethodPut, "/api/v1/people/"+url.PathEscape(r.PathValue("id"))+"/notes",
		map[string]string{"medical_notes": notes}, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.personDone(w, r, p, org, e, "notes", func(v *personView) { v.Notes = notes }, "medical_notes")
}

func (c *Console) addContact(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.personForm(w, r, auth.ContactsWrite)
	if !ok {
		return
	}
	f := r.PostForm
	prio, perr := strconv.Atoi(strings.TrimSpace(f.Get("priority")))
	keep := func(v *personView) {
		v.Contact.Name, v.Contact.Relation, v.Contact.Phone, v.Contact.Email, v.Contact.Priority =
			f.Get("name"), f.Get("relation"), f.Get("phone"), f.Get("email"), f.Get("priority")
	}
	if perr != nil {
		c.personDone(w, r, p, org, &APIError{Status: http.StatusBadRequest, Field: "priority",
			Message: "want a number, 0 to 99 (lower is called first)"}, "", keep, "priority")
		return
	}
	body := map[string]any{"name": f.Get("name"), "relation": f.Get("relation"), "phone": strings.ReplaceAll(f.Get("phone"), " ", ""),
		"email": strings.TrimSpace(f.Get("email")), "priority": prio}
	e, err := c.apiCall(r, http.MethodPost, "/api/v1/people/"+url.PathEscape(r.PathValue("id"))+"/contacts", body, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.personDone(w, r, p, org, e, "contact", keep, "name", "relation", "phone", "email", "priority")
}

func (c *Console) deleteContact(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.personForm(w, r, auth.ContactsWrite)
	if !ok {
		return
	}
	// The contact must be this person's: the API authorises on the
	// contact's own person, the page on the path's.
	var cs struct {
		Contacts []contactAPI `json:"contacts"`
	}
	id := r.PathValue("id")
	e, err := c.apiCall(r, http.MethodGet, "/api/v1/people/"+url.PathEscape(id)+"/contacts", nil, &cs)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if e != nil {
		c.apiRefused(w, r, e)
		return
	}
	contact := r.PathValue("contact")
	if !slices.ContainsFunc(cs.Contacts, func(x contactAPI) bool { return x.ID == contact }) {
		c.decided(w, r, p, auth.Hide, org, auth.ContactsWrite, "contact", contact)
		return
	}
	e, err = c.apiCall(r, http.MethodDelete, "/api/v1/contacts/"+url.PathEscape(contact), nil, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.personDone(w, r, p, org, e, "contact", nil)
}

func (c *Console) linkCarer(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.personForm(w, r, auth.UsersWrite)
	if !ok {
		return
	}
	user := r.PostFormValue("user")
	if user == "" {
		c.personDone(w, r, p, org, &APIError{Status: http.StatusBadRequest, Field: "user", Message: "choose a carer"}, "", nil, "user")
		return
	}
	e, err := c.apiCall(r, http.MethodPut, "/api/v1/people/"+url.PathEscape(r.PathValue("id"))+"/carers/"+url.PathEscape(user), nil, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.personDone(w, r, p, org, e, "carer", nil, "user")
}

func (c *Console) unlinkCarer(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.personForm(w, r, auth.UsersWrite)
	if !ok {
		return
	}
	e, err := c.apiCall(r, http.MethodDelete, "/api/v1/people/"+url.PathEscape(r.PathValue("id"))+"/carers/"+url.PathEscape(r.PathValue("user")), nil, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.personDone(w, r, p, org, e, "carer", nil)
}

func (c *Console) assignDevice(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.personForm(w, r, auth.DevicesWrite)
	if !ok {
		return
	}
	dev := r.PostFormValue("device_id")
	e, err := c.apiCall(r, http.MethodPut, "/api/v1/people/"+url.PathEscape(r.PathValue("id"))+"/device",
		map[string]string{"device_id": dev}, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.personDone(w, r, p, org, e, "device", nil, "device_id")
}
