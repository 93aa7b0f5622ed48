package app_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"vigil/internal/store"
	"vigil/internal/web"
)

// photoCall sends a raw body with its own Content-Type as caller.
func (w *authzWorld) photoCall(caller, method, path, ct string, body []byte) (int, http.Header, []byte) {
	w.t.Helper()
	req, err := http.NewRequest(method, "https://"+w.a.Addr("https")+path, bytes.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if c := w.session(caller); c != "" {
		req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: c})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := w.hc.Do(req.WithContext(ctx))
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func photoPNG(t *testing.T, wd, ht int) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, wd, ht))
	for y := range ht {
		for x := range wd {
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), 200, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// photoJPEGWithGPS is a JPEG carrying an EXIF segment with a GPS position.
func photoJPEGWithGPS(t *testing.T) []byte {
	t.Helper()
	var j bytes.Buffer
	if err := jpeg.Encode(&j, image.NewGray(image.Rect(0, 0, 64, 64)), nil); err != nil {
		t.Fatal(err)
	}
	exif := []byte("Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08GPSLatitude 51.5074 N GPSLongitude 0.1278 W")
	seg := []byte{0xff, 0xe1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(exif)+2))
	out := append([]byte{}, j.Bytes()[:2]...)
	out = append(append(out, seg...), exif...)
	return append(out, j.Bytes()[2:]...)
}

// apiErr is the field of a JSON error answer.
func apiErrField(t *testing.T, body []byte) string {
	t.Helper()
	var v struct {
		Error struct {
			Field string `json:"field"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("error answer %q: %v", body, err)
	}
	return v.Error.Field
}

// TestPersonPhotoAPI: an admin uploads a PNG and anyone who may read the
// person (a linked carer among them) gets a JPEG of at most 512 px, never
// cached; GPS in EXIF does not survive; bad uploads are refused naming
// the field; another organisation gets 404, a role without people.write
// 403; uploads and reads are audited.
func TestPersonPhotoAPI(t *testing.T) {
	w := newAuthzWorld(t)
	const path = "/api/v1/people/x-worker/photo"

	if code, _, body := w.photoCall("admin", "GET", path, "", nil); code != http.StatusNoContent {
		t.Fatalf("GET unset photo: %d %s, want 204", code, body)
	}
	if code, _, body := w.photoCall("admin", "PUT", path, "image/png", photoPNG(t, 1200, 800)); code != http.StatusNoContent {
		t.Fatalf("admin PUT photo: %d %s, want 204", code, body)
	}
	for _, caller := range []string{"carer", "supervisor", "worker"} {
		code, h, body := w.photoCall(caller, "GET", path, "", nil)
		if code != http.StatusOK {
			t.Fatalf("GET photo as %s: %d %s, want 200", caller, code, body)
		}
		if h.Get("Content-Type") != "image/jpeg" || h.Get("Cache-Control") != "private, no-store" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET photo as %s: headers %v", caller, h)
		}
		cfg, format, err := image.DecodeConfig(bytes.NewReader(body))
		if err != nil || format != "jpeg" || cfg.Width != 512 || cfg.Height != 341 {
			t.Errorf("GET photo as %s: %s %dx%d (%v), want a 512x341 JPEG", caller, format, cfg.Width, cfg.Height, err)
		}
	}

	// EXIF (GPS) is stripped.
	if code, _, body := w.photoCall("admin", "PUT", path, "image/jpeg", photoJPEGWithGPS(t)); code != http.StatusNoContent {
		t.Fatalf("admin PUT EXIF photo: %d %s, want 204", code, body)
	}
	_, _, body := w.photoCall("admin", "GET", path, "", nil)
	if len(body) == 0 || bytes.Contains(body, []byte("Exif")) || bytes.Contains(body, []byte("GPS")) || bytes.Contains(body, []byte("51.5074")) {
		t.Errorf("stored photo (%d bytes) still has EXIF or GPS", len(body))
	}

	// Bad uploads, refused naming the field.
	bomb := photoPNG(t, 2, 2)
	binary.BigEndian.PutUint32(bomb[16:], 5000)
	binary.BigEndian.PutUint32(bomb[29:], crc32.ChecksumIEEE(bomb[12:29]))
	for _, tc := range []struct {
		name, ct string
		body     []byte
		code     int
		field    string
	}{
		{"non-image", "image/jpeg", []byte("MZ\x90\x00 this is not a picture"), http.StatusBadRequest, "image"},
		{"html as png", "image/png", []byte("<html><script>alert(1)</script>"), http.StatusBadRequest, "image"},
		{"oversized", "image/png", bytes.Repeat([]byte{0}, web.PhotoMaxBytes+1), http.StatusRequestEntityTooLarge, "image"},
		{"too wide", "image/png", bomb, http.StatusBadRequest, "image"},
		{"svg", "image/svg+xml", []byte("<svg/>"), http.StatusUnsupportedMediaType, "Content-Type"},
		{"no type", "", photoPNG(t, 4, 4), http.StatusUnsupportedMediaType, "Content-Type"},
		{"json not base64", "application/json", []byte(`{"content_type":"image/png","image":"%%%"}`), http.StatusBadRequest, "image"},
	} {
		code, _, body := w.photoCall("admin", "PUT", path, tc.ct, tc.body)
		if code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.code)
			continue
		}
		if f := apiErrField(t, body); f != tc.field {
			t.Errorf("%s: field %q, want %q", tc.name, f, tc.field)
		}
	}

	// Another organisation's admin does not see x's person; a responder
	// may look but not change; a carer not linked to the person sees
	// nothing.
	for _, m := range []string{"GET", "PUT", "DELETE"} {
		if code, _, body := w.photoCall("other-org", m, path, "image/png", photoPNG(t, 4, 4)); code != http.StatusNotFound {
			t.Errorf("other org %s photo: %d %s, want 404", m, code, body)
		}
	}
	for _, m := range []string{"PUT", "DELETE"} {
		if code, _, body := w.photoCall("responder", m, path, "image/png", photoPNG(t, 4, 4)); code != http.StatusForbidden {
			t.Errorf("responder %s photo: %d %s, want 403", m, code, body)
		}
	}
	if code, _, body := w.photoCall("carer", "GET", "/api/v1/people/x-other/photo", "", nil); code != http.StatusNotFound {
		t.Errorf("carer GET unlinked person's photo: %d %s, want 404", code, body)
	}

	// The JSON form works too.
	jb, _ := json.Marshal(map[string]any{"content_type": "image/png", "image": photoPNG(t, 10, 10)})
	if code, _, body := w.photoCall("admin", "PUT", path, "application/json", jb); code != http.StatusNoContent {
		t.Errorf("admin PUT photo as JSON: %d %s, want 204", code, body)
	}

	if code, _, body := w.photoCall("admin", "DELETE", path, "", nil); code != http.StatusNoContent {
		t.Fatalf("admin DELETE photo: %d %s, want 204", code, body)
	}
	if code, _, body := w.photoCall("admin", "GET", path, "", nil); code != http.StatusNoContent {
		t.Errorf("GET deleted photo: %d %s, want 204", code, body)
	}

	// Audited: three uploads and a removal, the reads; no other
	// organisation's entries, no image bytes in details.
	ctx := context.Background()
	count := func(action, actor string) int {
		t.Helper()
		recs, err := w.a.Store().ListAudit(ctx, store.AuditFilter{OrgID: "x", Action: action, Actor: actor})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, r := range recs {
			if r.ObjectID == "x-worker" && strings.Contains(r.Details, `"photo"`) {
				n++
			}
		}
		return n
	}
	if got := count("person.update", ""); got != 4 {
		t.Errorf("%d person.update photo entries, want 4 (three uploads, one removal)", got)
	}
	if got := count("person.read", w.users["carer"]); got != 1 {
		t.Errorf("%d person.read photo entries by the carer, want 1", got)
	}
	denied, err := w.a.Store().ListAudit(ctx, store.AuditFilter{OrgID: "x", Action: "authz.denied"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(auditDetails(denied), "people.write") {
		t.Error("the responder's refused upload is not in the audit log")
	}
}

func auditDetails(recs []store.AuditRecord) string {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(r.Details)
	}
	return b.String()
}

// consoleDo requests a console page as caller, with an optional
// multipart file "photo"; redirects are not followed.
func (w *authzWorld) consoleDo(caller, method, path, fileType string, file []byte) (int, http.Header, string) {
	w.t.Helper()
	var body io.Reader
	ct := ""
	if file != nil {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="photo"; filename="me.img"`)
		if fileType != "" {
			h.Set("Content-Type", fileType)
		}
		part, err := mw.CreatePart(h)
		if err != nil {
			w.t.Fatal(err)
		}
		_, _ = part.Write(file)
		_ = mw.Close()
		body, ct = &b, mw.FormDataContentType()
	} else if method == "POST" {
		body, ct = strings.NewReader(""), "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequest(method, "https://"+w.a.Addr("https")+path, body)
	if err != nil {
		w.t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if c := w.session(caller); c != "" {
		req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: c})
	}
	hc := *w.hc
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := hc.Do(req.WithContext(ctx))
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// TestPersonPhotoConsole: the person page uploads (multipart), shows and
// removes the photo, with refusals next to the file field; the person's
// name is the image's alt text, escaped; the alert view shows the photo
// next to the name to whoever may see the person, a linked carer too.
func TestPersonPhotoConsole(t *testing.T) {
	w := newAuthzWorld(t)
	const hostile = `Ann "><img src=x onerror=alert(1)>`
	if err := w.a.Store().CreatePerson(context.Background(), store.Person{ID: "x-hostile", OrgID: "x", Kind: store.PersonResident,
		Name: hostile, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	page := "/console/x/people/x-hostile"

	code, _, body := w.consoleDo("admin", "GET", page, "", nil)
	if code != http.StatusOK {
		t.Fatalf("person page: %d", code)
	}
	for _, want := range []string{`id="photo-form"`, `enctype="multipart/form-data"`, `accept="image/jpeg,image/png"`,
		`<label for="photo-file">Upload a photo</label>`, `at most 2 MiB`, "photo.css"} {
		if !strings.Contains(body, want) {
			t.Errorf("person page without a photo lacks %q", want)
		}
	}
	if strings.Contains(body, `id="person-photo"`) {
		t.Error("person page shows a photo before one is uploaded")
	}

	// A refused upload: the page again, the error next to the field.
	code, _, body = w.consoleDo("admin", "POST", page+"/photo", "image/png", []byte("this is not a PNG"))
	if code != http.StatusBadRequest || !strings.Contains(body, `id="photo-error"`) || !strings.Contains(body, `aria-invalid="true"`) {
		t.Errorf("upload of a non-image: %d, want 400 with the error next to the field", code)
	}
	code, _, body = w.consoleDo("admin", "POST", page+"/photo", "image/gif", []byte("GIF89a"))
	if code != http.StatusUnsupportedMediaType || !strings.Contains(body, `id="photo-error"`) {
		t.Errorf("upload of a GIF: %d, want 415 with the error next to the field", code)
	}

	code, hdr, _ := w.consoleDo("admin", "POST", page+"/photo", "image/png", photoPNG(t, 900, 600))
	if code != http.StatusSeeOther || !strings.HasSuffix(hdr.Get("Location"), "?done=photo") {
		t.Fatalf("upload: %d %s, want 303 back to the page", code, hdr.Get("Location"))
	}
	code, _, body = w.consoleDo("admin", "GET", page+"?done=photo", "", nil)
	if code != http.StatusOK {
		t.Fatalf("person page: %d", code)
	}
	if strings.Contains(body, hostile) || strings.Contains(body, "<img src=x") {
		t.Error("hostile name rendered unescaped")
	}
	for _, want := range []string{`<img class="person-photo" id="person-photo" src="/console/x/people/x-hostile/photo" alt="Ann &#34;&gt;&lt;img src=x onerror=alert(1)&gt;">`,
		`id="photo-delete-form"`, "Photo updated.", "Replace the photo"} {
		if !strings.Contains(body, want) {
			t.Errorf("person page with a photo lacks %q", want)
		}
	}
	code, hdr, img := w.consoleDo("admin", "GET", page+"/photo", "", nil)
	if code != http.StatusOK || hdr.Get("Content-Type") != "image/jpeg" || hdr.Get("Cache-Control") != "private, no-store" {
		t.Fatalf("console photo: %d %v", code, hdr)
	}
	if cfg, _, err := image.DecodeConfig(strings.NewReader(img)); err != nil || cfg.Width != 512 || cfg.Height != 341 {
		t.Errorf("console photo: %dx%d (%v), want 512x341", cfg.Width, cfg.Height, err)
	}
	// Another organisation's admin: no such page.
	if code, _, _ := w.consoleDo("other-org", "GET", page+"/photo", "", nil); code != http.StatusNotFound {
		t.Errorf("other org's console photo: %d, want 404", code)
	}
	if code, _, _ := w.consoleDo("responder", "POST", page+"/photo", "image/png", photoPNG(t, 4, 4)); code != http.StatusForbidden {
		t.Errorf("responder upload: %d, want 403", code)
	}

	// The alert view: the photo next to the name, for a linked carer too.
	if code, _, b := w.photoCall("admin", "PUT", "/api/v1/people/x-worker/photo", "image/png", photoPNG(t, 50, 80)); code != http.StatusNoContent {
		t.Fatalf("PUT x-worker photo: %d %s", code, b)
	}
	fx := w.fixture("x-worker")
	alertPage := "/console/x/alerts/" + fx["alert"]
	for _, caller := range []string{"responder", "carer"} {
		code, _, body := w.consoleDo(caller, "GET", alertPage, "", nil)
		if code != http.StatusOK {
			t.Fatalf("alert view as %s: %d", caller, code)
		}
		if want := `<img class="alert-photo" id="alert-photo" src="` + alertPage + `/photo" alt="Wyn">`; !strings.Contains(body, want) {
			t.Errorf("alert view as %s lacks %s", caller, want)
		}
		code, hdr, img := w.consoleDo(caller, "GET", alertPage+"/photo", "", nil)
		if code != http.StatusOK || hdr.Get("Content-Type") != "image/jpeg" || len(img) == 0 {
			t.Errorf("alert photo as %s: %d %v", caller, code, hdr)
		}
	}
	// A carer not linked to the alert's person reaches neither.
	other := w.fixture("x-other")
	if code, _, _ := w.consoleDo("carer", "GET", "/console/x/alerts/"+other["alert"]+"/photo", "", nil); code != http.StatusNotFound {
		t.Errorf("carer, another person's alert photo: %d, want 404", code)
	}
	// An alert of a person without a photo: no img.
	if code, _, b := w.photoCall("admin", "DELETE", "/api/v1/people/x-worker/photo", "", nil); code != http.StatusNoContent {
		t.Fatalf("DELETE photo: %d %s", code, b)
	}
	if _, _, body := w.consoleDo("responder", "GET", alertPage, "", nil); strings.Contains(body, `id="alert-photo"`) {
		t.Error("alert view shows a photo after it was removed")
	}

	// Remove from the person page.
	if code, hdr, _ := w.consoleDo("admin", "POST", page+"/photo/delete", "", nil); code != http.StatusSeeOther {
		t.Fatalf("remove: %d %v", code, hdr)
	}
	if code, _, _ := w.consoleDo("admin", "GET", page+"/photo", "", nil); code != http.StatusNoContent {
		t.Errorf("console photo after removal: %d, want 204", code)
	}
}
