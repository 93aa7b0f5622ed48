package firmware

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Version is a semantic version MAJOR.MINOR.PATCH, compared numerically
// (1.10.0 is newer than 1.9.0). Pre-release and build suffixes are not
// accepted: a release is a release.
type Version struct{ Major, Minor, Patch uint32 }

// ParseVersion reads "1.2.3" (an optional leading "v" is accepted).
func ParseVersion(s string) (Version, error) {
	t := strings.TrimPrefix(s, "v")
	parts := strings.Split(t, ".")
	if len(parts) != 3 || len(s) > 32 {
		return Version{}, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH, e.g. 1.2.0", s)
	}
	var n [3]uint32
	for i, p := range parts {
		if p == "" || (len(p) > 1 && p[0] == '0') || strings.TrimLeft(p, "0123456789") != "" {
			return Version{}, fmt.Errorf("version %q: want MAJOR.MINOR.PATCH of decimal numbers without leading zeros", s)
		}
		v, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			return Version{}, fmt.Errorf("version %q: %w", s, err)
		}
		n[i] = uint32(v)
	}
	return Version{n[0], n[1], n[2]}, nil
}

// String is "MAJOR.MINOR.PATCH".
func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Compare is -1, 0 or +1 as v is older than, the same as or newer than w.
func (v Version) Compare(w Version) int {
	for _, d := range [3][2]uint32{{v.Major, w.Major}, {v.Minor, w.Minor}, {v.Patch, w.Patch}} {
		switch {
		case d[0] < d[1]:
			return -1
		case d[0] > d[1]:
			return 1
		}
	}
	return 0
}

// hardwareRe is a hardware id: what a device model calls itself.
var hardwareRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// ValidHardware reports whether h is a usable hardware id.
func ValidHardware(h string) bool { return hardwareRe.MatchString(h) }

// TargetName is the image's name in both repositories: hardware-version.img.
func TargetName(hardware string, v Version) string { return hardware + "-" + v.String() + ".img" }

// targetNameRe is what TargetName makes.
var targetNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}-[0-9]+\.[0-9]+\.[0-9]+\.img$`)

// ValidTargetName reports whether name could be a target's name (it says
// nothing of whether the target exists).
func ValidTargetName(name string) bool { return targetNameRe.MatchString(name) }

func jsonMarshal(v any) (json.RawMessage, error) { return json.Marshal(v) }

// ForHardware reports whether an image for hardware image fits a device
// of hardware dev: the same id, or one of its parts ("watch.modem" is a
// part of "watch", shipped in the same bundle).
func ForHardware(image, dev string) bool {
	return image == dev || strings.HasPrefix(image, dev+".")
}
