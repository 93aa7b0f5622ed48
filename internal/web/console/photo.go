package console

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"vigil/internal/auth"
	"vigil/internal/store"
)

// A person's photo on the console: the person page shows it with an
// upload form and a remove button; the alert view shows it next to the
// person's name. The image routes stream the JSON API's answer (GET
// /api/v1/people/{id}/photo, which authorises, audits and serves the
// server's own re-encoded JPEG); the upload form's file goes to the API's
// PUT, which checks and re-encodes it.

// photoMaxBytes is the API's upload limit (web.PhotoMaxBytes), for the
// form's hint and for refusing a larger file before sending it on.
const photoMaxBytes = 2 << 20

// alertPhotoRoute is the alert view's photo of the alert's person
// (alertRoutes).
var alertPhotoRoute = route{"GET /console/{org}/alerts/{id}/photo", false, func(c *Console) http.HandlerFunc { return c.alertPhoto }}

// photoChecker tells whether a person has a photo (the app's store.Store
// has it; a Store without it shows no photos).
type photoChecker interface {
	GetPersonPhoto(ctx context.Context, personID string) (store.PersonPhoto, error)
}

// photoState is what a page shows of a person's photo.
type photoState struct {
	Has     bool   // there is one and the caller may see it
	CanEdit bool   // the caller may upload or remove it
	URL     string // the console route serving it
}

// MaxMiB is the upload limit for the form's hint.
func (photoState) MaxMiB() int { return photoMaxBytes >> 20 }

// hasPhoto reports whether the person has a photo (no read of personal
// data is recorded: the image route records it when the browser loads it).
func (c *Console) hasPhoto(ctx context.Context, personID string) bool {
	pc, ok := c.st.(photoChecker)
	if !ok || personID == "" {
		return false
	}
	_, err := pc.GetPersonPhoto(ctx, personID)
	return err == nil
}

// personPhotoState is the person page's photo part.
func (c *Console) personPhotoState(r *http.Request, p *auth.Principal, org, personID string) photoState {
	return photoState{
		Has:     c.hasPhoto(r.Context(), personID),
		CanEdit: can(p, org, auth.PeopleWrite),
		URL:     "/console/" + url.PathEscape(org) + "/people/" + url.PathEscape(personID) + "/photo",
	}
}

// alertPhotoURL is the alert view's photo of personID: "" when they have
// none or the caller may not see it.
func (c *Console) alertPhotoURL(r *http.Request, p *auth.Principal, org, base, personID string) string {
	if personID == "" || p.DecideFor(org, personID, auth.PeopleRead) != auth.Allow || !c.hasPhoto(r.Context(), personID) {
		return ""
	}
	return base + "/photo"
}

// streamPhoto answers the API's photo of personID as the caller: the JPEG
// (never cached), 204 when there is none, or the API's refusal.
func (c *Console) streamPhoto(w http.ResponseWriter, r *http.Request, personID string) {
	res, err := c.apiDo(r, http.MethodGet, "/api/v1/people/"+url.PathEscape(personID)+"/photo", nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	switch {
	case res.code == http.StatusNoContent:
		w.Header().Set("Cache-Control", "private, no-store")
		w.WriteHeader(http.StatusNoContent)
	case res.code == http.StatusOK && res.h.Get("Content-Type") == "image/jpeg":
		h := w.Header()
		h.Set("Content-Type", "image/jpeg")
		h.Set("Content-Length", strconv.Itoa(res.body.Len()))
		h.Set("Cache-Control", "private, no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(res.body.Bytes())
	default:
		e, err := res.result(http.MethodGet, "photo", nil)
		if err != nil || e == nil {
			c.fail(w, r, errors.New("console: unexpected photo answer "+strconv.Itoa(res.code)))
			return
		}
		c.apiRefused(w, r, e)
	}
}

// personPhoto serves the person page's photo.
func (c *Console) personPhoto(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.PeopleRead)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if sp, err := c.st.GetPerson(r.Context(), id); err != nil || sp.OrgID != org {
		c.decided(w, r, p, auth.Hide, org, auth.PeopleRead, "person", id)
		return
	}
	c.streamPhoto(w, r, id)
}

// alertPhoto serves the photo of the alert's person to whoever may see
// the alert (a worker or carer theirs) and the person; 204 when there is
// no photo to show.
func (c *Console) alertPhoto(w http.ResponseWriter, r *http.Request) {
	p := c.principal(r)
	if p == nil || !p.MFA {
		c.errorPage(w, r, http.StatusUnauthorized, "Sign in again.")
		return
	}
	org, id := r.PathValue("org"), r.PathValue("id")
	var al apiAlert
	if e, err := c.apiCall(r, http.MethodGet, "/api/v1/alerts/"+url.PathEscape(id), nil, &al); err != nil {
		c.fail(w, r, err)
		return
	} else if e != nil {
		c.apiRefused(w, r, e)
		return
	}
	if al.OrgID != org {
		c.decided(w, r, p, auth.Hide, org, auth.AlertsRead, "alert", id)
		return
	}
	if al.PersonID == "" || p.DecideFor(org, al.PersonID, auth.PeopleRead) != auth.Allow {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	c.streamPhoto(w, r, al.PersonID)
}

// uploadPhoto sends the form's file to the API. The file is read here
// (multipart, at most the API's limit) and passed on in the API's JSON
// form; the API checks and re-encodes it. Refusals are shown next to the
// file field.
func (c *Console) uploadPhoto(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.adminAccess(w, r, auth.PeopleWrite)
	if !ok {
		return
	}
	id := r.PathValue("id")
	if sp, err := c.st.GetPerson(r.Context(), id); err != nil || sp.OrgID != org {
		c.decided(w, r, p, auth.Hide, org, auth.PeopleWrite, "person", id)
		return
	}
	ct, data, status, msg := readPhotoForm(w, r)
	if msg == "" {
		res, err := c.apiDo(r, http.MethodPut, "/api/v1/people/"+url.PathEscape(id)+"/photo",
			map[string]any{"content_type": ct, "image": data})
		if err != nil {
			c.fail(w, r, err)
			return
		}
		e, err := res.result(http.MethodPut, "photo", nil)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		if e == nil {
			seeOther(w, r, "/console/"+org+"/people/"+url.PathEscape(id)+"?done=photo")
			return
		}
		if e.Field != "image" && e.Field != "content_type" && e.Field != "Content-Type" {
			c.apiRefused(w, r, e)
			return
		}
		status, msg = e.Status, e.Message
	}
	v, ok := c.personView(w, r, p, org)
	if !ok {
		return
	}
	v.Errors["photo"] = msg
	c.render(w, status, "person.html", v)
}

// readPhotoForm reads the form's "photo" file: its declared type and
// bytes, or the status and message of a refusal.
func readPhotoForm(w http.ResponseWriter, r *http.Request) (ct string, data []byte, status int, msg string) {
	r.Body = http.MaxBytesReader(w, r.Body, photoMaxBytes+64<<10)
	mr, err := r.MultipartReader()
	if err != nil {
		return "", nil, http.StatusBadRequest, "Choose a JPEG or PNG file."
	}
	for {
		part, err := mr.NextPart()
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return "", nil, http.StatusRequestEntityTooLarge, "The file is too large: at most 2 MiB."
			}
			return "", nil, http.StatusBadRequest, "Choose a JPEG or PNG file."
		}
		if part.FormName() != "photo" {
			continue
		}
		data, err = io.ReadAll(io.LimitReader(part, photoMaxBytes+1))
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe) || len(data) > photoMaxBytes:
			return "", nil, http.StatusRequestEntityTooLarge, "The file is too large: at most 2 MiB."
		case err != nil:
			return "", nil, http.StatusBadRequest, "The file could not be read."
		case len(data) == 0:
			return "", nil, http.StatusBadRequest, "Choose a JPEG or PNG file."
		}
		return part.Header.Get("Content-Type"), data, 0, ""
	}
}

// deletePhoto removes the person's photo.
func (c *Console) deletePhoto(w http.ResponseWriter, r *http.Request) {
	p, org, ok := c.personForm(w, r, auth.PeopleWrite)
	if !ok {
		return
	}
	e, err := c.apiCall(r, http.MethodDelete, "/api/v1/people/"+url.PathEscape(r.PathValue("id"))+"/photo", nil, nil)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.personDone(w, r, p, org, e, "photo", nil, "photo")
}
