package audit

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"vigil/internal/store"
)

// exported is one line of Export. Details is the stored JSON text as a
// string, byte for byte, so that a reader can recompute the hash.
type exported struct {
	Seq        int64  `json:"seq"`
	At         string `json:"at"` // RFC 3339, UTC, to the nanosecond
	OrgID      string `json:"org_id"`
	Actor      string `json:"actor"`
	SourceIP   string `json:"source_ip"`
	Action     string `json:"action"`
	ObjectType string `json:"object_type"`
	ObjectID   string `json:"object_id"`
	Outcome    string `json:"outcome"`
	Severity   string `json:"severity"`
	Details    string `json:"details"`
	PrevHash   string `json:"prev_hash"` // hex
	Hash       string `json:"hash"`      // hex
}

// Export writes the records f selects to w as JSON lines, one record per
// line in Seq order, hashes in hex. Every string is JSON-escaped, so a
// value can never break a line. f.Limit caps the whole export (0: none).
func Export(ctx context.Context, st Reader, w io.Writer, f store.AuditFilter) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	left := f.Limit
	for {
		pf := f
		pf.Limit = pageSize
		if f.Limit > 0 {
			pf.Limit = min(pageSize, left)
		}
		page, err := st.ListAudit(ctx, pf)
		if err != nil {
			return fmt.Errorf("export audit log: %w", err)
		}
		for _, r := range page {
			if err := enc.Encode(exported{
				Seq: r.Seq, At: r.At.UTC().Format(time.RFC3339Nano),
				OrgID: r.OrgID, Actor: r.Actor, SourceIP: r.SourceIP, Action: r.Action,
				ObjectType: r.ObjectType, ObjectID: r.ObjectID, Outcome: r.Outcome, Severity: r.Severity,
				Details: r.Details, PrevHash: hex.EncodeToString(r.PrevHash), Hash: hex.EncodeToString(r.Hash),
			}); err != nil {
				return fmt.Errorf("export audit log: %w", err)
			}
			f.AfterSeq = r.Seq
		}
		left -= len(page)
		if len(page) < pf.Limit || (f.Limit > 0 && left <= 0) {
			break
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export audit log: %w", err)
	}
	return nil
}
