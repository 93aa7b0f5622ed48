package geofence

import (
	"github.com/tidwall/rtree"
)

// Index finds the fences a fix could be in among many (one organisation's
// must_not_enter fences, typically), through an R-tree of their bounding
// boxes. It is immutable and safe for concurrent use; rebuild it when the
// fences change.
type Index struct {
	fences []Fence
	tree   rtree.RTreeG[int32]
}

// NewIndex builds an index over a copy of fences (the slice is copied,
// the polygons are shared and must not be modified). Every fence must be
// valid; the error names the first that is not, by position.
func NewIndex(fences []Fence) (*Index, error) {
	if len(fences) > 1<<31-1 {
		return nil, &Error{Feature: -1, Field: "features", Msg: "too many fences"}
	}
	x := &Index{fences: append([]Fence(nil), fences...)}
	for i := range x.fences {
		if err := x.fences[i].validate(); err != nil {
			err.Feature = i
			return nil, err
		}
		b := x.fences[i].Bound()
		x.tree.Insert(b.Min, b.Max, int32(i))
	}
	return x, nil
}

// Len returns the number of fences in the index.
func (x *Index) Len() int { return len(x.fences) }

// Search calls fn for each fence whose bounding box meets the fix's
// accuracy circle (its box), until fn returns false. The *Fence points
// into the index and must not be modified. Call Fence.Relate on each to
// get the exact relation.
//
// Every fence not visited is certainly Outside for this fix: a caller that
// keeps a State for such a fence (a person who was inside it, or had a
// crossing pending) must Step it with Outside, or a stale pending
// crossing could be confirmed by a single later fix. An invalid fix (see
// Fence.Relate) visits nothing.
func (x *Index) Search(fix Fix, fn func(*Fence) bool) {
	if !fix.valid() {
		return
	}
	b := fixBound(fix)
	x.tree.Search(b.Min, b.Max, func(_, _ [2]float64, i int32) bool {
		return fn(&x.fences[i])
	})
}
