package vigiltest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"vigil/internal/app"
	"vigil/internal/auth"
	"vigil/internal/config"
)

// PostgresEnv names the variable with the PostgreSQL URL tests use.
const PostgresEnv = "VIGIL_TEST_POSTGRES_URL"

// PostgresURL returns a URL whose search_path is a fresh schema, dropped
// when the test ends. It skips the test when PostgreSQL is not configured,
// and fails it when configured but unreachable.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(PostgresEnv)
	if base == "" {
		t.Skipf("%s not set; PostgreSQL tests skipped", PostgresEnv)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to PostgreSQL (%s): %v", PostgresEnv, err)
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "vt_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Errorf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("parse %s: %v", PostgresEnv, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Config is a configuration for a test server: a temp data dir, SQLite,
// every listener on 127.0.0.1:0.
func Config(t testing.TB) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.MQTT.Listen = "127.0.0.1:0"
	cfg.HTTPS.Listen = "127.0.0.1:0"
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.API.Listen = "127.0.0.1:0"
	// Most tests connect devices with their secrets; the mutual-TLS tests
	// set "required" (the product's default) themselves.
	cfg.MQTT.ClientCerts = "optional"
	return cfg
}

// StartApp builds and starts the app, stopping it when the test ends.
func StartApp(t testing.TB, cfg config.Config) *app.App {
	t.Helper()
	return StartAppOut(t, cfg, io.Discard)
}

// StartAppOut is StartApp with the operator's terminal output captured.
func StartAppOut(t testing.TB, cfg config.Config, out io.Writer) *app.App {
	t.Helper()
	a, _ := StartAppWith(t, cfg, app.Deps{Out: out})
	return a
}

// StartAppWith builds and starts the app with deps (the log goes to the
// test log when deps has none; Out is discarded when nil). stop stops it
// (a restart test calls it, then starts another app on the same data
// directory); it runs again, doing nothing, when the test ends.
func StartAppWith(t testing.TB, cfg config.Config, deps app.Deps) (a *app.App, stop func()) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	if deps.Logger == nil {
		tw := &testWriter{t: t}
		t.Cleanup(func() { tw.done.Store(true) }) // runs after stop below
		deps.Logger = slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	if deps.Out == nil {
		deps.Out = io.Discard
	}
	a, err := app.New(context.Background(), cfg, deps)
	if err != nil {
		t.Fatalf("app.New: %v", err)
	}
	if err := a.Start(); err != nil {
		_ = a.Stop(context.Background())
		t.Fatalf("app.Start: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if err := a.Stop(ctx); err != nil {
				t.Errorf("app.Stop: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return a, stop
}

// ClientTLS trusts the app's CA.
func ClientTLS(t testing.TB, a *app.App) *tls.Config {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(a.CACertPEM()) {
		t.Fatal("app CA certificate is not PEM")
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// testWriter sends the app's log to the test log, and nowhere once the
// test is over (a late line from a stopping goroutine must not panic).
type testWriter struct {
	t    testing.TB
	done atomic.Bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// APIToken returns an API token of org (created, as "Org <org>", if
// missing) with every permission, for tests that drive the JSON API.
func APIToken(t testing.TB, a *app.App, org string) string {
	t.Helper()
	ctx := context.Background()
	if err := a.Devices().EnsureOrg(ctx, org, "Org "+org); err != nil {
		t.Fatalf("ensure org %s: %v", org, err)
	}
	tok, err := a.Auth().IssueToken(ctx, org, "test", auth.All, 24*time.Hour, "test")
	if err != nil {
		t.Fatalf("issue API token: %v", err)
	}
	return tok.Secret
}
