package event_test

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"vigil/internal/event"
)

// i16 packs triples as the compact motion encoding does.
func i16(triples ...[3]int16) string {
	b := make([]byte, 0, 6*len(triples))
	for _, t := range triples {
		for _, v := range t {
			b = binary.LittleEndian.AppendUint16(b, uint16(v))
		}
	}
	return base64.StdEncoding.EncodeToString(b)
}

// TestCompactMotion: a window sent compactly decodes to the same event as
// the array form, through both decoding paths (a JSON escape in the base64
// string sends the fast parser to encoding/json), and leaves no compact
// field behind.
func TestCompactMotion(t *testing.T) {
	dec := event.NewDecoder(event.Limits{})
	arrays := `{"v":1,"id":"m-1","ts":"2026-11-29T11:59:30Z","type":"motion","motion":{"rate_hz":50,
		"accel":[[0.012,-0.031,0.998],[1.5,-2,-32.768]],"gyro":[[0.4,-1.2,0],[3276.7,-3276.8,0.1]]}}`
	want, err := dec.Decode([]byte(arrays), origin, now)
	if err != nil {
		t.Fatal(err)
	}
	acc := i16([3]int16{12, -31, 998}, [3]int16{1500, -2000, -32768})
	gyr := i16([3]int16{4, -12, 0}, [3]int16{32767, -32768, 1})
	for name, body := range map[string]string{
		"default scales":      `{"accel_i16":"` + acc + `","gyro_i16":"` + gyr + `"}`,
		"explicit scales":     `{"accel_i16":"` + acc + `","accel_scale":0.001,"gyro_i16":"` + gyr + `","gyro_scale":0.1}`,
		"escaped (slow path)": `{"accel_i16":"` + fmt.Sprintf(`\u%04x`, acc[0]) + acc[1:] + `","gyro_i16":"` + gyr + `"}`,
	} {
		t.Run(name, func(t *testing.T) {
			ev, err := dec.Decode([]byte(`{"v":1,"id":"m-1","ts":"2026-11-29T11:59:30Z","type":"motion","motion":{"rate_hz":50,`+body[1:]+`}`), origin, now)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, ev, cmp.Comparer(func(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 })); diff != "" {
				t.Errorf("compact vs arrays (-want +got):\n%s", diff)
			}
			b, err := event.Marshal(&ev)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "_i16") || strings.Contains(string(b), "_scale") {
				t.Errorf("event carries the compact form inside Vigil: %s", b)
			}
		})
	}
}

func TestCompactMotionRules(t *testing.T) {
	dec := event.NewDecoder(event.Limits{MaxSamples: 4})
	one := i16([3]int16{0, 0, 1000})
	for _, tc := range []struct {
		name, motion, field string
	}{
		{"both forms", `"accel":[[0,0,1]],"accel_i16":"` + one + `"`, "motion.accel_i16"},
		{"not base64", `"accel_i16":"***"`, "motion.accel_i16"},
		{"partial sample", `"accel_i16":"` + base64.StdEncoding.EncodeToString([]byte{1, 2, 3, 4}) + `"`, "motion.accel_i16"},
		{"empty", `"accel_i16":""`, "motion.accel"},
		{"too many samples", `"accel_i16":"` + i16(make([][3]int16, 5)...) + `"`, "motion.accel_i16"},
		{"zero scale gives default, negative refused", `"accel_i16":"` + one + `","accel_scale":-1`, "motion.accel_scale"},
		{"scale above 1", `"accel_i16":"` + one + `","accel_scale":2`, "motion.accel_scale"},
		{"scale without data", `"accel":[[0,0,1]],"accel_scale":0.01`, "motion.accel_scale"},
		{"values beyond 64 g", `"accel_i16":"` + one + `","accel_scale":0.1`, "motion.accel[0]"},
		{"gyro count differs", `"accel_i16":"` + one + `","gyro_i16":"` + i16([3]int16{}, [3]int16{}) + `"`, "motion.gyro"},
		{"gyro scale alone", `"accel_i16":"` + one + `","gyro_scale":0.1`, "motion.gyro_scale"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dec.Decode([]byte(`{"v":1,"id":"m-1","ts":"2026-11-29T11:59:30Z","type":"motion","motion":{"rate_hz":50,`+tc.motion+`}}`), origin, now)
			checkErr(t, err, tc.field, event.ErrInvalid)
		})
	}
}
