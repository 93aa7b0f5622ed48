package web_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"net/http"
	"testing"

	"vigil/internal/web"
)

// testImage is a w×h picture with a gradient and a half-transparent band.
func testImage(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			a := uint8(255)
			if y < h/4 {
				a = 100
			}
			img.Set(x, y, color.NRGBA{uint8(x), uint8(y), 120, a})
		}
	}
	return img
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// withEXIF inserts an APP1 EXIF segment (carrying a GPS position) after
// the JPEG's start marker, and appends a payload after its end.
func withEXIF(j []byte, exif, trailer string) []byte {
	body := []byte("Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08" + exif)
	seg := []byte{0xff, 0xe1, 0, 0}
	binary.BigEndian.PutUint16(seg[2:], uint16(len(body)+2))
	out := append([]byte{}, j[:2]...)
	out = append(out, seg...)
	out = append(out, body...)
	out = append(out, j[2:]...)
	return append(out, trailer...)
}

// pngDeclaring is a valid PNG whose header declares w×h pixels.
func pngDeclaring(t testing.TB, w, h uint32) []byte {
	b := encodePNG(t, testImage(2, 2))
	binary.BigEndian.PutUint32(b[16:], w)
	binary.BigEndian.PutUint32(b[20:], h)
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}

func TestProcessPhotoScalesAndReencodes(t *testing.T) {
	for _, tc := range []struct {
		name       string
		ct         string
		data       []byte
		wantW, wah int
	}{
		{"large png", "image/png", encodePNG(t, testImage(1200, 900)), 512, 384},
		{"tall jpeg", "image/jpeg; charset=binary", encodeJPEG(t, testImage(300, 1000)), 154, 512},
		{"small png kept", "image/png", encodePNG(t, testImage(40, 30)), 40, 30},
		{"one pixel", "image/png", encodePNG(t, testImage(1, 1)), 1, 1},
		{"thin", "image/png", encodePNG(t, testImage(4000, 2)), 512, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := web.ProcessPhoto(tc.ct, tc.data)
			if err != nil {
				t.Fatal(err)
			}
			img, format, err := image.Decode(bytes.NewReader(out))
			if err != nil || format != "jpeg" {
				t.Fatalf("stored photo: format %q, %v; want a JPEG", format, err)
			}
			if b := img.Bounds(); b.Dx() != tc.wantW || b.Dy() != tc.wah {
				t.Errorf("stored photo is %dx%d, want %dx%d", b.Dx(), b.Dy(), tc.wantW, tc.wah)
			}
		})
	}
}

// TestProcessPhotoTransparencyOverWhite: a fully transparent upload comes
// back white, not black.
func TestProcessPhotoTransparencyOverWhite(t *testing.T) {
	out, err := web.ProcessPhoto("image/png", encodePNG(t, image.NewNRGBA(image.Rect(0, 0, 8, 8))))
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	r, g, b, _ := img.At(4, 4).RGBA()
	if r>>8 < 250 || g>>8 < 250 || b>>8 < 250 {
		t.Errorf("transparent pixel became %d,%d,%d; want white", r>>8, g>>8, b>>8)
	}
}

// TestProcessPhotoStripsEXIF: the GPS position in the upload's EXIF, and
// a payload appended to the file, are not in what is stored.
func TestProcessPhotoStripsEXIF(t *testing.T) {
	in := withEXIF(encodeJPEG(t, testImage(64, 48)), "GPSLatitude 51.5074 N", "<script>alert(1)</script>")
	if _, err := jpeg.Decode(bytes.NewReader(in)); err != nil {
		t.Fatalf("test upload is not a valid JPEG: %v", err)
	}
	out, err := web.ProcessPhoto("image/jpeg", in)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"Exif", "GPS", "51.5074", "<script>"} {
		if bytes.Contains(out, []byte(s)) {
			t.Errorf("stored photo still holds %q", s)
		}
	}
	if bytes.Contains(out, []byte{0xff, 0xe1}) {
		t.Error("stored photo has an APP1 segment")
	}
}

func TestProcessPhotoRefusals(t *testing.T) {
	png1 := encodePNG(t, testImage(4, 4))
	for _, tc := range []struct {
		name   string
		ct     string
		data   []byte
		status int
		field  string
	}{
		{"no content type", "", png1, http.StatusUnsupportedMediaType, "Content-Type"},
		{"gif", "image/gif", []byte("GIF89a"), http.StatusUnsupportedMediaType, "Content-Type"},
		{"svg", "image/svg+xml", []byte("<svg/>"), http.StatusUnsupportedMediaType, "Content-Type"},
		{"declared png, is jpeg", "image/png", encodeJPEG(t, testImage(4, 4)), http.StatusUnsupportedMediaType, "Content-Type"},
		{"text", "image/jpeg", []byte("hello, not an image"), http.StatusBadRequest, "image"},
		{"empty", "image/png", nil, http.StatusBadRequest, "image"},
		{"truncated", "image/png", png1[:len(png1)-20], http.StatusBadRequest, "image"},
		{"too large", "image/png", make([]byte, web.PhotoMaxBytes+1), http.StatusRequestEntityTooLarge, "image"},
		{"too wide", "image/png", pngDeclaring(t, 4097, 10), http.StatusBadRequest, "image"},
		{"bomb", "image/png", pngDeclaring(t, 100000, 100000), http.StatusBadRequest, "image"},
		{"zero", "image/png", pngDeclaring(t, 0, 10), http.StatusBadRequest, "image"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := web.ProcessPhoto(tc.ct, tc.data)
			var pe *web.PhotoError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want a PhotoError", err)
			}
			if pe.Status != tc.status || pe.Field != tc.field {
				t.Errorf("got %d %s (%s), want %d %s", pe.Status, pe.Field, pe.Msg, tc.status, tc.field)
			}
		})
	}
}

// FuzzProcessPhoto feeds the upload decoder arbitrary bytes: it refuses
// with a PhotoError or answers a JPEG of at most 512 px a side, and never
// panics.
func FuzzProcessPhoto(f *testing.F) {
	f.Add("image/png", encodePNG(f, testImage(20, 10)))
	f.Add("image/jpeg", withEXIF(encodeJPEG(f, testImage(20, 10)), "GPS", "tail"))
	f.Add("image/png", pngDeclaring(f, 5000, 5000))
	f.Fuzz(func(t *testing.T, ct string, data []byte) {
		out, err := web.ProcessPhoto(ct, data)
		if err != nil {
			var pe *web.PhotoError
			if !errors.As(err, &pe) || pe.Field == "" || pe.Status < 400 || pe.Status > 499 {
				t.Fatalf("refusal %v: want a PhotoError with a field and a 4xx status", err)
			}
			return
		}
		cfg, format, err := image.DecodeConfig(bytes.NewReader(out))
		if err != nil || format != "jpeg" {
			t.Fatalf("accepted upload stored as %q: %v", format, err)
		}
		if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > 512 || cfg.Height > 512 {
			t.Fatalf("stored photo is %dx%d", cfg.Width, cfg.Height)
		}
	})
}

// BenchmarkProcessPhotoLargest is the worst upload accepted: a 4096×4096
// PNG (it compresses well, so it fits in 2 MiB).
func BenchmarkProcessPhotoLargest(b *testing.B) {
	data := encodePNG(b, image.NewNRGBA(image.Rect(0, 0, web.PhotoMaxPixels, web.PhotoMaxPixels)))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := web.ProcessPhoto("image/png", data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkProcessPhotoPhone is a typical phone photo: 4032×3024 JPEG.
func BenchmarkProcessPhotoPhone(b *testing.B) {
	data := encodeJPEG(b, testImage(4032, 3024))
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := web.ProcessPhoto("image/jpeg", data); err != nil {
			b.Fatal(err)
		}
	}
}

// exifOrientationSegment is EXIF (big- or little-endian TIFF) with IFD0
// holding one tag: orientation o.
func exifOrientationSegment(o int, little bool) string {
	if little {
		return "II\x2a\x00\x08\x00\x00\x00" + "\x01\x00" + "\x12\x01\x03\x00\x01\x00\x00\x00" + string([]byte{byte(o), 0, 0, 0}) + "\x00\x00\x00\x00"
	}
	return "MM\x00\x2a\x00\x00\x00\x08" + "\x00\x01" + "\x01\x12\x00\x03\x00\x00\x00\x01" + string([]byte{0, byte(o), 0, 0}) + "\x00\x00\x00\x00"
}

// TestProcessPhotoOrientation: a photo taken with the camera turned is
// stored the right way up (EXIF orientation applied to the pixels), and
// the orientation tag itself is gone with the rest of the EXIF.
func TestProcessPhotoOrientation(t *testing.T) {
	// 40×20: left half red, right half blue.
	src := image.NewNRGBA(image.Rect(0, 0, 40, 20))
	for y := range 20 {
		for x := range 40 {
			c := color.NRGBA{0, 0, 255, 255}
			if x < 20 {
				c = color.NRGBA{255, 0, 0, 255}
			}
			src.Set(x, y, c)
		}
	}
	plain := encodeJPEG(t, src)
	red := func(img image.Image, x, y int) bool {
		r, _, b, _ := img.At(x, y).RGBA()
		return r>>8 > 200 && b>>8 < 60
	}
	for _, tc := range []struct {
		name         string
		o            int
		little       bool
		w, h         int
		redX, redY   int // a pixel that must be red
		blueX, blueY int // one that must not
	}{
		{"none", 1, false, 40, 20, 5, 10, 35, 10},
		{"rotate 180", 3, true, 40, 20, 35, 10, 5, 10},
		{"rotate 90 cw", 6, false, 20, 40, 10, 5, 10, 35},
		{"rotate 90 ccw", 8, true, 20, 40, 10, 35, 10, 5},
		{"mirror", 2, false, 40, 20, 35, 10, 5, 10},
		{"bad value", 9, false, 40, 20, 5, 10, 35, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seg := []byte("Exif\x00\x00" + exifOrientationSegment(tc.o, tc.little))
			in := append([]byte{0xff, 0xd8, 0xff, 0xe1, byte((len(seg) + 2) >> 8), byte(len(seg) + 2)}, append(seg, plain[2:]...)...)
			out, err := web.ProcessPhoto("image/jpeg", in)
			if err != nil {
				t.Fatal(err)
			}
			img, err := jpeg.Decode(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			if b := img.Bounds(); b.Dx() != tc.w || b.Dy() != tc.h {
				t.Fatalf("stored %dx%d, want %dx%d", b.Dx(), b.Dy(), tc.w, tc.h)
			}
			if !red(img, tc.redX, tc.redY) || red(img, tc.blueX, tc.blueY) {
				t.Errorf("orientation %d not applied: (%d,%d) red %v, (%d,%d) red %v", tc.o, tc.redX, tc.redY,
					red(img, tc.redX, tc.redY), tc.blueX, tc.blueY, red(img, tc.blueX, tc.blueY))
			}
			if bytes.Contains(out, []byte("Exif")) {
				t.Error("stored photo still has EXIF")
			}
		})
	}
}
