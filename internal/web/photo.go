package web

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	"image/draw"
	"image/jpeg"
	"image/png"
	"io"
	"mime"
	"net/http"

	"vigil/internal/auth"
	"vigil/internal/store"
)

// A person's photo lets responders recognise the person they are sent
// to. It is personal data like the rest of the person: reads and changes
// are authorised on the person and audited. Uploads are outside bytes: the
// server decodes them with the standard image packages (after checking the
// declared dimensions, so a decompression bomb is refused before any
// pixel is allocated) and stores only its own re-encoding, a JPEG at most
// photoMaxSide pixels on the long side. Re-encoding drops EXIF (the GPS
// position where the picture was taken) and anything appended to or
// embedded in the file; only the EXIF orientation is read, and applied to
// the pixels, so a phone's portrait photo is stored the right way up.

// photoRoutes are API routes of this family (see Routes).
var photoRoutes = []Route{
	{"PUT /api/v1/people/{id}/photo", ObjPerm, auth.PeopleWrite, func(a *API) http.HandlerFunc { return a.putPersonPhoto }},
	{"GET /api/v1/people/{id}/photo", ObjPerm, auth.PeopleRead, func(a *API) http.HandlerFunc { return a.getPersonPhoto }},
	{"DELETE /api/v1/people/{id}/photo", ObjPerm, auth.PeopleWrite, func(a *API) http.HandlerFunc { return a.deletePersonPhoto }},
}

// Photo limits.
const (
	// PhotoMaxBytes bounds an uploaded image file.
	PhotoMaxBytes = 2 << 20
	// PhotoMaxPixels bounds an uploaded image's declared width and height.
	PhotoMaxPixels = 4096
	// photoMaxSide is the long side of the stored image.
	photoMaxSide = 512
	// photoQuality is the stored JPEG's quality.
	photoQuality = 85
)

// photoStore is what the photo routes need of the directory.
type photoStore interface {
	PutPersonPhoto(ctx context.Context, p store.PersonPhoto) error
	GetPersonPhoto(ctx context.Context, personID string) (store.PersonPhoto, error)
	DeletePersonPhoto(ctx context.Context, personID string) error
}

// PhotoError says why an upload is refused: the field (the request's
// Content-Type or the image) and the HTTP status.
type PhotoError struct {
	Status int
	Field  string
	Msg    string
}

func (e *PhotoError) Error() string { return "photo: " + e.Field + ": " + e.Msg }

// ProcessPhoto checks an uploaded image of declared media type
// contentType (image/jpeg or image/png) and answers the JPEG to store: at
// most photoMaxSide pixels on the long side, quality photoQuality, with
// nothing of the upload but its pixels. A refusal is a *PhotoError.
func ProcessPhoto(contentType string, data []byte) ([]byte, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || (mt != "image/jpeg" && mt != "image/png") {
		return nil, &PhotoError{http.StatusUnsupportedMediaType, "Content-Type", "want image/jpeg or image/png"}
	}
	if len(data) > PhotoMaxBytes {
		return nil, &PhotoError{http.StatusRequestEntityTooLarge, "image", "at most 2 MiB"}
	}
	if len(data) == 0 {
		return nil, &PhotoError{http.StatusBadRequest, "image", "required: a JPEG or PNG file"}
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil || (format != "jpeg" && format != "png") {
		return nil, &PhotoError{http.StatusBadRequest, "image", "not a JPEG or PNG image"}
	}
	if "image/"+format != mt {
		return nil, &PhotoError{http.StatusUnsupportedMediaType, "Content-Type", "the file is image/" + format + ", not " + mt}
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > PhotoMaxPixels || cfg.Height > PhotoMaxPixels {
		return nil, &PhotoError{http.StatusBadRequest, "image", "want at most 4096×4096 pixels"}
	}
	var img image.Image
	if format == "png" {
		img, err = png.Decode(bytes.NewReader(data))
	} else {
		img, err = jpeg.Decode(bytes.NewReader(data))
	}
	if err != nil {
		return nil, &PhotoError{http.StatusBadRequest, "image", "not a JPEG or PNG image"}
	}
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		return nil, &PhotoError{http.StatusBadRequest, "image", "not a JPEG or PNG image"}
	}
	small := scaleDown(img, photoMaxSide)
	if format == "jpeg" {
		// The one piece of metadata kept: which way up the camera was.
		small = orient(small, exifOrientation(data))
	}
	var out bytes.Buffer
	if err := jpeg.Encode(&out, small, &jpeg.Options{Quality: photoQuality}); err != nil {
		return nil, fmt.Errorf("encode photo: %w", err)
	}
	return out.Bytes(), nil
}

// scaleDown answers img as an opaque RGBA image (transparency over white)
// whose long side is at most max, averaging the source pixels that fall
// in each output pixel (a box filter: good enough to shrink a photo).
func scaleDown(img image.Image, max int) *image.RGBA {
	b := img.Bounds()
	sw, sh := b.Dx(), b.Dy()
	dw, dh := sw, sh
	if sw > max || sh > max {
		if sw >= sh {
			dw, dh = max, (sh*max+sw/2)/sw
		} else {
			dw, dh = (sw*max+sh/2)/sh, max
		}
		dw, dh = maxInt(dw, 1), maxInt(dh, 1)
	}
	// One source row at a time, converted to RGBA by draw's fast paths:
	// no second full-size copy of the image.
	line := image.NewRGBA(image.Rect(0, 0, sw, 1))
	sum := make([]uint64, dw*dh*4)
	cnt := make([]uint32, dw*dh)
	for y := range sh {
		dy := y * dh / sh
		draw.Draw(line, line.Rect, img, image.Pt(b.Min.X, b.Min.Y+y), draw.Src)
		row := line.Pix[:sw*4]
		for x := range sw {
			i := dy*dw + x*dw/sw
			p := row[x*4 : x*4+4]
			sum[i*4] += uint64(p[0])
			sum[i*4+1] += uint64(p[1])
			sum[i*4+2] += uint64(p[2])
			sum[i*4+3] += uint64(p[3])
			cnt[i]++
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for i, n := range cnt {
		if n == 0 {
			continue
		}
		n64 := uint64(n)
		a := sum[i*4+3] / n64
		for c := range 3 {
			// Premultiplied colour over white: c + (255 - a).
			dst.Pix[i*4+c] = uint8(min(sum[i*4+c]/n64+255-a, 255))
		}
		dst.Pix[i*4+3] = 255
	}
	return dst
}

// exifOrientation reads the EXIF orientation (1 to 8) of a JPEG: 1 (as
// stored) when there is none or the EXIF segment does not parse. Only the
// segments before the image data are searched; every offset is checked
// against the segment's length.
func exifOrientation(jpg []byte) int {
	if len(jpg) < 4 || jpg[0] != 0xff || jpg[1] != 0xd8 {
		return 1
	}
	for i := 2; i+4 <= len(jpg); {
		if jpg[i] != 0xff {
			return 1
		}
		marker := jpg[i+1]
		if marker == 0xda || marker == 0xd9 { // start of scan, end of image
			return 1
		}
		n := int(jpg[i+2])<<8 | int(jpg[i+3])
		if n < 2 || i+2+n > len(jpg) {
			return 1
		}
		seg := jpg[i+4 : i+2+n]
		if marker == 0xe1 && len(seg) >= 6 && string(seg[:6]) == "Exif\x00\x00" {
			return tiffOrientation(seg[6:])
		}
		i += 2 + n
	}
	return 1
}

// tiffOrientation reads tag 0x0112 of IFD0 of a TIFF header (EXIF's
// layout); 1 when absent or malformed.
func tiffOrientation(t []byte) int {
	if len(t) < 8 {
		return 1
	}
	var u16 func([]byte) int
	var u32 func([]byte) int
	switch string(t[:2]) {
	case "II":
		u16 = func(b []byte) int { return int(b[0]) | int(b[1])<<8 }
		u32 = func(b []byte) int { return int(b[0]) | int(b[1])<<8 | int(b[2])<<16 | int(b[3])<<24 }
	case "MM":
		u16 = func(b []byte) int { return int(b[0])<<8 | int(b[1]) }
		u32 = func(b []byte) int { return int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3]) }
	default:
		return 1
	}
	if u16(t[2:]) != 42 {
		return 1
	}
	off := u32(t[4:])
	if off < 8 || off > len(t)-2 {
		return 1
	}
	count := u16(t[off:])
	for k := range count {
		e := off + 2 + 12*k
		if e+12 > len(t) {
			return 1
		}
		if u16(t[e:]) == 0x0112 && u16(t[e+2:]) == 3 { // orientation, SHORT
			if v := u16(t[e+8:]); v >= 1 && v <= 8 {
				return v
			}
			return 1
		}
	}
	return 1
}

// orient turns an image stored with EXIF orientation o (1 to 8) the right
// way up.
func orient(src *image.RGBA, o int) *image.RGBA {
	if o < 2 || o > 8 {
		return src
	}
	w, h := src.Rect.Dx(), src.Rect.Dy()
	dw, dh := w, h
	if o >= 5 {
		dw, dh = h, w
	}
	dst := image.NewRGBA(image.Rect(0, 0, dw, dh))
	for y := range h {
		for x := range w {
			var dx, dy int
			switch o {
			case 2:
				dx, dy = w-1-x, y
			case 3:
				dx, dy = w-1-x, h-1-y
			case 4:
				dx, dy = x, h-1-y
			case 5:
				dx, dy = y, x
			case 6:
				dx, dy = h-1-y, x
			case 7:
				dx, dy = h-1-y, w-1-x
			case 8:
				dx, dy = y, w-1-x
			}
			copy(dst.Pix[dy*dst.Stride+dx*4:dy*dst.Stride+dx*4+4], src.Pix[y*src.Stride+x*4:y*src.Stride+x*4+4])
		}
	}
	return dst
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// photos is the directory's photo store, nil when it keeps none.
func (a *API) photos(w http.ResponseWriter) photoStore {
	ps, ok := a.dir.(photoStore)
	if !ok || ps == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "photos are not available")
		return nil
	}
	return ps
}

// photoJSONBody is the JSON form of an upload, for clients that send only
// JSON: the file in standard base64.
type photoJSONBody struct {
	Image       string `json:"image"`
	ContentType string `json:"content_type"`
}

// readPhoto reads the upload: the raw file with its own Content-Type, or
// the JSON form.
func readPhoto(w http.ResponseWriter, r *http.Request) (contentType string, data []byte, perr *PhotoError) {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/json" {
		var b photoJSONBody
		if f, m, ok := decode(w, r, PhotoMaxBytes*4/3+4096, &b); !ok {
			if f == "" {
				f = "image"
			}
			return "", nil, &PhotoError{http.StatusBadRequest, f, m}
		}
		data, err := base64.StdEncoding.DecodeString(b.Image)
		if err != nil {
			return "", nil, &PhotoError{http.StatusBadRequest, "image", "want the file in standard base64"}
		}
		return b.ContentType, data, nil
	}
	if mt != "image/jpeg" && mt != "image/png" {
		return "", nil, &PhotoError{http.StatusUnsupportedMediaType, "Content-Type", "want image/jpeg or image/png"}
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, PhotoMaxBytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return "", nil, &PhotoError{http.StatusRequestEntityTooLarge, "image", "at most 2 MiB"}
	}
	if err != nil {
		return "", nil, &PhotoError{http.StatusBadRequest, "image", "body unreadable"}
	}
	return r.Header.Get("Content-Type"), data, nil
}

// putPersonPhoto sets the person's photo from a JPEG or PNG upload (see
// ProcessPhoto); 204 on success.
func (a *API) putPersonPhoto(w http.ResponseWriter, r *http.Request) {
	p, ok := a.personAs(w, r, auth.PeopleWrite)
	if !ok {
		return
	}
	ps := a.photos(w)
	if ps == nil {
		return
	}
	// Decoding a large image takes tens of MB: two at a time at most.
	select {
	case a.photoSem <- struct{}{}:
		defer func() { <-a.photoSem }()
	default:
		w.Header().Set("Retry-After", "2")
		writeError(w, http.StatusServiceUnavailable, "busy", "", "other photos are being processed; try again in a moment")
		return
	}
	ct, data, perr := readPhoto(w, r)
	if perr == nil {
		data, perr = processPhoto(ct, data)
	}
	if perr != nil {
		code := "invalid"
		switch perr.Status {
		case http.StatusUnsupportedMediaType:
			code = "unsupported_media_type"
		case http.StatusRequestEntityTooLarge:
			code = "too_large"
		}
		writeError(w, perr.Status, code, perr.Field, perr.Msg)
		return
	}
	if !a.audited(w, r, p.OrgID, "person.update", "person", p.ID, map[string]string{"field": "photo"}) {
		return
	}
	if err := ps.PutPersonPhoto(r.Context(), store.PersonPhoto{PersonID: p.ID, ContentType: "image/jpeg", Bytes: data,
		UpdatedAt: a.now().UTC()}); err != nil {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// processPhoto is ProcessPhoto with its refusal typed.
func processPhoto(ct string, data []byte) ([]byte, *PhotoError) {
	out, err := ProcessPhoto(ct, data)
	var pe *PhotoError
	if errors.As(err, &pe) {
		return nil, pe
	}
	if err != nil {
		return nil, &PhotoError{http.StatusBadRequest, "image", "not a JPEG or PNG image"}
	}
	return out, nil
}

// getPersonPhoto answers the person's photo as image/jpeg, never cached,
// or 204 when they have none.
func (a *API) getPersonPhoto(w http.ResponseWriter, r *http.Request) {
	p, ok := a.personAs(w, r, auth.PeopleRead)
	if !ok {
		return
	}
	ps := a.photos(w)
	if ps == nil {
		return
	}
	ph, err := ps.GetPersonPhoto(r.Context(), p.ID)
	if errors.Is(err, store.ErrNotFound) {
		w.Header().Set("Cache-Control", "private, no-store")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if !a.audited(w, r, p.OrgID, "person.read", "person", p.ID, map[string]string{"field": "photo"}) {
		return
	}
	h := w.Header()
	h.Set("Content-Type", "image/jpeg")
	h.Set("Cache-Control", "private, no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Disposition", "inline")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(ph.Bytes)
}

// deletePersonPhoto removes the person's photo; idempotent (204 when they
// had none).
func (a *API) deletePersonPhoto(w http.ResponseWriter, r *http.Request) {
	p, ok := a.personAs(w, r, auth.PeopleWrite)
	if !ok {
		return
	}
	ps := a.photos(w)
	if ps == nil {
		return
	}
	if !a.audited(w, r, p.OrgID, "person.update", "person", p.ID, map[string]string{"field": "photo", "removed": "true"}) {
		return
	}
	if err := ps.DeletePersonPhoto(r.Context(), p.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		a.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
