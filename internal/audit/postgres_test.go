package audit_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"vigil/internal/audit"
	"vigil/internal/clock"
	"vigil/internal/store/postgres"
	"vigil/internal/vigiltest"
)

// TestAuditPostgres runs two Logs on two pools of one PostgreSQL schema,
// as two servers would, then edits a row behind their back.
func TestAuditPostgres(t *testing.T) {
	url := vigiltest.PostgresURL(t)
	ctx := context.Background()
	open := func() *postgres.Store {
		st, err := postgres.Open(ctx, url, postgres.Options{AutoMigrate: true, MaxConns: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	st, st2 := open(), open()
	key := newKey(t)
	clk := clock.NewManual(t0)
	cfg := audit.Config{CheckpointEvery: 25}
	logs := []*audit.Log{audit.New(st, key, nil, clk, cfg), audit.New(st2, key, nil, clk, cfg)}
	const workers, each = 4, 15
	var wg sync.WaitGroup
	errs := make(chan error, 2*workers)
	for li, l := range logs {
		for w := range workers {
			wg.Go(func() {
				for i := range each {
					if err := l.Record(ctx, entry(li*1000+w*100+i)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := logs[1].Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	rep := verify(t, st, key)
	if !rep.OK() || rep.Records != 2*workers*each || rep.LastCheckpoint != 2*workers*each {
		t.Fatalf("Verify = %+v", rep)
	}

	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE audit_log SET details = '{"request_id":"forged"}' WHERE seq = 33`); err != nil {
		t.Fatal(err)
	}
	rep = verify(t, st2, key)
	if rep.FirstBad != 33 || !strings.Contains(rep.Reason, "does not match its hash") {
		t.Errorf("after an edit of 33: %+v", rep)
	}
}
