package datakey

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"vigil/internal/seal"
)

// memKeys is an in-memory KeyStore for this package's tests; the SQL one
// is tested by the store conformance suite and internal/store/encrypted.
type memKeys struct {
	mu   sync.Mutex
	byID map[string]WrappedKey
}

func newMemKeys() *memKeys { return &memKeys{byID: map[string]WrappedKey{}} }

func (m *memKeys) CreateDataKey(_ context.Context, k WrappedKey) (WrappedKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, w := range m.byID {
		if w.Owner == k.Owner {
			return w, nil
		}
	}
	m.byID[k.ID] = k
	return k, nil
}

func (m *memKeys) GetDataKey(_ context.Context, id string) (WrappedKey, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.byID[id]
	return w, ok, nil
}

func (m *memKeys) OwnerDataKey(_ context.Context, owner string) (WrappedKey, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, w := range m.byID {
		if w.Owner == owner {
			return w, true, nil
		}
	}
	return WrappedKey{}, false, nil
}

func (m *memKeys) RewrapDataKey(_ context.Context, id, oldKEK, newKEK string, wrapped []byte) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	w, ok := m.byID[id]
	if !ok || w.KEKID != oldKEK || w.Wrapped == nil {
		return false, nil
	}
	w.KEKID, w.Wrapped = newKEK, wrapped
	m.byID[id] = w
	return true, nil
}

func (m *memKeys) DestroyDataKey(_ context.Context, owner string, at time.Time) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, w := range m.byID {
		if w.Owner == owner {
			if w.Wrapped == nil {
				return false, nil
			}
			w.Wrapped, w.DestroyedAt = nil, at
			m.byID[id] = w
			return true, nil
		}
	}
	m.byID["tomb-"+owner] = WrappedKey{ID: "tomb-" + owner, Owner: owner, DestroyedAt: at}
	return false, nil
}

func (m *memKeys) DataKeyKEKs(context.Context) (map[string]int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int{}
	for _, w := range m.byID {
		if w.Wrapped != nil {
			out[w.KEKID]++
		}
	}
	return out, nil
}

func (m *memKeys) LiveDataKeys(_ context.Context, after string, limit int) ([]WrappedKey, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []WrappedKey
	for _, w := range m.byID {
		if w.Wrapped != nil && w.ID > after {
			out = append(out, w)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func newKEK(t testing.TB) *FileKEK {
	t.Helper()
	k, err := OpenFileKEK(filepath.Join(t.TempDir(), "keys", "kek.key"))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	ctx := context.Background()
	kr := New(newMemKeys(), newKEK(t), Config{})
	aad := Field("people", "name", "p1")
	ct, err := kr.Seal(ctx, PersonOwner("p1"), []byte("Ada Lovelace"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(ct, []byte("Ada")) {
		t.Fatal("ciphertext holds the plaintext")
	}
	got, err := kr.Open(ctx, ct, aad)
	if err != nil || string(got) != "Ada Lovelace" {
		t.Fatalf("Open = %q, %v; want Ada Lovelace", got, err)
	}
	// Same owner, same key: a second value names the same key id.
	ct2, err := kr.Seal(ctx, PersonOwner("p1"), []byte("x"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if KeyIDOf(ct) != KeyIDOf(ct2) || KeyIDOf(ct) == "" {
		t.Errorf("key ids %q and %q: want one key per owner", KeyIDOf(ct), KeyIDOf(ct2))
	}
	ct3, err := kr.Seal(ctx, PersonOwner("p2"), []byte("x"), Field("people", "name", "p2"))
	if err != nil {
		t.Fatal(err)
	}
	if KeyIDOf(ct3) == KeyIDOf(ct) {
		t.Error("two people share a data key")
	}
}

func TestMovedValueFails(t *testing.T) {
	ctx := context.Background()
	kr := New(newMemKeys(), newKEK(t), Config{})
	ct, err := kr.Seal(ctx, PersonOwner("p1"), []byte("diabetic"), Field("people", "medical_notes", "p1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, aad := range [][]byte{
		Field("people", "medical_notes", "p2"), // another row
		Field("people", "name", "p1"),          // another column
		Field("contacts", "medical_notes", "p1"),
		nil,
	} {
		got, err := kr.Open(ctx, ct, aad)
		if !errors.Is(err, ErrIntegrity) || got != nil {
			t.Errorf("Open with aad %q = %q, %v; want ErrIntegrity and nothing", aad, got, err)
		}
	}
}

// TestFlippedByte: every single-bit change anywhere in a value is an
// integrity error, never other plaintext.
func TestFlippedByte(t *testing.T) {
	ctx := context.Background()
	kr := New(newMemKeys(), newKEK(t), Config{})
	aad := Field("sessions", "note", "s1")
	ct, err := kr.Seal(ctx, PersonOwner("p1"), []byte("visiting 12 Elm Road, dog"), aad)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ct {
		for bit := 0; bit < 8; bit++ {
			bad := bytes.Clone(ct)
			bad[i] ^= 1 << bit
			got, err := kr.Open(ctx, bad, aad)
			if err == nil || got != nil {
				t.Fatalf("byte %d bit %d flipped: Open = %q, %v; want an error and nothing", i, bit, got, err)
			}
			if !errors.Is(err, ErrIntegrity) && !errors.Is(err, ErrUnknownKey) {
				t.Fatalf("byte %d bit %d flipped: %v; want ErrIntegrity or ErrUnknownKey", i, bit, err)
			}
			if i == 0 || i >= headerLen {
				if !errors.Is(err, ErrIntegrity) {
					t.Fatalf("byte %d bit %d flipped: %v; want ErrIntegrity", i, bit, err)
				}
			}
		}
	}
	for n := range ct {
		if got, err := kr.Open(ctx, ct[:n], aad); err == nil || got != nil {
			t.Fatalf("truncated to %d: Open = %q, %v", n, got, err)
		}
	}
}

func TestDestroy(t *testing.T) {
	ctx := context.Background()
	ks := newMemKeys()
	kek := newKEK(t)
	kr := New(ks, kek, Config{})
	aad := Field("people", "name", "p1")
	ct, err := kr.Seal(ctx, PersonOwner("p1"), []byte("Grace"), aad)
	if err != nil {
		t.Fatal(err)
	}
	other, err := kr.Seal(ctx, PersonOwner("p2"), []byte("Alan"), Field("people", "name", "p2"))
	if err != nil {
		t.Fatal(err)
	}
	done, err := kr.Destroy(ctx, PersonOwner("p1"))
	if err != nil || !done {
		t.Fatalf("Destroy = %v, %v; want true", done, err)
	}
	if got, err := kr.Open(ctx, ct, aad); !errors.Is(err, ErrDestroyed) || got != nil {
		t.Errorf("Open after Destroy = %q, %v; want ErrDestroyed", got, err)
	}
	// A second keyring (another process) sees it too.
	kr2 := New(ks, kek, Config{})
	if _, err := kr2.Open(ctx, ct, aad); !errors.Is(err, ErrDestroyed) {
		t.Errorf("another keyring: %v; want ErrDestroyed", err)
	}
	// No new key is made for an erased owner.
	if _, err := kr.Seal(ctx, PersonOwner("p1"), []byte("again"), aad); !errors.Is(err, ErrDestroyed) {
		t.Errorf("Seal for an erased owner: %v; want ErrDestroyed", err)
	}
	if done, err := kr.Destroy(ctx, PersonOwner("p1")); err != nil || done {
		t.Errorf("second Destroy = %v, %v; want false, nil", done, err)
	}
	if gone, _ := kr.Destroyed(ctx, PersonOwner("p1")); !gone {
		t.Error("Destroyed = false after Destroy")
	}
	// Others are untouched.
	if got, err := kr.Open(ctx, other, Field("people", "name", "p2")); err != nil || string(got) != "Alan" {
		t.Errorf("another person's value = %q, %v", got, err)
	}
	// An owner that never had a key gets a tombstone: none is made later.
	if _, err := kr.Destroy(ctx, PersonOwner("p3")); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Seal(ctx, PersonOwner("p3"), []byte("x"), nil); !errors.Is(err, ErrDestroyed) {
		t.Errorf("Seal after Destroy of a keyless owner: %v; want ErrDestroyed", err)
	}
}

// TestCacheTTL: another process's Destroy reaches a cached key after at
// most the TTL.
func TestCacheTTL(t *testing.T) {
	ctx := context.Background()
	ks := newMemKeys()
	kek := newKEK(t)
	now := time.Unix(1_700_000_000, 0)
	kr := New(ks, kek, Config{CacheSize: 2, CacheTTL: time.Minute, Now: func() time.Time { return now }})
	aad := Field("people", "name", "p1")
	ct, err := kr.Seal(ctx, PersonOwner("p1"), []byte("Grace"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(ks, kek, Config{}).Destroy(ctx, PersonOwner("p1")); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Open(ctx, ct, aad); err != nil {
		t.Fatalf("within the TTL the cached key still opens: %v", err)
	}
	now = now.Add(time.Minute)
	if _, err := kr.Open(ctx, ct, aad); !errors.Is(err, ErrDestroyed) {
		t.Errorf("after the TTL: %v; want ErrDestroyed", err)
	}
	for i := range 5 {
		id := string(rune('a' + i))
		if _, err := kr.Seal(ctx, PersonOwner(id), []byte("x"), nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := kr.CachedKeys(); n != 2 {
		t.Errorf("cache holds %d keys; want at most 2", n)
	}
}

// TestRotate: keys rotate while another keyring (a running server with its
// own FileKEK on the same file) keeps opening everything; old keys can be
// removed once nothing is wrapped by them.
func TestRotate(t *testing.T) {
	ctx := context.Background()
	ks := newMemKeys()
	path := filepath.Join(t.TempDir(), "kek.key")
	serverKEK, err := OpenFileKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	server := New(ks, serverKEK, Config{CacheTTL: time.Nanosecond})
	var cts [][]byte
	for _, p := range []string{"p1", "p2", "p3"} {
		ct, err := server.Seal(ctx, PersonOwner(p), []byte("name of "+p), Field("people", "name", p))
		if err != nil {
			t.Fatal(err)
		}
		cts = append(cts, ct)
	}
	old := serverKEK.KeyID()

	cliKEK, err := OpenFileKEK(path)
	if err != nil {
		t.Fatal(err)
	}
	newID, err := cliKEK.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if newID == old {
		t.Fatal("rotation kept the key id")
	}
	cli := New(ks, cliKEK, Config{})
	n, err := cli.Rewrap(ctx)
	if err != nil || n != 3 {
		t.Fatalf("Rewrap = %d, %v; want 3", n, err)
	}
	if n, err := cli.Rewrap(ctx); err != nil || n != 0 {
		t.Fatalf("second Rewrap = %d, %v; want 0", n, err)
	}
	cur, by, err := cli.Status(ctx)
	if err != nil || cur != newID || by[newID] != 3 || by[old] != 0 {
		t.Fatalf("Status = %s %v %v; want all 3 under %s", cur, by, err, newID)
	}
	if err := cliKEK.RemoveKeys(map[string]bool{old: true}); err != nil {
		t.Fatal(err)
	}
	ids, err := cliKEK.KeyIDs()
	if err != nil || len(ids) != 1 || ids[0] != newID {
		t.Fatalf("KeyIDs = %v, %v; want [%s]", ids, err, newID)
	}
	if err := cliKEK.RemoveKeys(map[string]bool{newID: true}); err == nil {
		t.Error("RemoveKeys removed the current key")
	}
	// The server, which loaded the file before the rotation, still opens
	// everything (it reloads the file) and wraps new keys with the new key.
	for i, p := range []string{"p1", "p2", "p3"} {
		got, err := server.Open(ctx, cts[i], Field("people", "name", p))
		if err != nil || string(got) != "name of "+p {
			t.Fatalf("server Open after rotation = %q, %v", got, err)
		}
	}
	if serverKEK.KeyID() != newID {
		t.Errorf("server KEK id %s; want %s", serverKEK.KeyID(), newID)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v; want 0600", fi.Mode(), err)
	}
}

// TestWrongKEK: a database with another install's KEK opens nothing.
func TestWrongKEK(t *testing.T) {
	ctx := context.Background()
	ks := newMemKeys()
	kr := New(ks, newKEK(t), Config{})
	aad := Field("people", "name", "p1")
	ct, err := kr.Seal(ctx, PersonOwner("p1"), []byte("Grace"), aad)
	if err != nil {
		t.Fatal(err)
	}
	s, err := seal.New(mustKey(t))
	if err != nil {
		t.Fatal(err)
	}
	other := New(ks, SealerKEK{s}, Config{})
	if got, err := other.Open(ctx, ct, aad); !errors.Is(err, ErrIntegrity) || got != nil {
		t.Errorf("Open with another KEK = %q, %v; want ErrIntegrity", got, err)
	}
}

func mustKey(t *testing.T) seal.Key {
	k, err := seal.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestNoKeyMaterialPrinted: a keyring prints as its KEK id only.
func TestNoKeyMaterialPrinted(t *testing.T) {
	kek := newKEK(t)
	kr := New(newMemKeys(), kek, Config{})
	if s := kr.String(); !strings.Contains(s, kek.KeyID()) || len(s) > 60 {
		t.Errorf("String = %q", s)
	}
}

// TestDeps: datakey imports only the standard library and internal/seal,
// so data keys never pass through third-party code.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "vigil/internal/datakey").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "vigil/internal/datakey" || dep == "vigil/internal/seal" {
			continue
		}
		if first, _, _ := strings.Cut(dep, "/"); first == "vigil" || strings.Contains(first, ".") {
			t.Errorf("datakey imports %s: it must import only the standard library and internal/seal", dep)
		}
	}
}

// TestDeriveKey: a derived key is stable for its owner and info, differs
// for another info or owner, and survives a KEK rotation.
func TestDeriveKey(t *testing.T) {
	ctx := context.Background()
	ks := newMemKeys()
	kek := newKEK(t)
	kr := New(ks, kek, Config{})
	a, err := kr.DeriveKey(ctx, "system:jetstream", "vigil jetstream v1", 32)
	if err != nil || len(a) != 32 {
		t.Fatalf("DeriveKey = %d bytes, %v", len(a), err)
	}
	b, err := New(ks, kek, Config{}).DeriveKey(ctx, "system:jetstream", "vigil jetstream v1", 32)
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("second DeriveKey differs: %v", err)
	}
	c, _ := kr.DeriveKey(ctx, "system:jetstream", "other", 32)
	d, _ := kr.DeriveKey(ctx, "system:other", "vigil jetstream v1", 32)
	if bytes.Equal(a, c) || bytes.Equal(a, d) {
		t.Error("derived keys do not depend on info and owner")
	}
	if _, err := kek.Rotate(); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Rewrap(ctx); err != nil {
		t.Fatal(err)
	}
	e, err := kr.DeriveKey(ctx, "system:jetstream", "vigil jetstream v1", 32)
	if err != nil || !bytes.Equal(a, e) {
		t.Errorf("derived key changed across a KEK rotation: %v", err)
	}
}
