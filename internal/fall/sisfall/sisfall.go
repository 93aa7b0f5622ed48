// Package sisfall reads recordings of the SisFall dataset (Sucerquia et al.,
// "SisFall: A Fall and Movement Dataset", Sensors 17(1):198, 2017) in its
// original layout: one folder per subject (SA.. young adults, SE.. elderly)
// holding files named <ACTIVITY>_<SUBJECT>_R<TRIAL>.txt, optionally compressed
// on their own as .txt.bz2.
//
// Each line is one 200 Hz sample of 9 raw ADC counts: ADXL345 acceleration
// (±16 g, 13 bit), ITG3200 angular rate (±2000 °/s, 16 bit) and MMA8451Q
// acceleration (±8 g, 14 bit). Parse converts them to g and °/s with the
// dataset readme's formula value = (2·range / 2^bits) · raw.
//
// Quirks of the real files this package copes with: the subject is the folder
// name, never the name inside the file name (SA15 holds files named
// D17_SE15_*); trial numbers are not checked against the protocol (SE14 has an
// R06); trials may be missing; recordings have any length.
//
// It imports only the standard library and must not import internal/fall or
// any other Vigil package: it is a leaf that parses outside bytes. Bad input
// gives an error naming the line; it never panics.
package sisfall

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Rate is the sampling rate of every SisFall recording, in Hz.
const Rate = 200

// Conversion factors from raw counts to physical units (dataset readme).
const (
	AccelScale  = 2 * 16.0 / (1 << 13)   // ADXL345: g per count (1/256)
	GyroScale   = 2 * 2000.0 / (1 << 16) // ITG3200: °/s per count (≈0.0610)
	Accel2Scale = 2 * 8.0 / (1 << 14)    // MMA8451Q: g per count (1/1024)
)

// Raw limits of each sensor; a count beyond them is corrupt input.
const (
	accelLimit  = 1 << 12 // ±4096
	gyroLimit   = 1 << 15 // ±32768
	accel2Limit = 1 << 13 // ±8192
)

// maxLine bounds one line; real lines are under 50 bytes.
const maxLine = 4096

// File is one recording as named on disk.
type File struct {
	Path     string // path to the .txt or .txt.bz2 file
	Subject  string // from the folder name, e.g. "SA15"
	Activity string // e.g. "D17" or "F05"
	Trial    int    // from R<TRIAL>
}

// Fall reports whether the recording is a fall (activity code F..).
func (f File) Fall() bool { return strings.HasPrefix(f.Activity, "F") }

// Elderly reports whether the subject is one of the elderly (SE..).
func (f File) Elderly() bool { return strings.HasPrefix(f.Subject, "SE") }

// Samples are the converted columns of one recording, one entry per line.
type Samples struct {
	Accel  [][3]float32 // ADXL345, g
	Gyro   [][3]float32 // ITG3200, °/s
	Accel2 [][3]float32 // MMA8451Q, g
}

// Len is the number of samples.
func (s Samples) Len() int { return len(s.Accel) }

// Recording is a parsed file.
type Recording struct {
	File
	Samples
}

// Seconds is the duration of the recording at 200 Hz.
func (r Recording) Seconds() float64 { return float64(r.Len()) / Rate }

// ParseName reads the activity and trial from a file name such as
// "D07_SE14_R06.txt.bz2"; the subject comes from folder. The subject written
// in the file name is deliberately ignored (see the package comment).
func ParseName(folder, name string) (File, error) {
	base := strings.TrimSuffix(strings.TrimSuffix(name, ".bz2"), ".txt")
	if base == name || !validSubject(folder) {
		return File{}, fmt.Errorf("sisfall: %s/%s: not a SisFall recording name", folder, name)
	}
	parts := strings.Split(base, "_")
	if len(parts) != 3 || len(parts[0]) != 3 || (parts[0][0] != 'D' && parts[0][0] != 'F') ||
		!digits(parts[0][1:]) || !validSubject(parts[1]) ||
		len(parts[2]) < 2 || parts[2][0] != 'R' || !digits(parts[2][1:]) || len(parts[2]) > 4 {
		return File{}, fmt.Errorf("sisfall: %s/%s: want <D|F>NN_S<A|E>NN_RNN.txt[.bz2]", folder, name)
	}
	trial := 0
	for _, c := range parts[2][1:] {
		trial = trial*10 + int(c-'0')
	}
	return File{Subject: folder, Activity: parts[0], Trial: trial}, nil
}

func validSubject(s string) bool {
	return len(s) == 4 && s[0] == 'S' && (s[1] == 'A' || s[1] == 'E') && digits(s[2:])
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// List finds every recording under dir: subject folders named SA.. or SE..,
// files ending in .txt or .txt.bz2. Other files (Readme.txt, MANIFEST.tsv)
// are skipped. The result is sorted by subject, activity and trial, so that
// every run sees the files in the same order.
func List(dir string) ([]File, error) {
	subjects, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("sisfall: list %s: %w", dir, err)
	}
	var files []File
	for _, s := range subjects {
		if !s.IsDir() || !validSubject(s.Name()) {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(dir, s.Name()))
		if err != nil {
			return nil, fmt.Errorf("sisfall: list %s: %w", s.Name(), err)
		}
		for _, e := range entries {
			n := e.Name()
			if e.IsDir() || !(strings.HasSuffix(n, ".txt") || strings.HasSuffix(n, ".txt.bz2")) {
				continue
			}
			f, err := ParseName(s.Name(), n)
			if err != nil {
				return nil, err
			}
			f.Path = filepath.Join(dir, s.Name(), n)
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("sisfall: no recordings under %s (want SA../SE.. folders of *.txt or *.txt.bz2)", dir)
	}
	slices.SortFunc(files, func(a, b File) int {
		return cmpKey(a).Compare(cmpKey(b))
	})
	return files, nil
}

type key struct {
	subject, activity string
	trial             int
	path              string
}

func cmpKey(f File) key { return key{f.Subject, f.Activity, f.Trial, f.Path} }

func (a key) Compare(b key) int {
	if c := strings.Compare(a.subject, b.subject); c != 0 {
		return c
	}
	if c := strings.Compare(a.activity, b.activity); c != 0 {
		return c
	}
	if a.trial != b.trial {
		return a.trial - b.trial
	}
	return strings.Compare(a.path, b.path)
}

// Load opens and parses f, decompressing it if its name ends in .bz2.
func Load(f File) (Recording, error) {
	fh, err := os.Open(f.Path)
	if err != nil {
		return Recording{}, fmt.Errorf("sisfall: %w", err)
	}
	defer fh.Close()
	var r io.Reader = bufio.NewReaderSize(fh, 64<<10)
	if strings.HasSuffix(f.Path, ".bz2") {
		r = bzip2.NewReader(r)
	}
	s, err := Parse(r)
	if err != nil {
		return Recording{}, fmt.Errorf("sisfall: %s: %w", f.Path, err)
	}
	return Recording{File: f, Samples: s}, nil
}

// LoadPath loads one recording by its path, which must end in its subject
// folder and file name (".../SA03/F02_SA03_R02.txt.bz2"): the subject comes
// from the folder, as in List.
func LoadPath(path string) (Recording, error) {
	f, err := ParseName(filepath.Base(filepath.Dir(path)), filepath.Base(path))
	if err != nil {
		return Recording{}, err
	}
	f.Path = path
	return Load(f)
}

// ErrEmpty is returned for a recording with no samples.
var ErrEmpty = errors.New("sisfall: no samples")

// Parse reads the text of one recording: lines of 9 comma-separated integers,
// optionally padded with spaces and ended by ';' and CRLF; blank lines are
// skipped. Errors name the 1-based line and field.
func Parse(r io.Reader) (Samples, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxLine)
	var s Samples
	line := 0
	var raw [9]int
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		b = bytes.TrimSuffix(b, []byte(";"))
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		if err := parseLine(b, &raw); err != nil {
			return Samples{}, fmt.Errorf("line %d: %w", line, err)
		}
		s.Accel = append(s.Accel, [3]float32{float32(raw[0]) * AccelScale, float32(raw[1]) * AccelScale, float32(raw[2]) * AccelScale})
		s.Gyro = append(s.Gyro, [3]float32{float32(raw[3]) * GyroScale, float32(raw[4]) * GyroScale, float32(raw[5]) * GyroScale})
		s.Accel2 = append(s.Accel2, [3]float32{float32(raw[6]) * Accel2Scale, float32(raw[7]) * Accel2Scale, float32(raw[8]) * Accel2Scale})
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Samples{}, fmt.Errorf("line %d: longer than %d bytes", line+1, maxLine)
		}
		return Samples{}, fmt.Errorf("line %d: %w", line+1, err)
	}
	if s.Len() == 0 {
		return Samples{}, ErrEmpty
	}
	return s, nil
}

var limits = [9]int{accelLimit, accelLimit, accelLimit, gyroLimit, gyroLimit, gyroLimit, accel2Limit, accel2Limit, accel2Limit}

// parseLine reads 9 integers separated by commas, each optionally padded with
// spaces or tabs, into raw, checking each against its sensor's range.
func parseLine(b []byte, raw *[9]int) error {
	field := 0
	i := 0
	for {
		if field == 9 {
			return fmt.Errorf("more than 9 fields")
		}
		for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		neg := false
		if i < len(b) && (b[i] == '-' || b[i] == '+') {
			neg = b[i] == '-'
			i++
		}
		start, v := i, 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			if v > 1<<20 {
				return fmt.Errorf("field %d: number too large", field+1)
			}
			v = v*10 + int(b[i]-'0')
			i++
		}
		if i == start {
			return fmt.Errorf("field %d: not an integer", field+1)
		}
		if neg {
			v = -v
		}
		if v < -limits[field] || v > limits[field] {
			return fmt.Errorf("field %d: %d outside the sensor's range ±%d", field+1, v, limits[field])
		}
		raw[field] = v
		field++
		for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		if i == len(b) {
			break
		}
		if b[i] != ',' {
			return fmt.Errorf("field %d: unexpected %q", field, b[i])
		}
		i++
	}
	if field != 9 {
		return fmt.Errorf("want 9 fields, got %d", field)
	}
	return nil
}
