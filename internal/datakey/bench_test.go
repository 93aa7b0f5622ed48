package datakey

import (
	"context"
	"encoding/binary"
	"math"
	"strconv"
	"testing"
)

// BenchmarkSealName and BenchmarkOpenName: one personal field (a name)
// with its data key cached, as on every read and write of a person.
func BenchmarkSealName(b *testing.B) {
	ctx := context.Background()
	kr := New(newMemKeys(), newKEK(b), Config{})
	aad := Field("people", "name", "p_0123456789abcdef")
	name := []byte("Philippa Quattlebaum")
	if _, err := kr.Seal(ctx, PersonOwner("p1"), name, aad); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Seal(ctx, PersonOwner("p1"), name, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOpenName(b *testing.B) {
	ctx := context.Background()
	kr := New(newMemKeys(), newKEK(b), Config{})
	aad := Field("people", "name", "p_0123456789abcdef")
	ct, err := kr.Seal(ctx, PersonOwner("p1"), []byte("Philippa Quattlebaum"), aad)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Open(ctx, ct, aad); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkOpenColdKey: a field whose data key is not cached: the key is
// read from the key store and unwrapped with the KEK first (the first
// read of a person after start or after the cache TTL).
func BenchmarkOpenColdKey(b *testing.B) {
	ctx := context.Background()
	ks := newMemKeys()
	kek := newKEK(b)
	kr := New(ks, kek, Config{})
	aad := Field("people", "name", "p1")
	ct, err := kr.Seal(ctx, PersonOwner("p1"), []byte("Philippa Quattlebaum"), aad)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		cold := New(ks, kek, Config{})
		if _, err := cold.Open(ctx, ct, aad); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSealPositions measures what sealing every position row under a
// per-organisation key would cost the ingest path: one op is a batch of
// 1000 positions (lat, lon, accuracy, speed, heading, altitude: 48 bytes)
// each bound to its (device, msg id); rows/s is what one core sustains.
func BenchmarkSealPositions(b *testing.B) {
	ctx := context.Background()
	kr := New(newMemKeys(), newKEK(b), Config{})
	owner := OrgOwner("acme")
	row := make([]byte, 48)
	for i, v := range []float64{51.501, -0.1419, 8, 1.2, 270, 35} {
		binary.LittleEndian.PutUint64(row[8*i:], math.Float64bits(v))
	}
	aads := make([][]byte, 1000)
	for i := range aads {
		aads[i] = Field("positions", "fix", "d_0123456789/"+strconv.Itoa(i))
	}
	b.ReportAllocs()
	for b.Loop() {
		for i := range aads {
			if _, err := kr.Seal(ctx, owner, row, aads[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N*len(aads))/b.Elapsed().Seconds(), "rows/s")
}
