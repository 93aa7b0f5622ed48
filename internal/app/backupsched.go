package app

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/audit"
	"vigil/internal/backup"
	"vigil/internal/backup/remote"
	"vigil/internal/backup/snapshot"
	"vigil/internal/clock"
)

// The first scheduled backup runs backupFirst after start (or after
// backup.every when that is shorter), so that a server restarted more
// often than backup.every still backs up; then every backup.every after
// the previous one ended.
const backupFirst = 5 * time.Minute

// backupJob is the server's scheduled backup (issue 9) with its metrics.
type backupJob struct {
	a     *App
	clock clock.Timers
	mu    sync.Mutex // held for a whole run: never two at once

	last     prometheus.Gauge
	duration prometheus.Gauge
	failures prometheus.Counter
	size     prometheus.Gauge
}

// errBackupBusy is a run asked for while another runs.
var errBackupBusy = errors.New("scheduled backup: another backup is running")

// startBackups registers the backup metrics and starts the schedule when
// backup.every is set; it stops with ctx.
func (a *App) startBackups(ctx context.Context) {
	if a.cfg.Backup.Every <= 0 {
		return
	}
	j := a.newBackupJob()
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		j.loop(ctx)
	}()
}

func (a *App) newBackupJob() *backupJob {
	j := &backupJob{
		a:     a,
		clock: clock.TimersOf(a.deps.Clock),
		last: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_backup_last_success_timestamp_seconds",
			Help: "When the last scheduled backup that was written and verified started."}),
		duration: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_backup_duration_seconds",
			Help: "How long the last scheduled backup took, successful or not."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "vigil_backup_failures_total",
			Help: "Scheduled backups that failed."}),
		size: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_backup_last_size_bytes",
			Help: "Encrypted size of the last successful scheduled backup."}),
	}
	a.reg.MustRegister(j.last, j.duration, j.failures, j.size)
	return j
}

func (j *backupJob) loop(ctx context.Context) {
	every := j.a.cfg.Backup.Every
	t := j.clock.NewTimer()
	defer t.Stop()
	t.ResetAt(j.clock.Now().Add(min(backupFirst, every)))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		if err := j.run(ctx); err != nil && ctx.Err() != nil {
			return
		}
		t.ResetAt(j.clock.Now().Add(every))
	}
}

// run takes one backup, records its metrics and an audit entry.
func (j *backupJob) run(ctx context.Context) error {
	if !j.mu.TryLock() {
		return errBackupBusy
	}
	defer j.mu.Unlock()
	a := j.a
	start := j.clock.Now()
	m, err := j.take(ctx, start)
	end := j.clock.Now()
	entry := audit.Entry{Actor: "system", Action: "backup.create", ObjectType: "backup", Outcome: audit.OutcomeOK,
		Details: map[string]string{"store": m.Store, "parts": strconv.Itoa(len(m.Parts)), "schema_version": strconv.Itoa(m.SchemaVersion)}}
	var size int64
	for _, p := range m.Parts {
		size += p.Size
	}
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		// The error names files and HTTP statuses, never the store URL
		// or the token.
		a.log.Error("scheduled backup failed", "component", "backup", "err", err)
		entry.Outcome, entry.Severity = audit.OutcomeFailed, audit.SeverityWarning
		entry.Details = map[string]string{"reason": backupFailure(err)}
	} else {
		entry.ObjectID = m.Name
		entry.Details["bytes"] = strconv.FormatInt(size, 10)
		a.log.Info("scheduled backup written", "component", "backup", "backup", m.Name, "parts", len(m.Parts), "bytes", size, "took", end.Sub(start))
	}
	// The audit entry first, then the metrics: a run the metrics show is
	// audited.
	if a.audit != nil {
		if aerr := a.audit.Record(context.WithoutCancel(ctx), entry); aerr != nil {
			a.log.Error("audit of a scheduled backup failed", "component", "backup", "err", aerr)
		}
	}
	j.duration.Set(end.Sub(start).Seconds())
	if err != nil {
		j.failures.Inc()
	} else {
		j.size.Set(float64(size))
		j.last.Set(float64(start.Unix()))
	}
	return err
}

// take reads the keys (each run: a rotated key or recipient is picked up)
// and writes one backup.
func (j *backupJob) take(ctx context.Context, now time.Time) (backup.Manifest, error) {
	b := j.a.cfg.Backup
	rcpt, err := backup.ParseRecipient(b.RecipientFile)
	if err != nil {
		return backup.Manifest{}, fmt.Errorf("backup.recipient_file: %w", err)
	}
	key, err := backup.LoadSigningKey(b.SigningKeyFile)
	if err != nil {
		return backup.Manifest{}, fmt.Errorf("backup.signing_key_file: %w", err)
	}
	var up snapshot.Uploader
	if remote.IsURL(b.To) {
		var ca []byte
		if b.ToCA != "" {
			if ca, err = os.ReadFile(b.ToCA); err != nil {
				return backup.Manifest{}, fmt.Errorf("backup.to_ca: %w", err)
			}
		}
		c, err := remote.NewClient(b.To, ca, b.Token.Reveal())
		if err != nil {
			return backup.Manifest{}, fmt.Errorf("backup.to: %w", err)
		}
		up = c
	}
	kind, dsn := j.a.cfg.StoreKind()
	src := snapshot.Source{DataDir: j.a.cfg.DataDir, Kind: kind, DSN: dsn, JetStream: b.WithJetStream, VigilVersion: serverVersion()}
	_, m, err := snapshot.TakeTo(ctx, src, b.To, up, now, rcpt, key)
	return m, err
}

// serverVersion is the module version the binary was built from.
func serverVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}

// backupFailure is a short, fixed reason for the audit log (the full
// error goes to the server log).
func backupFailure(err error) string {
	switch {
	case errors.Is(err, remote.ErrExists):
		return "target_exists"
	case errors.Is(err, remote.ErrStatus):
		return "target_refused"
	case errors.Is(err, os.ErrNotExist), errors.Is(err, os.ErrPermission):
		return "file_access"
	default:
		return "error"
	}
}
