package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"vigil/internal/store"
)

const auditCols = `seq, at, org_id, actor, source_ip, action, object_type, object_id, outcome, severity, details, prev_hash, hash`

// AppendAudit appends recs in one transaction. It first takes a
// transaction-level advisory lock whose key is fixed per schema, so every
// appender, in any process, reads the head only after the previous one
// committed (READ COMMITTED: each statement sees the latest commits).
func (s *Store) AppendAudit(ctx context.Context, recs []store.AuditRecord, chain func(headSeq int64, headHash []byte, recs []store.AuditRecord) error) error {
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('vigil.audit.' || current_schema()))`); err != nil {
		return fmt.Errorf("append audit: lock: %w", err)
	}
	var head int64
	var headHash []byte
	err = tx.QueryRow(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&head, &headHash)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("append audit: read head: %w", err)
	}
	if err := chain(head, headHash, recs); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	if len(recs) == 0 {
		return nil
	}
	n := len(recs)
	var (
		seqs, ats                                = make([]int64, n), make([]int64, n)
		orgs, actors, ips, actions, otypes, oids = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		outcomes, severities, details            = make([]string, n), make([]string, n), make([]string, n)
		prevs, hashes                            = make([][]byte, n), make([][]byte, n)
	)
	for i, r := range recs {
		if r.Seq != head+int64(i)+1 {
			return fmt.Errorf("append audit: record %d of the batch has seq %d after head %d", i, r.Seq, head)
		}
		seqs[i], ats[i] = r.Seq, r.At.UnixNano()
		orgs[i], actors[i], ips[i], actions[i], otypes[i], oids[i] = r.OrgID, r.Actor, r.SourceIP, r.Action, r.ObjectType, r.ObjectID
		outcomes[i], severities[i], details[i] = r.Outcome, r.Severity, r.Details
		prevs[i], hashes[i] = r.PrevHash, r.Hash
	}
	if _, err := tx.Exec(ctx, `INSERT INTO audit_log (`+auditCols+`)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
			$8::text[], $9::text[], $10::text[], $11::text[], $12::bytea[], $13::bytea[])`,
		seqs, ats, orgs, actors, ips, actions, otypes, oids, outcomes, severities, details, prevs, hashes); err != nil {
		return fmt.Errorf("append audit seq %d…%d: %w", seqs[0], seqs[n-1], classify(err))
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	return nil
}

// ListAudit returns the records f selects in Seq order.
func (s *Store) ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditRecord, error) {
	where := []string{"seq > $1"}
	args := []any{f.AfterSeq}
	for _, c := range []struct{ col, v string }{{"org_id", f.OrgID}, {"actor", f.Actor}, {"action", f.Action}} {
		if c.v != "" {
			args = append(args, c.v)
			where = append(where, c.col+" = $"+strconv.Itoa(len(args)))
		}
	}
	q := `SELECT ` + auditCols + ` FROM audit_log WHERE ` + strings.Join(where, " AND ") + ` ORDER BY seq`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += ` LIMIT $` + strconv.Itoa(len(args))
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AuditRecord, error) {
		var r store.AuditRecord
		var at int64
		err := row.Scan(&r.Seq, &at, &r.OrgID, &r.Actor, &r.SourceIP, &r.Action, &r.ObjectType, &r.ObjectID,
			&r.Outcome, &r.Severity, &r.Details, &r.PrevHash, &r.Hash)
		r.At = time.Unix(0, at).UTC()
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit: %w", err)
	}
	return out, nil
}

// PutAuditCheckpoint stores a checkpoint; an existing one at the same Seq
// is ErrConflict, a Seq with no record ErrNotFound.
func (s *Store) PutAuditCheckpoint(ctx context.Context, c store.AuditCheckpoint) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO audit_checkpoints (seq, at, hash, signature) VALUES ($1, $2, $3, $4)`,
		c.Seq, c.At.UnixNano(), c.Hash, c.Signature)
	if err != nil {
		return fmt.Errorf("put audit checkpoint %d: %w", c.Seq, classify(err))
	}
	return nil
}

// ListAuditCheckpoints returns every checkpoint by Seq.
func (s *Store) ListAuditCheckpoints(ctx context.Context) ([]store.AuditCheckpoint, error) {
	rows, err := s.pool.Query(ctx, `SELECT seq, at, hash, signature FROM audit_checkpoints ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("list audit checkpoints: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.AuditCheckpoint, error) {
		var c store.AuditCheckpoint
		var at int64
		err := row.Scan(&c.Seq, &at, &c.Hash, &c.Signature)
		c.At = time.Unix(0, at).UTC()
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("list audit checkpoints: %w", err)
	}
	return out, nil
}
