package web

import (
	"errors"
	"net/http"
	"net/mail"
	"slices"
	"strconv"
	"time"

	"vigil/internal/auth"
	"vigil/internal/store"
)

// People, their medical notes, contacts, carers and devices are personal
// data: each handler authorises on the person (a worker sees only their
// own person, a carer the people linked to them), records the access in
// the audit log and only then reads, changes or serves it. Audit details
// carry ids and counts, never names, numbers or notes.

// maxNotes bounds a person's medical notes, in characters.
const maxNotes = 4000

type personJSON struct {
	ID        string    `json:"id"`
	OrgID     string    `json:"org_id"`
	Kind      string    `json:"kind"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
	// MedicalNotes is there only for callers with people.medical: absent
	// (not even empty) for everyone else.
	MedicalNotes *string `json:"medical_notes,omitzero"`
	// Contacts is there only for callers with contacts.read.
	Contacts []contactJSON `json:"contacts,omitzero"`
}

func personOut(p store.Person) personJSON {
	return personJSON{ID: p.ID, OrgID: p.OrgID, Kind: string(p.Kind), Name: p.Name, CreatedAt: p.CreatedAt.UTC()}
}

type contactJSON struct {
	ID        string    `json:"id"`
	PersonID  string    `json:"person_id"`
	Name      string    `json:"name"`
	Relation  string    `json:"relation,omitempty"`
	Phone     string    `json:"phone,omitempty"`
	Email     string    `json:"email,omitempty"`
	Priority  int       `json:"priority"`
	CreatedAt time.Time `json:"created_at"`
}

func contactsOut(cs []store.Contact) []contactJSON {
	out := make([]contactJSON, 0, len(cs))
	for _, c := range cs {
		out = append(out, contactJSON{ID: c.ID, PersonID: c.PersonID, Name: c.Name, Relation: c.Relation, Phone: c.Phone,
			Email: c.Email, Priority: c.Priority, CreatedAt: c.CreatedAt.UTC()})
	}
	return out
}

// personAs loads the path's person and checks perm on them (404 for a
// person of another organisation, or one a worker or carer is not
// limited to).
func (a *API) personAs(w http.ResponseWriter, r *http.Request, perm auth.Permission) (store.Person, bool) {
	p, err := a.dir.GetPerson(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return store.Person{}, false
	}
	if !a.allowFor(w, r, p.OrgID, p.ID, perm, "person", p.ID) {
		return store.Person{}, false
	}
	return p, true
}

// --- people -----------------------------------------------------------------

func (a *API) listPeople(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	ps, err := a.dir.ListPeople(r.Context(), org)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p := principalOf(r)
	if p.Scoped(org) {
		mine := p.People(org)
		ps = slices.DeleteFunc(ps, func(x store.Person) bool { return !slices.Contains(mine, x.ID) })
	}
	if !a.audited(w, r, org, "person.list", "people", "", map[string]string{"count": strconv.Itoa(len(ps))}) {
		return
	}
	out := make([]personJSON, 0, len(ps))
	for _, x := range ps {
		out = append(out, personOut(x))
	}
	writeJSON(w, http.StatusOK, map[string]any{"people": out})
}

type personBody struct {
	ID   string `json:"id"`
	Kind string `json:"kind"`
	Name string `json:"name"`
}

func (a *API) createPerson(w http.ResponseWriter, r *http.Request) {
	org := r.PathValue("org")
	var b personBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	if b.ID == "" {
		b.ID = newDirID("p_")
	} else if !validSlug(b.ID) {
		a.bad(w, "id", "want 1 to 64 lower-case letters, digits or dashes, or leave it out")
		return
	}
	kind := store.PersonKind(b.Kind)
	if kind != store.PersonWorker && kind != store.PersonResident {
		a.bad(w, "kind", "want worker or resident")
		return
	}
	if m := checkText(b.Name, 200, true, false); m != "" {
		a.bad(w, "name", m)
		return
	}
	if !a.audited(w, r, org, "person.create", "person", b.ID, map[string]string{"kind": b.Kind}) {
		return
	}
	p := store.Person{ID: b.ID, OrgID: org, Kind: kind, Name: b.Name, CreatedAt: a.now().UTC()}
	if err := a.dir.CreatePerson(r.Context(), p); err != nil {
		if errors.Is(err, store.ErrConflict) {
			writeError(w, http.StatusConflict, "conflict", "id", "that id is taken")
			return
		}
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, personOut(p))
}

// getPerson answers a person with their medical notes only for callers
// who may read them, and their contacts only for callers who may read
// those.
func (a *API) getPerson(w http.ResponseWriter, r *http.Request) {
	p, ok := a.personAs(w, r, auth.PeopleRead)
	if !ok {
		return
	}
	caller := principalOf(r)
	v := personOut(p)
	details := map[string]string{}
	if caller.DecideFor(p.OrgID, p.ID, auth.MedicalRead) == auth.Allow {
		notes, err := a.dir.GetPersonNotes(r.Context(), p.ID)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		v.MedicalNotes = &notes
		details["medical_notes"] = "true"
	}
	if caller.DecideFor(p.OrgID, p.ID, auth.ContactsRead) == auth.Allow {
		cs, err := a.dir.ListContacts(r.Context(), p.ID)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		v.Contacts = contactsOut(cs)
		details["contacts"] = strconv.Itoa(len(cs))
	}
	if !a.audited(w, r, p.OrgID, "person.read", "person", p.ID, details) {
		return
	}
	writeJSON(w, http.StatusOK, v)
}

type notesBody struct {
	MedicalNotes *string `json:"medical_notes"`
}

func (a *API) putPersonNotes(w http.ResponseWriter, r *http.Request) {
	var b notesBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	if b.MedicalNotes == nil {
		a.bad(w, "medical_notes", `required ("" clears them)`)
		return
	}
	if m := checkText(*b.MedicalNotes, maxNotes, false, true); m != "" {
		a.bad(w, "medical_notes", m)
		return
	}
	p, ok := a.personAs(w, r, auth.PeopleWrite)
	if !ok || !a.audited(w, r, p.OrgID, "person.update", "person", p.ID, map[string]string{"field": "medical_notes"}) {
		return
	}
	if err := a.dir.SetPersonNotes(r.Context(), p.ID, *b.MedicalNotes); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- contacts ---------------------------------------------------------------

func (a *API) listContacts(w http.ResponseWriter, r *http.Request) {
	p, ok := a.personAs(w, r, auth.ContactsRead)
	if !ok {
		return
	}
	cs, err := a.dir.ListContacts(r.Context(), p.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.audited(w, r, p.OrgID, "contact.read", "person", p.ID, map[string]string{"count": strconv.Itoa(len(cs))}) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"contacts": contactsOut(cs)})
}

type contactBody struct {
	Name     string `json:"name"`
	Relation string `json:"relation"`
	Phone    string `json:"phone"`
	Email    string `json:"email"`
	Priority int    `json:"priority"`
}

// check validates a contact, returning the first bad field and why.
func (b contactBody) check() (field, msg string) {
	if m := checkText(b.Name, 200, true, false); m != "" {
		return "name", m
	}
	if m := checkText(b.Relation, 100, false, false); m != "" {
		return "relation", m
	}
	if b.Phone == "" && b.Email == "" {
		return "phone", "a phone number or an email address is required"
	}
	if b.Phone != "" && !validE164(b.Phone) {
		return "phone", "want E.164: + and 7 to 15 digits, no spaces"
	}
	if b.Email != "" {
		if len(b.Email) > 254 {
			return "email", "at most 254 characters"
		}
		if addr, err := mail.ParseAddress(b.Email); err != nil || addr.Address != b.Email {
			return "email", "want an address like name@example.org"
		}
	}
	if b.Priority < 0 || b.Priority > 99 {
		return "priority", "want 0 to 99 (lower is called first)"
	}
	return "", ""
}

func (a *API) createContact(w http.ResponseWriter, r *http.Request) {
	var b contactBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	if f, m := b.check(); f != "" {
		a.bad(w, f, m)
		return
	}
	p, ok := a.personAs(w, r, auth.ContactsWrite)
	if !ok {
		return
	}
	// Never a caller's id: PutContact replaces by id.
	c := store.Contact{ID: newDirID("c_"), OrgID: p.OrgID, PersonID: p.ID, Name: b.Name, Relation: b.Relation,
		Phone: b.Phone, Email: b.Email, Priority: b.Priority, CreatedAt: a.now().UTC()}
	if !a.audited(w, r, p.OrgID, "contact.create", "contact", c.ID, map[string]string{"person_id": p.ID}) {
		return
	}
	if err := a.dir.PutContact(r.Context(), c); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, contactsOut([]store.Contact{c})[0])
}

// deleteContact authorises on the contact's person, as the person's
// record has it.
func (a *API) deleteContact(w http.ResponseWriter, r *http.Request) {
	c, err := a.dir.GetContact(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p, err := a.dir.GetPerson(r.Context(), c.PersonID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.allowFor(w, r, p.OrgID, p.ID, auth.ContactsWrite, "contact", c.ID) {
		return
	}
	if c.OrgID != p.OrgID {
		dirNotFound(w) // inconsistent records: touch neither
		return
	}
	if !a.audited(w, r, p.OrgID, "contact.delete", "contact", c.ID, map[string]string{"person_id": p.ID}) {
		return
	}
	if err := a.dir.DeleteContact(r.Context(), c.ID); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- carers -----------------------------------------------------------------

// linkCarer links a carer user to a person: the user must be a member of
// the person's organisation with role carer.
func (a *API) linkCarer(w http.ResponseWriter, r *http.Request) {
	p, ok := a.personAs(w, r, auth.UsersWrite)
	if !ok {
		return
	}
	user := r.PathValue("user")
	ms, err := a.dir.ListMemberships(r.Context(), user)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.fail(w, r, err)
		return
	}
	if !slices.ContainsFunc(ms, func(m store.Membership) bool { return m.OrgID == p.OrgID && m.Role == store.RoleCarer }) {
		// The same answer for an unknown user and another
		// organisation's: neither is this caller's to know about.
		a.bad(w, "user", "want a user with role carer in the person's organisation")
		return
	}
	if !a.audited(w, r, p.OrgID, "carer.link", "person", p.ID, map[string]string{"user_id": user}) {
		return
	}
	if err := a.dir.LinkCarer(r.Context(), user, p.ID); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"person_id": p.ID, "user_id": user})
}

// unlinkCarer removes a link whatever the user's role now is, so a link
// left from a user who has since changed role or left can be cleaned up;
// no link is 404.
func (a *API) unlinkCarer(w http.ResponseWriter, r *http.Request) {
	p, ok := a.personAs(w, r, auth.UsersWrite)
	if !ok {
		return
	}
	user := r.PathValue("user")
	if !a.audited(w, r, p.OrgID, "carer.unlink", "person", p.ID, map[string]string{"user_id": user}) {
		return
	}
	if err := a.dir.UnlinkCarer(r.Context(), user, p.ID); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- a person's device ----------------------------------------------------

type personDeviceBody struct {
	DeviceID *string `json:"device_id"`
}

// putPersonDevice assigns a device of the person's organisation to the
// person (taking it from whoever had it), or with "" unassigns every
// device the person has.
func (a *API) putPersonDevice(w http.ResponseWriter, r *http.Request) {
	var b personDeviceBody
	if f, m, ok := decode(w, r, maxBody, &b); !ok {
		a.bad(w, f, m)
		return
	}
	if b.DeviceID == nil {
		a.bad(w, "device_id", `required ("" unassigns)`)
		return
	}
	if m := checkText(*b.DeviceID, 128, false, false); m != "" {
		a.bad(w, "device_id", m)
		return
	}
	p, ok := a.personAs(w, r, auth.DevicesWrite)
	if !ok {
		return
	}
	ctx := r.Context()
	if *b.DeviceID == "" {
		ds, err := a.dir.ListDevices(ctx, p.OrgID)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		ds = slices.DeleteFunc(ds, func(d store.Device) bool { return d.PersonID != p.ID })
		if !a.audited(w, r, p.OrgID, "device.unassign", "person", p.ID, map[string]string{"count": strconv.Itoa(len(ds))}) {
			return
		}
		for _, d := range ds {
			if err := a.dir.AssignDevice(ctx, d.ID, ""); err != nil {
				a.fail(w, r, err)
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]any{"person_id": p.ID, "device_id": ""})
		return
	}
	d, err := a.dir.GetDevice(ctx, *b.DeviceID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if d.OrgID != p.OrgID {
		dirNotFound(w)
		return
	}
	details := map[string]string{"device_id": d.ID}
	if d.PersonID != "" && d.PersonID != p.ID {
		// Taking it from someone else changes their record too.
		if !a.allowFor(w, r, d.OrgID, d.PersonID, auth.DevicesWrite, "device", d.ID) {
			return
		}
		details["previous_person_id"] = d.PersonID
	}
	if !a.audited(w, r, p.OrgID, "device.assign", "person", p.ID, details) {
		return
	}
	if err := a.dir.AssignDevice(ctx, d.ID, p.ID); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"person_id": p.ID, "device_id": d.ID})
}
