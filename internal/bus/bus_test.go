package bus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"vigil/internal/bus"
)

func open(t *testing.T, cfg bus.Config) *bus.Bus {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	b, err := bus.Open(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

// collector is a BatchHandler recording what it saw; it fails the first
// `fail` calls and marks data "poison" as poison.
type collector struct {
	mu    sync.Mutex
	got   map[string]int
	calls int
	fail  int
	total chan struct{}
}

func (c *collector) handle(_ context.Context, msgs []bus.Msg) ([]int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.calls <= c.fail {
		return nil, errors.New("store down")
	}
	var poison []int
	for i, m := range msgs {
		if string(m.Data) == "poison" {
			poison = append(poison, i)
			continue
		}
		c.got[string(m.Data)]++
		select {
		case c.total <- struct{}{}:
		default:
		}
	}
	return poison, nil
}

func (c *collector) count() (distinct, deliveries int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, n := range c.got {
		deliveries += n
	}
	return len(c.got), deliveries
}

func TestPublishConsume(t *testing.T) {
	b := open(t, bus.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for i := 0; i < 100; i++ {
		if err := b.Publish(ctx, bus.PartitionSubject(1), fmt.Sprint("d1/", i), "t", []byte(fmt.Sprint("m", i))); err != nil {
			t.Fatal(err)
		}
	}
	// A retry of the same message id inside the duplicate window is
	// stored once.
	if err := b.Publish(ctx, bus.PartitionSubject(1), "d1/5", "t", []byte("m5")); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, bus.PartitionSubject(1), "d1/p", "t", []byte("poison")); err != nil {
		t.Fatal(err)
	}
	n, err := b.StreamMsgs(ctx)
	if err != nil || n != 101 {
		t.Fatalf("stream holds %d messages (%v), want 101", n, err)
	}
	c := &collector{got: map[string]int{}, fail: 1, total: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() {
		done <- b.Consume(ctx, bus.ConsumeConfig{Durable: "t", RetryWait: 10 * time.Millisecond, Linger: time.Millisecond}, c.handle)
	}()
	deadline := time.After(20 * time.Second)
	for {
		if d, _ := c.count(); d == 100 {
			break
		}
		select {
		case <-c.total:
		case <-deadline:
			d, _ := c.count()
			t.Fatalf("consumed %d of 100 after a failed first batch", d)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Consume returned %v after cancel", err)
	}
}

func TestSyncSetting(t *testing.T) {
	for _, s := range []string{"", "default", "always", "1s"} {
		open(t, bus.Config{Sync: s})
	}
	if _, err := bus.Open(context.Background(), bus.Config{Dir: t.TempDir(), Sync: "sometimes"}, slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("sync \"sometimes\" accepted")
	}
}

// Security row 40: a listening embedded server has no user without
// explicit permissions: anonymous clients are refused, and the one user
// cannot reach subjects outside its allowlist.
func TestListenerRequiresAuth(t *testing.T) {
	dir := t.TempDir()
	b := open(t, bus.Config{Dir: dir, Listen: "127.0.0.1:-1"})
	url := b.ClientURL()
	if url == "" {
		t.Fatal("no listener")
	}
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("anonymous connection accepted")
	}
	none := open(t, bus.Config{})
	if none.ClientURL() != "" {
		t.Fatal("embedded server listens without being asked")
	}
}
