package app

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"vigil/internal/clock"
	"vigil/internal/retention"
)

// The retention purge runs retentionFirst after start (so that a server
// restarted more often than hourly still purges), then every
// retentionEvery, on the app's clock.
const (
	retentionFirst = 5 * time.Minute
	retentionEvery = time.Hour
)

// retentionJob is the scheduled purge of personal data past each
// organisation's retention period, with its metrics.
type retentionJob struct {
	p     *retention.Purger
	clock clock.Timers
	rows  *prometheus.CounterVec // class
	runs  *prometheus.CounterVec // result
	last  prometheus.Gauge
}

// startRetention registers the purge's metrics and starts its schedule;
// it stops with ctx.
func (a *App) startRetention(ctx context.Context) {
	j := &retentionJob{
		p:     retention.New(a.store, a.deps.Clock, a.log.With("component", "retention"), retention.Config{}),
		clock: clock.TimersOf(a.deps.Clock),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_retention_purged_total",
			Help: "Records purged past their organisation's retention period, by class (alerts count alerts)."}, []string{"class"}),
		runs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vigil_retention_runs_total",
			Help: "Retention purge runs, by result (ok, error)."}, []string{"result"}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{Name: "vigil_retention_last_success_timestamp_seconds",
			Help: "When the last retention purge without errors started."}),
	}
	for _, c := range retention.Classes {
		j.rows.WithLabelValues(string(c))
	}
	a.reg.MustRegister(j.rows, j.runs, j.last)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		j.run(ctx, a)
	}()
}

func (j *retentionJob) run(ctx context.Context, a *App) {
	t := j.clock.NewTimer()
	defer t.Stop()
	t.ResetAt(j.clock.Now().Add(retentionFirst))
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
		r, err := j.p.Run(ctx)
		for c, n := range r.Rows {
			j.rows.WithLabelValues(string(c)).Add(float64(n))
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			j.runs.WithLabelValues("error").Inc()
			a.log.Error("retention purge failed", "component", "retention", "err", err)
		} else {
			j.runs.WithLabelValues("ok").Inc()
			j.last.Set(float64(r.At.Unix()))
		}
		t.ResetAt(j.clock.Now().Add(retentionEvery))
	}
}
