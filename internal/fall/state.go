package fall

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// stateMagic starts every serialised Detector state; the last byte is the
// state format version.
const stateMagic = "VFD\x01"

// ErrState marks a serialised state that cannot be resumed.
var ErrState = errors.New("fall: invalid detector state")

// MarshalBinary saves the device's stream state: the resampler, the ring
// buffer history, the open candidate and the last raise. The model and
// Config are not included; resume with New(model, cfg).UnmarshalBinary.
func (d *Detector) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 96+int(d.filled)*12)
	b = append(b, stateMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(d.p.RateHz))
	b = binary.LittleEndian.AppendUint32(b, uint32(d.p.PreMs))
	b = binary.LittleEndian.AppendUint32(b, uint32(d.p.PostMs))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(d.p.TriggerG))
	b = binary.LittleEndian.AppendUint64(b, uint64(d.bin))
	for _, v := range d.sum {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(d.count))
	b = binary.LittleEndian.AppendUint64(b, uint64(d.nbin))
	b = binary.LittleEndian.AppendUint64(b, uint64(d.n))
	b = binary.LittleEndian.AppendUint64(b, uint64(d.peakN))
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(d.peakG))
	b = binary.LittleEndian.AppendUint64(b, uint64(d.raiseT))
	b = append(b, flags(d.started, d.cand, d.raised))
	b = binary.LittleEndian.AppendUint32(b, uint32(d.filled))
	for i := d.n - d.filled + 1; i <= d.n; i++ {
		for _, v := range d.acc[i&d.mask] {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	}
	return b, nil
}

func flags(bs ...bool) byte {
	var f byte
	for i, v := range bs {
		if v {
			f |= 1 << i
		}
	}
	return f
}

// UnmarshalBinary resumes the state saved by MarshalBinary. The detector
// must run a model with the same Params; on error d is unchanged.
func (d *Detector) UnmarshalBinary(data []byte) error {
	r := reader{b: data}
	if magic := r.next(4); r.err == nil && string(magic) != stateMagic {
		return fmt.Errorf("%w: unknown header", ErrState)
	}
	rate, pre, post := r.u32(), r.u32(), r.u32()
	trig := math.Float64frombits(r.u64())
	if r.err == nil && (int(rate) != d.p.RateHz || int(pre) != d.p.PreMs || int(post) != d.p.PostMs || trig != d.p.TriggerG) {
		return fmt.Errorf("%w: saved with other detector params", ErrState)
	}
	n := *d
	n.acc = make([][3]float32, len(d.acc))
	n.smv = make([]float32, len(d.smv))
	n.bin = int64(r.u64())
	for i := range n.sum {
		n.sum[i] = math.Float64frombits(r.u64())
	}
	n.count = int32(r.u32())
	n.nbin = int64(r.u64())
	n.n = int64(r.u64())
	n.peakN = int64(r.u64())
	n.peakG = math.Float32frombits(r.u32())
	n.raiseT = int64(r.u64())
	f := r.next(1)
	filled := int64(r.u32())
	if r.err != nil {
		return r.err
	}
	n.started, n.cand, n.raised = f[0]&1 != 0, f[0]&2 != 0, f[0]&4 != 0
	if filled < 0 || filled > n.mask+1 || n.count < 0 || n.n < filled ||
		(n.cand && (n.peakN > n.n || n.peakN <= n.n-filled)) {
		return fmt.Errorf("%w: inconsistent counters", ErrState)
	}
	if len(r.b) != int(filled)*12 {
		return fmt.Errorf("%w: %d bytes of history for %d samples", ErrState, len(r.b), filled)
	}
	n.filled = filled
	for i := n.n - filled + 1; i <= n.n; i++ {
		var v [3]float32
		for k := range v {
			v[k] = math.Float32frombits(r.u32())
		}
		n.acc[i&n.mask] = v
		n.smv[i&n.mask] = float32(math.Sqrt(float64(v[0]*v[0] + v[1]*v[1] + v[2]*v[2])))
	}
	*d = n
	return nil
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) next(n int) []byte {
	if r.err != nil || len(r.b) < n {
		r.err = fmt.Errorf("%w: truncated", ErrState)
		return make([]byte, n)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u32() uint32 { return binary.LittleEndian.Uint32(r.next(4)) }
func (r *reader) u64() uint64 { return binary.LittleEndian.Uint64(r.next(8)) }
