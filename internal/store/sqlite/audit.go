package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"vigil/internal/store"
)

const auditCols = `seq, at, org_id, actor, source_ip, action, object_type, object_id, outcome, severity, details, prev_hash, hash`

// AppendAudit appends recs in one transaction on the single writer
// connection. Its transactions BEGIN IMMEDIATE, so the head is read under
// the file's write lock: appenders in this process queue for the
// connection, those in other processes for the lock (busy_timeout).
func (s *Store) AppendAudit(ctx context.Context, recs []store.AuditRecord, chain func(headSeq int64, headHash []byte, recs []store.AuditRecord) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	defer tx.Rollback()
	var head int64
	var headHash []byte
	err = tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&head, &headHash)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("append audit: read head: %w", err)
	}
	if err := chain(head, headHash, recs); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	if len(recs) == 0 {
		return nil
	}
	st, err := tx.PrepareContext(ctx, `INSERT INTO audit_log (`+auditCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	defer st.Close()
	for i, r := range recs {
		if r.Seq != head+int64(i)+1 {
			return fmt.Errorf("append audit: record %d of the batch has seq %d after head %d", i, r.Seq, head)
		}
		if _, err := st.ExecContext(ctx, r.Seq, r.At.UnixNano(), r.OrgID, r.Actor, r.SourceIP, r.Action, r.ObjectType, r.ObjectID,
			r.Outcome, r.Severity, r.Details, r.PrevHash, r.Hash); err != nil {
			return fmt.Errorf("append audit seq %d: %w", r.Seq, classify(err))
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// ListAudit returns the records f selects in Seq order.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error) {
	where := []string{"seq > ?"}
	args := []any{f.AfterSeq}
	for _, c := range []struct{ col, v string }{{"org_id", f.OrgID}, {"actor", f.Actor}, {"action", f.Action}} {
		if c.v != "" {
			where = append(where, c.col+" = ?")
			args = append(args, c.v)
		}
	}
	q := `SELECT ` + auditCols + ` FROM audit_log WHERE ` + strings.Join(where, " AND ") + ` ORDER BY seq`
	if f.Limit > 0 {
		q += ` LIMIT ?`
		args = append(args, f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	var out []store.AuditRecord
	for rows.Next() {
		var r store.AuditRecord
		var at int64
		if err := rows.Scan(&r.Seq, &at, &r.OrgID, &r.Actor, &r.SourceIP, &r.Action, &r.ObjectType, &r.ObjectID,
			&r.Outcome, &r.Severity, &r.Details, &r.PrevHash, &r.Hash); err != nil {
			return nil, fmt.Errorf("list audit: %w", err)
		}
		r.At = time.Unix(0, at).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return out, nil
}

// PutAuditCheckpoint stores a checkpoint; an existing one at the same Seq
// is ErrConflict, a Seq with no record ErrNotFound.
func (s *Store) PutAuditCheckpoint(ctx context.Context, c store.AuditCheckpoint) error {
	_, err := s.w.ExecContext(ctx, `INSERT INTO audit_checkpoints (seq, at, hash, signature) VALUES (?, ?, ?, ?)`,
		c.Seq, c.At.UnixNano(), c.Hash, c.Signature)
	if err != nil {
		return fmt.Errorf("put audit checkpoint %d: %w", c.Seq, classify(err))
	}
	return nil
}

// ListAuditCheckpoints returns every checkpoint by Seq.
func (s *Store) ListAuditCheckpoints(ctx context.Context) ([]store.AuditCheckpoint, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT seq, at, hash, signature FROM audit_checkpoints ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("list audit checkpoints: %w", err)
	}
	defer rows.Close()
	var out []store.AuditCheckpoint
	for rows.Next() {
		var c store.AuditCheckpoint
		var at int64
		if err := rows.Scan(&c.Seq, &at, &c.Hash, &c.Signature); err != nil {
			return nil, fmt.Errorf("list audit checkpoints: %w", err)
		}
		c.At = time.Unix(0, at).UTC()
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit checkpoints: %w", err)
	}
	return out, nil
}
