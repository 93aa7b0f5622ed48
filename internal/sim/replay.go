package sim

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"vigil/internal/event"
	"vigil/internal/fall/sisfall"
)

// Recording is a real accelerometer recording a simulated device replays
// as its motion stream (a SisFall file: 200 Hz, g).
type Recording struct {
	Name    string // e.g. "SA03/F02_SA03_R02", for logs
	Fall    bool
	Samples sisfall.Samples
}

// MotionWindows cuts a 200 Hz recording into consecutive motion windows of
// the given length at rateHz (a divisor of 200: each output sample is the
// mean of 200/rateHz input samples), values rounded to three decimals as
// docs/device-api.md advises. Window k starts k·window after the first
// sample.
func MotionWindows(s sisfall.Samples, rateHz int, window time.Duration) ([]event.Motion, error) {
	if rateHz <= 0 || sisfall.Rate%rateHz != 0 {
		return nil, fmt.Errorf("sim: replay rate %d Hz does not divide %d Hz", rateHz, sisfall.Rate)
	}
	step := sisfall.Rate / rateHz
	per := int(window.Seconds() * float64(rateHz))
	if per < 1 || per > 4096 {
		return nil, fmt.Errorf("sim: a %v window at %d Hz is %d samples, want 1 to 4096", window, rateHz, per)
	}
	round := func(v float64) float64 { return math.Round(v*1000) / 1000 }
	var out []event.Motion
	cur := event.Motion{RateHz: float64(rateHz)}
	for i := 0; i+step <= s.Len(); i += step {
		var a, g [3]float64
		for j := i; j < i+step; j++ {
			for k := range 3 {
				a[k] += float64(s.Accel[j][k])
				if j < len(s.Gyro) {
					g[k] += float64(s.Gyro[j][k])
				}
			}
		}
		n := float64(step)
		cur.Accel = append(cur.Accel, []float64{round(a[0] / n), round(a[1] / n), round(a[2] / n)})
		if len(s.Gyro) == s.Len() {
			cur.Gyro = append(cur.Gyro, []float64{round(g[0] / n), round(g[1] / n), round(g[2] / n)})
		}
		if len(cur.Accel) == per {
			out = append(out, cur)
			cur = event.Motion{RateHz: float64(rateHz)}
		}
	}
	if len(cur.Accel) > 0 {
		out = append(out, cur)
	}
	return out, nil
}

// Compact returns m in the compact motion encoding (docs/device-api.md):
// int16 counts of event.DefaultAccelScale g and event.DefaultGyroScale
// deg/s, base64. Values beyond int16 saturate.
func Compact(m event.Motion) event.Motion {
	pack := func(s [][]float64, scale float64) string {
		b := make([]byte, 0, 6*len(s))
		for _, xyz := range s {
			for _, v := range xyz {
				c := math.Round(v / scale)
				c = min(max(c, math.MinInt16), math.MaxInt16)
				b = binary.LittleEndian.AppendUint16(b, uint16(int16(c)))
			}
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	out := event.Motion{RateHz: m.RateHz, AccelI16: pack(m.Accel, event.DefaultAccelScale)}
	if len(m.Gyro) > 0 {
		out.GyroI16 = pack(m.Gyro, event.DefaultGyroScale)
	}
	return out
}
