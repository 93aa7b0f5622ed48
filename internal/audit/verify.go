package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"vigil/internal/store"
)

// pageSize is how many records Verify and Export read at a time.
const pageSize = 1000

// Report is the result of Verify.
type Report struct {
	Records        int64  // records read and checked
	Start          int64  // the first record when a retention purge cut the chain at a checkpoint; 0 when it starts at 1
	Checkpoints    int    // checkpoints whose signature and hash matched
	LastCheckpoint int64  // seq of the newest good checkpoint; 0 if none
	Anchors        int    // saved anchors that matched
	FirstBad       int64  // the first bad sequence number; 0 when the log is intact
	Reason         string // why FirstBad is bad; "" when intact
}

// OK reports whether the log verified.
func (r Report) OK() bool { return r.FirstBad == 0 }

// Anchor is a chain head saved outside the database: an "audit anchor"
// line of the process log.
type Anchor struct {
	Seq  int64
	Hash []byte
}

var (
	anchorSeq  = regexp.MustCompile(`"?\bseq"?[=:]\s*"?(\d+)`)
	anchorHash = regexp.MustCompile(`"?\bhash"?[=:]\s*"?([0-9a-fA-F]{64})\b`)
)

// ParseAnchor reads an anchor as "SEQ:HASH" (hash in hex) or from an
// "audit anchor" line of the log, text (seq=12 hash=…) or JSON.
func ParseAnchor(s string) (Anchor, error) {
	s = strings.TrimSpace(s)
	var seqText, hashText string
	if a, b, ok := strings.Cut(s, ":"); ok && !strings.ContainsAny(s, " ={\"") {
		seqText, hashText = a, b
	} else {
		m1, m2 := anchorSeq.FindStringSubmatch(s), anchorHash.FindStringSubmatch(s)
		if m1 == nil || m2 == nil {
			return Anchor{}, errors.New("audit anchor: want SEQ:HASH or an \"audit anchor\" log line with seq and hash")
		}
		seqText, hashText = m1[1], m2[1]
	}
	seq, err := strconv.ParseInt(seqText, 10, 64)
	if err != nil || seq < 1 {
		return Anchor{}, errors.New("audit anchor: the sequence number must be a positive integer")
	}
	h, err := hex.DecodeString(hashText)
	if err != nil || len(h) != hashSize {
		return Anchor{}, errors.New("audit anchor: the hash must be 64 hex digits")
	}
	return Anchor{Seq: seq, Hash: h}, nil
}

// String formats a as ParseAnchor reads it.
func (a Anchor) String() string { return fmt.Sprintf("%d:%x", a.Seq, a.Hash) }

// Verify walks the whole chain from record 1 and checks, in sequence
// order, that the records are gap-free, that each matches its own hash and
// links to the previous record's hash, that each checkpoint's signature is
// pub's and its hash the record's, and that each saved anchor matches. It
// stops at the first problem and reports its sequence number and reason:
//
//   - an edited record fails its own hash;
//   - a deleted record leaves a gap in seq, or (renumbered) fails its hash;
//   - a swapped or reordered record fails its hash (seq is hashed) or its
//     link to the previous one;
//   - an edited record whose hash was recomputed breaks the next record's
//     link, or, with the rest of the chain rewritten, disagrees with the
//     next checkpoint or anchor;
//   - a forged checkpoint fails its signature;
//   - a truncated tail leaves a checkpoint or anchor beyond the last
//     record (FirstBad is then the first missing seq).
//
// After a retention purge the chain starts at a checkpointed record
// (Report.Start); a start anywhere else is reported as deleted records,
// and anchors older than the start are skipped.
//
// pub may be nil only when there are no checkpoints. The error is for a
// failure to read the store, not for a bad log.
func Verify(ctx context.Context, st Reader, pub ed25519.PublicKey, anchors ...Anchor) (Report, error) {
	cps, err := st.ListAuditCheckpoints(ctx)
	if err != nil {
		return Report{}, fmt.Errorf("verify audit log: %w", err)
	}
	if len(cps) > 0 && len(pub) != ed25519.PublicKeySize {
		return Report{}, fmt.Errorf("verify audit log: %d checkpoints to check and no valid public key", len(cps))
	}
	cpAt := make(map[int64]store.AuditCheckpoint, len(cps))
	for _, c := range cps {
		cpAt[c.Seq] = c
	}
	anchorsAt := make(map[int64][][]byte)
	for _, a := range anchors {
		anchorsAt[a.Seq] = append(anchorsAt[a.Seq], a.Hash)
	}

	var rep Report
	bad := func(seq int64, format string, args ...any) (Report, error) {
		rep.FirstBad, rep.Reason = seq, fmt.Sprintf(format, args...)
		return rep, nil
	}
	prev, next := genesis(), int64(1)
	// A retention purge removes whole checkpoint ranges from the start:
	// the chain then starts at a checkpointed record, trusted through the
	// checkpoint's signature (checked below with the others) over its hash,
	// which covers its link to the purged records.
	head, err := st.ListAudit(ctx, store.AuditFilter{Limit: 1})
	if err != nil {
		return rep, fmt.Errorf("verify audit log: %w", err)
	}
	if len(head) == 1 && head[0].Seq > 1 {
		if _, ok := cpAt[head[0].Seq]; !ok {
			return bad(1, "records 1 to %d are missing and record %d is not checkpointed: deleted", head[0].Seq-1, head[0].Seq)
		}
		prev, next = head[0].PrevHash, head[0].Seq
		rep.Start = next
	}
	for {
		page, err := st.ListAudit(ctx, store.AuditFilter{AfterSeq: next - 1, Limit: pageSize})
		if err != nil {
			return rep, fmt.Errorf("verify audit log: %w", err)
		}
		for _, r := range page {
			if r.Seq != next {
				return bad(next, "record %d is missing (the next stored record is %d): deleted", next, r.Seq)
			}
			rep.Records++
			if !bytes.Equal(Hash(r), r.Hash) {
				return bad(r.Seq, "record %d does not match its hash: edited, or moved from another position", r.Seq)
			}
			if !bytes.Equal(r.PrevHash, prev) {
				return bad(r.Seq, "record %d does not link to the record before it: a record was deleted, inserted, reordered or rewritten", r.Seq)
			}
			if c, ok := cpAt[r.Seq]; ok {
				if !ed25519.Verify(pub, checkpointMessage(c.Seq, c.At, c.Hash), c.Signature) {
					return bad(c.Seq, "checkpoint at %d has a bad signature: forged, or signed with another key", c.Seq)
				}
				if !bytes.Equal(c.Hash, r.Hash) {
					return bad(c.Seq, "record %d differs from its signed checkpoint: the chain up to it was rewritten", c.Seq)
				}
				rep.Checkpoints++
				rep.LastCheckpoint = c.Seq
			}
			for _, h := range anchorsAt[r.Seq] {
				if !bytes.Equal(h, r.Hash) {
					return bad(r.Seq, "record %d differs from the saved anchor: the chain up to it was rewritten", r.Seq)
				}
				rep.Anchors++
			}
			prev = r.Hash
			next++
		}
		if len(page) < pageSize {
			break
		}
	}
	last := next - 1
	for _, c := range cps {
		if c.Seq > last {
			return bad(last+1, "log truncated: a checkpoint signs record %d but the last record is %d", c.Seq, last)
		}
		if c.Seq < 1 {
			return bad(1, "a checkpoint names record %d, which cannot exist", c.Seq)
		}
	}
	for _, a := range anchors {
		if a.Seq < rep.Start {
			continue // purged under the retention policy: nothing left to compare
		}
		if a.Seq > last {
			return bad(last+1, "log truncated: a saved anchor names record %d but the last record is %d", a.Seq, last)
		}
	}
	return rep, nil
}
