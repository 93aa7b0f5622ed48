package deadline

// The heap is 4-ary: children of i are 4i+1 … 4i+4. It is half as deep as
// a binary heap and a node's four 16-byte children lie in at most two cache
// lines: cache misses are what a pop at a million entries pays for. Every
// method here needs s.mu held.

// set gives key the deadline ns, adding it if it is new.
func (s *Scheduler[K]) set(key K, ns int64) {
	if sl, ok := s.index[key]; ok {
		i := int(s.slots[sl].pos)
		old := s.heap[i].at
		s.heap[i].at = ns
		switch {
		case ns < old:
			s.up(i)
		case ns > old:
			s.down(i)
		}
		return
	}
	s.push(key, ns)
	s.up(len(s.heap) - 1)
}

// push appends key's entry to the heap without sifting it, in a free slot
// if there is one.
func (s *Scheduler[K]) push(key K, ns int64) {
	if len(s.heap) >= maxLen {
		panic("deadline: more than MaxInt32 pending deadlines")
	}
	pos := int32(len(s.heap))
	sl := s.free
	if sl != none {
		s.free = s.slots[sl].pos
		s.slots[sl] = slot[K]{key: key, pos: pos}
	} else {
		sl = int32(len(s.slots))
		s.slots = append(s.slots, slot[K]{key: key, pos: pos})
	}
	s.index[key] = sl
	s.heap = append(s.heap, entry{at: ns, slot: sl})
}

// remove deletes the entry at heap position i and its key. Its slot joins
// the free list: no other key moves, so the index changes only by the
// delete.
func (s *Scheduler[K]) remove(i int) {
	sl := s.heap[i].slot
	last := len(s.heap) - 1
	if i != last {
		s.heap[i] = s.heap[last]
		s.slots[s.heap[i].slot].pos = int32(i)
	}
	s.heap = s.heap[:last]
	if i != last && !s.down(i) {
		s.up(i)
	}
	delete(s.index, s.slots[sl].key)
	s.slots[sl] = slot[K]{pos: s.free} // and drop the key for the collector
	s.free = sl
}

// up moves the entry at i towards the root until its parent is not later.
func (s *Scheduler[K]) up(i int) {
	h := s.heap
	e := h[i]
	for i > 0 {
		p := (i - 1) / 4
		if h[p].at <= e.at {
			break
		}
		h[i] = h[p]
		s.slots[h[i].slot].pos = int32(i)
		i = p
	}
	h[i] = e
	s.slots[e.slot].pos = int32(i)
}

// down moves the entry at i away from the root until no child is earlier,
// and reports whether it moved.
func (s *Scheduler[K]) down(i int) bool {
	h := s.heap
	n := len(h)
	e := h[i]
	i0 := i
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		for j := c + 1; j < min(c+4, n); j++ {
			if h[j].at < h[m].at {
				m = j
			}
		}
		if h[m].at >= e.at {
			break
		}
		h[i] = h[m]
		s.slots[h[i].slot].pos = int32(i)
		i = m
	}
	if i == i0 {
		return false
	}
	h[i] = e
	s.slots[e.slot].pos = int32(i)
	return true
}

// heapDepth is the number of levels of a 4-ary heap of n entries, at
// least 1.
func heapDepth(n int) int {
	d := 1
	for n > 4 {
		n /= 4
		d++
	}
	return d
}
