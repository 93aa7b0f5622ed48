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
	if len(s.heap) >= maxLen {
		panic("deadline: more than MaxInt32 pending deadlines")
	}
	sl := int32(len(s.slots))
	s.index[key] = sl
	s.slots = append(s.slots, slot[K]{key: key, pos: int32(len(s.heap))})
	s.heap = append(s.heap, entry{at: ns, slot: sl})
	s.up(len(s.heap) - 1)
}

// remove deletes the entry at heap position i and its key.
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

	// Keep slots dense: the last slot moves into the freed one.
	delete(s.index, s.slots[sl].key)
	lastSlot := int32(len(s.slots) - 1)
	if sl != lastSlot {
		moved := s.slots[lastSlot]
		s.slots[sl] = moved
		s.heap[moved.pos].slot = sl
		s.index[moved.key] = sl
	}
	s.slots[lastSlot] = slot[K]{} // drop the key for the collector
	s.slots = s.slots[:lastSlot]
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
