package sisfall_test

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vigil/internal/fall/sisfall"
)

func near(a, b float32) bool { return math.Abs(float64(a-b)) < 1e-6 }

func TestParseConverts(t *testing.T) {
	in := "  -9,-257, -25,  84, 247,  27,-120,-987,  63;\r\n\r\n 256, 4096,-4096,32768,-32768, 0,1024,8192,-8192;\r\n"
	s, err := sisfall.Parse(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 {
		t.Fatalf("got %d samples, want 2", s.Len())
	}
	tests := []struct {
		name      string
		got, want float32
	}{
		{"accel x = raw/256", s.Accel[0][0], -9.0 / 256},
		{"accel y", s.Accel[0][1], -257.0 / 256},
		{"accel 256 counts = 1 g", s.Accel[1][0], 1},
		{"accel limit = 16 g", s.Accel[1][1], 16},
		{"gyro = raw·4000/65536", s.Gyro[0][0], 84 * 4000.0 / 65536},
		{"gyro limit = 2000 °/s", s.Gyro[1][0], 2000},
		{"gyro negative limit", s.Gyro[1][1], -2000},
		{"accel2 = raw/1024", s.Accel2[0][1], -987.0 / 1024},
		{"accel2 1024 counts = 1 g", s.Accel2[1][0], 1},
		{"accel2 limit = 8 g", s.Accel2[1][1], 8},
	}
	for _, tt := range tests {
		if !near(tt.got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if !near(float32(sisfall.GyroScale), 0.061035156) {
		t.Errorf("gyro scale %v, want ≈0.0610", sisfall.GyroScale)
	}
}

func TestParseErrors(t *testing.T) {
	good := "1,2,3,4,5,6,7,8,9;\r\n"
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "no samples"},
		{"blank lines only", "\r\n \r\n", "no samples"},
		{"eight fields", good + "1,2,3,4,5,6,7,8;\r\n", "line 2: want 9 fields, got 8"},
		{"ten fields", good + good + "1,2,3,4,5,6,7,8,9,10;", "line 3: more than 9 fields"},
		{"letter", "1,2,x,4,5,6,7,8,9;", "line 1: field 3: not an integer"},
		{"empty field", "1,,3,4,5,6,7,8,9;", "line 1: field 2: not an integer"},
		{"accel out of range", "4097,2,3,4,5,6,7,8,9;", "line 1: field 1: 4097 outside the sensor's range"},
		{"accel2 out of range", "1,2,3,4,5,6,7,8,-8193;", "line 1: field 9: -8193 outside"},
		{"huge number", "1,2,3,4,5,6,99999999999999999999999,8,9;", "line 1: field 7: number too large"},
		{"missing comma", "1 2,3,4,5,6,7,8,9;", "line 1: field 1: unexpected '2'"},
		{"long line", good + strings.Repeat(" ", 5000) + "1,2,3,4,5,6,7,8,9", "line 2: longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sisfall.Parse(strings.NewReader(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
	if _, err := sisfall.Parse(strings.NewReader("")); !errors.Is(err, sisfall.ErrEmpty) {
		t.Errorf("empty input: got %v, want ErrEmpty", err)
	}
}

func TestParseName(t *testing.T) {
	tests := []struct {
		folder, name string
		want         sisfall.File
		fall, old    bool
	}{
		{"SA15", "D17_SE15_R01.txt", sisfall.File{Subject: "SA15", Activity: "D17", Trial: 1}, false, false},
		{"SE14", "D07_SE14_R06.txt.bz2", sisfall.File{Subject: "SE14", Activity: "D07", Trial: 6}, false, true},
		{"SA02", "F05_SA02_R03.txt.bz2", sisfall.File{Subject: "SA02", Activity: "F05", Trial: 3}, true, false},
	}
	for _, tt := range tests {
		got, err := sisfall.ParseName(tt.folder, tt.name)
		if err != nil || got != tt.want || got.Fall() != tt.fall || got.Elderly() != tt.old {
			t.Errorf("ParseName(%q, %q) = %+v, %v; want %+v", tt.folder, tt.name, got, err, tt.want)
		}
	}
	for _, bad := range []string{"D17_SE15_R01.csv", "X17_SE15_R01.txt", "D1_SE15_R01.txt", "D17_SX15_R01.txt", "D17_SE15_01.txt", "D17_SE15.txt", "D17_SE15_R.txt"} {
		if _, err := sisfall.ParseName("SA01", bad); err == nil {
			t.Errorf("ParseName(%q) accepted", bad)
		}
	}
	if _, err := sisfall.ParseName("notasubject", "D01_SA01_R01.txt"); err == nil {
		t.Error("a folder that is no subject was accepted")
	}
}

// TestListAndLoadQuirks covers a misnamed file (SA15 holds D17_SE15_*), a
// trial R06, a .txt next to a .txt.bz2, and files that are not recordings.
func TestListAndLoadQuirks(t *testing.T) {
	files, err := sisfall.List("testdata/layout")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 {
		t.Fatalf("got %d files, want 2: %+v", len(files), files)
	}
	if f := files[0]; f.Subject != "SA15" || f.Activity != "D17" || f.Elderly() {
		t.Errorf("first file %+v: want SA15's own D17 (subject from the folder)", f)
	}
	if f := files[1]; f.Subject != "SE14" || f.Trial != 6 || !f.Elderly() {
		t.Errorf("second file %+v: want SE14 trial 6", f)
	}
	r, err := sisfall.Load(files[0])
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 2 || !near(r.Accel[0][1], -1) || !near(r.Accel2[1][1], -1023.0/1024) || r.Seconds() != 0.01 {
		t.Errorf("plain text: %+v", r.Samples)
	}
	r, err = sisfall.Load(files[1])
	if err != nil {
		t.Fatal(err)
	}
	if r.Len() != 1 || !near(r.Accel[0][1], -1) || !near(r.Accel2[0][1], -1) {
		t.Errorf("bzip2: %+v", r.Samples)
	}
	if _, err := sisfall.List(t.TempDir()); err == nil {
		t.Error("an empty folder gave no error")
	}
}

func TestLoadCorruptNamesPath(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "SA01", "D01_SA01_R01.txt.bz2")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("not bzip2"), 0o644); err != nil {
		t.Fatal(err)
	}
	files, err := sisfall.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sisfall.Load(files[0]); err == nil || !strings.Contains(err.Error(), "D01_SA01_R01") {
		t.Fatalf("got %v, want an error naming the file", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("  -9,-257, -25,  84, 247,  27,-120,-987,  63;\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := sisfall.Parse(bytes.NewReader(b))
		if err != nil {
			if s.Len() != 0 {
				t.Fatal("samples returned with an error")
			}
			return
		}
		if s.Len() == 0 || len(s.Gyro) != s.Len() || len(s.Accel2) != s.Len() {
			t.Fatalf("inconsistent columns: %d %d %d", s.Len(), len(s.Gyro), len(s.Accel2))
		}
		for i := range s.Accel {
			for k := range 3 {
				if math.Abs(float64(s.Accel[i][k])) > 16 || math.Abs(float64(s.Gyro[i][k])) > 2000 || math.Abs(float64(s.Accel2[i][k])) > 8 {
					t.Fatalf("sample %d beyond the sensor ranges", i)
				}
			}
		}
	})
}

func TestLoadPath(t *testing.T) {
	r, err := sisfall.LoadPath("../testdata/sisfall/SA03/F02_SA03_R02.txt.bz2")
	if err != nil {
		t.Fatal(err)
	}
	if r.Subject != "SA03" || r.Activity != "F02" || r.Trial != 2 || !r.Fall() || r.Len() == 0 {
		t.Errorf("LoadPath: %s %s R%d fall=%v, %d samples", r.Subject, r.Activity, r.Trial, r.Fall(), r.Len())
	}
	if _, err := sisfall.LoadPath("../testdata/sisfall/README.md"); err == nil {
		t.Error("LoadPath accepted a file that is not a recording")
	}
}
