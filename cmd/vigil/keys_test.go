package main

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"vigil/internal/bus"
	"vigil/internal/datakey"
	"vigil/internal/store/encrypted"
	"vigil/internal/store/sqlite"
)

// TestJetStreamEncryptedAtRest: with a store key derived from the KEK,
// an event published to the embedded JetStream is nowhere in its files in
// plaintext, and the stream reopens with the same key (the key is stable:
// derived from a data key wrapped by the KEK).
func TestJetStreamEncryptedAtRest(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	st, err := sqlite.Open(ctx, filepath.Join(root, "vigil.db"), sqlite.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	kek, err := datakey.OpenFileKEK(filepath.Join(root, "keys", "kek.key"))
	if err != nil {
		t.Fatal(err)
	}
	key, err := encrypted.NewKeyring(st, kek, datakey.Config{}).DeriveKey(ctx, "system:jetstream", "vigil jetstream store v1", 32)
	if err != nil {
		t.Fatal(err)
	}
	jsDir := filepath.Join(root, "jetstream")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	open := func() *bus.Bus {
		b, err := bus.Open(ctx, bus.Config{Dir: jsDir, Sync: "always", StoreKey: key}, log)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := open()
	secret := []byte(`{"note":"Quattlebaum at 14 Larkspur Close"}`)
	for i := range 20 {
		if err := b.Publish(ctx, bus.PartitionSubject(0), "m"+string(rune('a'+i)), "json", secret); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	found := false
	err = filepath.WalkDir(jsDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte("Quattlebaum")) {
			t.Errorf("%s holds the event in plaintext", path)
		}
		found = true
		return nil
	})
	if err != nil || !found {
		t.Fatalf("walk jetstream dir: %v (files found: %v)", err, found)
	}
	b = open()
	defer b.Close()
	n, err := b.StreamMsgs(ctx)
	if err != nil || n != 20 {
		t.Errorf("reopened with the same key: %d messages, %v; want 20", n, err)
	}
}

// TestJetStreamEncryptExisting: turning the store key on for an existing
// plaintext JetStream keeps its messages and converts its files.
func TestJetStreamEncryptExisting(t *testing.T) {
	ctx := context.Background()
	jsDir := filepath.Join(t.TempDir(), "jetstream")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	b, err := bus.Open(ctx, bus.Config{Dir: jsDir, Sync: "always"}, log)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := b.Publish(ctx, bus.PartitionSubject(0), "m"+string(rune('a'+i)), "json", []byte(`{"n":"Quattlebaum"}`)); err != nil {
			t.Fatal(err)
		}
	}
	b.Close()
	key := bytes.Repeat([]byte{7}, 32)
	b, err = bus.Open(ctx, bus.Config{Dir: jsDir, Sync: "always", StoreKey: key}, log)
	if err != nil {
		t.Fatalf("reopen with a store key: %v", err)
	}
	n, err := b.StreamMsgs(ctx)
	b.Close()
	if err != nil || n != 5 {
		t.Fatalf("after turning encryption on: %d messages, %v; want 5", n, err)
	}
	_ = filepath.WalkDir(jsDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, _ := os.ReadFile(path)
		if bytes.Contains(data, []byte("Quattlebaum")) {
			t.Errorf("%s still holds plaintext after conversion", path)
		}
		return nil
	})
}
