package fall

import "math"

// Features are computed over the window around one impact candidate. The
// order is part of the model format: FeatureNames names each index.
type Features [NumFeatures]float32

// Feature indexes.
const (
	FPeak         = iota // peak SMV, g
	FPreMin              // minimum SMV in the second before the peak, g
	FDipLead             // time from that minimum to the peak, s
	FFreeFallArea        // ∫ max(0, 1−SMV) over the second before the peak, g·s (velocity proxy)
	FJerk                // largest ‖Δa‖·rate within ±0.5 s of the peak, g/s
	FImpactArea          // ∫ |SMV−1| within ±0.5 s of the peak, g·s
	FWidth               // time within ±0.5 s of the peak with SMV above half-way to the peak, s
	FPreStd              // SMV standard deviation from −PreMs to −0.5 s, g
	FTilt                // angle between gravity before (−PreMs..−1 s) and at the end (last 1 s), degrees
	FImpactTilt          // angle between gravity before and 0.2–0.5 s after the peak, degrees
	FPostStd             // SMV standard deviation from +0.2 s to the decision, g
	FLateStd             // SMV standard deviation over the last second, g (inactivity)
	FLateDev             // |mean SMV − 1| over the last second, g
	FPostMax             // largest SMV from +0.2 s to the decision, g
	FPostAbove           // time above TriggerG from +0.2 s to the decision, s
	FPreMax              // largest SMV from −PreMs to −0.3 s, g
	NumFeatures
)

// FeatureNames are the names of the features by index, as stored in models.
var featureNames = [NumFeatures]string{
	"peak_g", "pre_min_g", "dip_lead_s", "free_fall_area_gs", "jerk_gps", "impact_area_gs",
	"width_s", "pre_std_g", "tilt_deg", "impact_tilt_deg", "post_std_g", "late_std_g",
	"late_dev_g", "post_max_g", "post_above_s", "pre_max_g",
}

// FeatureNames returns the feature names in index order.
func FeatureNames() []string { return featureNames[:] }

// window returns the sample indexes [lo, hi] clipped to the valid history.
func (d *Detector) window(lo, hi int64) (int64, int64) {
	first := d.n - d.filled + 1
	return max(lo, first), min(hi, d.n)
}

func (d *Detector) at(i int64) ([3]float32, float32) { return d.acc[i&d.mask], d.smv[i&d.mask] }

func (d *Detector) stats(lo, hi int64) (mean, std, mx float64) {
	lo, hi = d.window(lo, hi)
	if hi < lo {
		return 1, 0, 1
	}
	var s, s2 float64
	mx = math.Inf(-1)
	for i := lo; i <= hi; i++ {
		_, g := d.at(i)
		v := float64(g)
		s += v
		s2 += v * v
		mx = max(mx, v)
	}
	n := float64(hi - lo + 1)
	mean = s / n
	return mean, math.Sqrt(max(0, s2/n-mean*mean)), mx
}

func (d *Detector) gravity(lo, hi int64) ([3]float64, bool) {
	lo, hi = d.window(lo, hi)
	var g [3]float64
	if hi < lo {
		return g, false
	}
	for i := lo; i <= hi; i++ {
		a, _ := d.at(i)
		g[0] += float64(a[0])
		g[1] += float64(a[1])
		g[2] += float64(a[2])
	}
	return g, true
}

func angle(a, b [3]float64, okA, okB bool) float64 {
	if !okA || !okB {
		return 0
	}
	na := math.Sqrt(a[0]*a[0] + a[1]*a[1] + a[2]*a[2])
	nb := math.Sqrt(b[0]*b[0] + b[1]*b[1] + b[2]*b[2])
	if na == 0 || nb == 0 {
		return 0
	}
	c := (a[0]*b[0] + a[1]*b[1] + a[2]*b[2]) / (na * nb)
	return math.Acos(min(1, max(-1, c))) * 180 / math.Pi
}

// features computes the Features of the open candidate at d.peakN; the
// newest sample is d.n.
func (d *Detector) features() Features {
	var f Features
	r := int64(d.p.RateHz)
	dt := 1 / float64(r)
	p := d.peakN
	sec := func(s float64) int64 { return int64(math.Round(s * float64(r))) }
	pre := int64(d.p.preN())
	peak := float64(d.peakG)
	f[FPeak] = float32(peak)

	// Before the impact: the dip and the free fall.
	lo, hi := d.window(p-r, p)
	minG, minI, area := peak, p, 0.0
	for i := lo; i <= hi; i++ {
		_, g := d.at(i)
		if float64(g) < minG {
			minG, minI = float64(g), i
		}
		area += max(0, 1-float64(g)) * dt
	}
	f[FPreMin] = float32(minG)
	f[FDipLead] = float32(float64(p-minI) * dt)
	f[FFreeFallArea] = float32(area)

	// Around the impact.
	lo, hi = d.window(p-r/2, p+r/2)
	var jerk, iarea, width float64
	half := (peak + 1) / 2
	for i := lo; i <= hi; i++ {
		a, g := d.at(i)
		iarea += math.Abs(float64(g)-1) * dt
		if float64(g) > half {
			width += dt
		}
		if i > lo {
			b, _ := d.at(i - 1)
			dx, dy, dz := float64(a[0]-b[0]), float64(a[1]-b[1]), float64(a[2]-b[2])
			jerk = max(jerk, math.Sqrt(dx*dx+dy*dy+dz*dz)*float64(r))
		}
	}
	f[FJerk] = float32(jerk)
	f[FImpactArea] = float32(iarea)
	f[FWidth] = float32(width)

	_, preStd, _ := d.stats(p-pre, p-sec(0.5))
	f[FPreStd] = float32(preStd)
	_, _, preMax := d.stats(p-pre, p-sec(0.3))
	f[FPreMax] = float32(preMax)

	// Orientation against gravity.
	before, okB := d.gravity(p-pre, p-r)
	late, okL := d.gravity(d.n-r+1, d.n)
	soon, okS := d.gravity(p+sec(0.2), p+sec(0.5))
	f[FTilt] = float32(angle(before, late, okB, okL))
	f[FImpactTilt] = float32(angle(before, soon, okB, okS))

	// After the impact.
	_, postStd, postMax := d.stats(p+sec(0.2), d.n)
	f[FPostStd] = float32(postStd)
	f[FPostMax] = float32(postMax)
	lateMean, lateStd, _ := d.stats(d.n-r+1, d.n)
	f[FLateStd] = float32(lateStd)
	f[FLateDev] = float32(math.Abs(lateMean - 1))
	lo, hi = d.window(p+sec(0.2), d.n)
	above := 0.0
	for i := lo; i <= hi; i++ {
		if _, g := d.at(i); float64(g) >= d.p.TriggerG {
			above += dt
		}
	}
	f[FPostAbove] = float32(above)
	return f
}
