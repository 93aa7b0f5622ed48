package datakey

import (
	"container/list"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Errors. Both are returned wrapped; no plaintext comes with either.
var (
	// ErrIntegrity: the value is not one this keyring sealed for this
	// place: a flipped byte, a truncated value, a value moved to another
	// row or column, an unknown version.
	ErrIntegrity = errors.New("datakey: integrity check failed")
	// ErrDestroyed: the value's data key was destroyed (its owner was
	// erased); it can never be opened again.
	ErrDestroyed = errors.New("datakey: data key destroyed")
	// ErrUnknownKey: no data key with the value's key id is stored (a
	// value from another install, or a key row lost).
	ErrUnknownKey = errors.New("datakey: unknown data key")
)

const (
	version1  = 0x01
	idLen     = 8
	dekLen    = 32
	nonceLen  = 12
	tagLen    = 16
	headerLen = 1 + idLen
	overhead  = headerLen + nonceLen + tagLen
)

// KEK wraps and unwraps data keys: the install's key-encryption key.
// Unwrap must fail (never return other bytes) for anything Wrap did not
// produce with the same aad. KeyID names the key Wrap uses now.
type KEK interface {
	Wrap(dek, aad []byte) ([]byte, error)
	Unwrap(wrapped, aad []byte) ([]byte, error)
	KeyID() string
}

// WrappedKey is a data key as stored: never the key itself.
type WrappedKey struct {
	ID          string // 16 hex characters
	Owner       string // PersonOwner or OrgOwner
	KEKID       string // the KEK key that wrapped it
	Wrapped     []byte // nil once destroyed
	CreatedAt   time.Time
	DestroyedAt time.Time // zero while live
}

// KeyStore keeps wrapped data keys (the store's data_keys table). Lookups
// report ok false, not an error, for a key that is not stored.
type KeyStore interface {
	// CreateDataKey stores k unless its owner has a key (live or
	// destroyed) already, and returns the owner's stored key.
	CreateDataKey(ctx context.Context, k WrappedKey) (WrappedKey, error)
	GetDataKey(ctx context.Context, id string) (WrappedKey, bool, error)
	OwnerDataKey(ctx context.Context, owner string) (WrappedKey, bool, error)
	// RewrapDataKey replaces a live key's wrapping, if it is still wrapped
	// by oldKEKID (else it changes nothing and reports false).
	RewrapDataKey(ctx context.Context, id, oldKEKID, newKEKID string, wrapped []byte) (bool, error)
	// DestroyDataKey deletes an owner's wrapped key, keeping a tombstone
	// (or creating one when the owner had no key, so none is ever made);
	// it reports whether a live key was destroyed now.
	DestroyDataKey(ctx context.Context, owner string, at time.Time) (bool, error)
	// DataKeyKEKs counts live keys by the KEK key that wraps them.
	DataKeyKEKs(ctx context.Context) (map[string]int, error)
	// LiveDataKeys lists up to limit live keys with ID > after, by ID.
	LiveDataKeys(ctx context.Context, after string, limit int) ([]WrappedKey, error)
}

// PersonOwner and OrgOwner name a data key's owner.
func PersonOwner(personID string) string { return "person:" + personID }

// OrgOwner is the owner of an organisation's key (text about no person).
func OrgOwner(orgID string) string { return "org:" + orgID }

// Field is the additional data binding a value to where it is stored.
func Field(table, column, rowID string) []byte {
	b := make([]byte, 0, len(table)+len(column)+len(rowID)+2)
	b = append(b, table...)
	b = append(b, 0)
	b = append(b, column...)
	b = append(b, 0)
	return append(b, rowID...)
}

// Config tunes a Keyring; the zero value works.
type Config struct {
	CacheSize int              // unwrapped keys kept; default 4096
	CacheTTL  time.Duration    // how long one is kept; default 5 min
	Now       func() time.Time // default time.Now
}

// Keyring seals and opens field values under per-owner data keys.
type Keyring struct {
	ks  KeyStore
	kek KEK
	cfg Config

	mu    sync.Mutex
	lru   *list.List               // of *cached, most recent first
	byID  map[string]*list.Element // key id -> element
	owner map[string]string        // owner -> key id, for cached keys
}

type cached struct {
	id, owner string
	aead      cipher.AEAD
	loaded    time.Time
}

// New returns a keyring over ks whose data keys kek wraps.
func New(ks KeyStore, kek KEK, cfg Config) *Keyring {
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = 4096
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Keyring{ks: ks, kek: kek, cfg: cfg, lru: list.New(), byID: map[string]*list.Element{}, owner: map[string]string{}}
}

// String prints no key material.
func (k *Keyring) String() string { return "datakey.Keyring(kek=" + k.kek.KeyID() + ")" }

// wrapAAD binds a wrapped key to its id and owner.
func wrapAAD(id, owner string) []byte { return []byte("vigil datakey v1\x00" + id + "\x00" + owner) }

// Seal encrypts plaintext for owner, bound to aad (Field), creating the
// owner's data key on first use. An erased owner's is ErrDestroyed.
func (k *Keyring) Seal(ctx context.Context, owner string, plaintext, aad []byte) ([]byte, error) {
	c, err := k.ownerKey(ctx, owner)
	if err != nil {
		return nil, err
	}
	id, _ := hex.DecodeString(c.id)
	out := make([]byte, headerLen+nonceLen, overhead+len(plaintext))
	out[0] = version1
	copy(out[1:headerLen], id)
	if _, err := rand.Read(out[headerLen:]); err != nil {
		return nil, fmt.Errorf("datakey: nonce: %w", err)
	}
	return c.aead.Seal(out, out[headerLen:headerLen+nonceLen], plaintext, additional(out[:headerLen], aad)), nil
}

// Open decrypts a value Seal made with the same aad. Failures wrap
// ErrIntegrity, ErrDestroyed or ErrUnknownKey and return no plaintext.
func (k *Keyring) Open(ctx context.Context, ct, aad []byte) ([]byte, error) {
	if len(ct) < overhead {
		return nil, fmt.Errorf("datakey: open: %d bytes is shorter than any sealed value: %w", len(ct), ErrIntegrity)
	}
	if ct[0] != version1 {
		return nil, fmt.Errorf("datakey: open: unknown version %d: %w", ct[0], ErrIntegrity)
	}
	id := hex.EncodeToString(ct[1:headerLen])
	c, err := k.idKey(ctx, id)
	if err != nil {
		return nil, err
	}
	pt, err := c.aead.Open(nil, ct[headerLen:headerLen+nonceLen], ct[headerLen+nonceLen:], additional(ct[:headerLen], aad))
	if err != nil {
		return nil, fmt.Errorf("datakey: open: key %s: %w", id, ErrIntegrity)
	}
	return pt, nil
}

// KeyIDOf returns the data key id a sealed value names ("" if it is too
// short to be one). It does not authenticate the value.
func KeyIDOf(ct []byte) string {
	if len(ct) < overhead || ct[0] != version1 {
		return ""
	}
	return hex.EncodeToString(ct[1:headerLen])
}

// Destroy crypto-shreds owner's data: its wrapped key is deleted and
// dropped from this keyring's cache. It reports whether a live key was
// destroyed now (false: there was none, or it was destroyed before).
func (k *Keyring) Destroy(ctx context.Context, owner string) (bool, error) {
	k.mu.Lock()
	if id, ok := k.owner[owner]; ok {
		k.evictLocked(id)
	}
	k.mu.Unlock()
	done, err := k.ks.DestroyDataKey(ctx, owner, k.cfg.Now().UTC())
	if err != nil {
		return false, fmt.Errorf("datakey: destroy: %w", err)
	}
	return done, nil
}

// Destroyed reports whether owner's data key was destroyed.
func (k *Keyring) Destroyed(ctx context.Context, owner string) (bool, error) {
	w, ok, err := k.ks.OwnerDataKey(ctx, owner)
	if err != nil {
		return false, fmt.Errorf("datakey: lookup: %w", err)
	}
	return ok && !w.DestroyedAt.IsZero(), nil
}

// Status counts live data keys by the KEK key that wraps them, and names
// the KEK key new wrappings use.
func (k *Keyring) Status(ctx context.Context) (current string, byKEK map[string]int, err error) {
	byKEK, err = k.ks.DataKeyKEKs(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("datakey: status: %w", err)
	}
	return k.kek.KeyID(), byKEK, nil
}

// Rewrap re-wraps every live data key not wrapped by the KEK's current key,
// in pages, while the keyring is in use elsewhere (a key re-wrapped
// concurrently is skipped). It returns how many it re-wrapped.
func (k *Keyring) Rewrap(ctx context.Context) (int, error) {
	cur := k.kek.KeyID()
	n, after := 0, ""
	for {
		page, err := k.ks.LiveDataKeys(ctx, after, 500)
		if err != nil {
			return n, fmt.Errorf("datakey: rewrap: %w", err)
		}
		for _, w := range page {
			after = w.ID
			if w.KEKID == cur {
				continue
			}
			aad := wrapAAD(w.ID, w.Owner)
			dek, err := k.kek.Unwrap(w.Wrapped, aad)
			if err != nil {
				return n, fmt.Errorf("datakey: rewrap key %s: unwrap: %w", w.ID, err)
			}
			nw, err := k.kek.Wrap(dek, aad)
			clear(dek)
			if err != nil {
				return n, fmt.Errorf("datakey: rewrap key %s: wrap: %w", w.ID, err)
			}
			ok, err := k.ks.RewrapDataKey(ctx, w.ID, w.KEKID, cur, nw)
			if err != nil {
				return n, fmt.Errorf("datakey: rewrap key %s: %w", w.ID, err)
			}
			if ok {
				n++
			}
		}
		if len(page) < 500 {
			return n, nil
		}
	}
}

// ownerKey returns owner's data key, creating it on first use.
func (k *Keyring) ownerKey(ctx context.Context, owner string) (*cached, error) {
	k.mu.Lock()
	if id, ok := k.owner[owner]; ok {
		if c := k.getLocked(id); c != nil {
			k.mu.Unlock()
			return c, nil
		}
	}
	k.mu.Unlock()
	w, ok, err := k.ks.OwnerDataKey(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("datakey: lookup: %w", err)
	}
	if !ok {
		if w, err = k.create(ctx, owner); err != nil {
			return nil, err
		}
	}
	return k.load(w)
}

// idKey returns the data key with id.
func (k *Keyring) idKey(ctx context.Context, id string) (*cached, error) {
	k.mu.Lock()
	c := k.getLocked(id)
	k.mu.Unlock()
	if c != nil {
		return c, nil
	}
	w, ok, err := k.ks.GetDataKey(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("datakey: lookup: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("datakey: key %s: %w", id, ErrUnknownKey)
	}
	return k.load(w)
}

func (k *Keyring) create(ctx context.Context, owner string) (WrappedKey, error) {
	var rawID [idLen]byte
	dek := make([]byte, dekLen)
	defer clear(dek)
	if _, err := rand.Read(rawID[:]); err != nil {
		return WrappedKey{}, fmt.Errorf("datakey: new key: %w", err)
	}
	if _, err := rand.Read(dek); err != nil {
		return WrappedKey{}, fmt.Errorf("datakey: new key: %w", err)
	}
	id := hex.EncodeToString(rawID[:])
	wrapped, err := k.kek.Wrap(dek, wrapAAD(id, owner))
	if err != nil {
		return WrappedKey{}, fmt.Errorf("datakey: wrap new key: %w", err)
	}
	w, err := k.ks.CreateDataKey(ctx, WrappedKey{ID: id, Owner: owner, KEKID: k.kek.KeyID(), Wrapped: wrapped, CreatedAt: k.cfg.Now().UTC()})
	if err != nil {
		return WrappedKey{}, fmt.Errorf("datakey: store new key: %w", err)
	}
	return w, nil
}

// load unwraps w and caches it.
func (k *Keyring) load(w WrappedKey) (*cached, error) {
	if !w.DestroyedAt.IsZero() || w.Wrapped == nil {
		return nil, fmt.Errorf("datakey: key %s: %w", w.ID, ErrDestroyed)
	}
	dek, err := k.kek.Unwrap(w.Wrapped, wrapAAD(w.ID, w.Owner))
	if err != nil {
		return nil, fmt.Errorf("datakey: unwrap key %s: %w", w.ID, errors.Join(ErrIntegrity, err))
	}
	defer clear(dek)
	if len(dek) != dekLen {
		return nil, fmt.Errorf("datakey: key %s is %d bytes: %w", w.ID, len(dek), ErrIntegrity)
	}
	block, err := aes.NewCipher(dek)
	if err != nil {
		return nil, fmt.Errorf("datakey: key %s: %w", w.ID, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("datakey: key %s: %w", w.ID, err)
	}
	c := &cached{id: w.ID, owner: w.Owner, aead: aead, loaded: k.cfg.Now()}
	k.mu.Lock()
	defer k.mu.Unlock()
	if el, ok := k.byID[w.ID]; ok {
		k.lru.Remove(el)
	}
	k.byID[w.ID] = k.lru.PushFront(c)
	k.owner[w.Owner] = w.ID
	for k.lru.Len() > k.cfg.CacheSize {
		k.evictLocked(k.lru.Back().Value.(*cached).id)
	}
	return c, nil
}

func (k *Keyring) getLocked(id string) *cached {
	el, ok := k.byID[id]
	if !ok {
		return nil
	}
	c := el.Value.(*cached)
	if k.cfg.Now().Sub(c.loaded) >= k.cfg.CacheTTL {
		k.evictLocked(id)
		return nil
	}
	k.lru.MoveToFront(el)
	return c
}

func (k *Keyring) evictLocked(id string) {
	el, ok := k.byID[id]
	if !ok {
		return
	}
	c := el.Value.(*cached)
	k.lru.Remove(el)
	delete(k.byID, id)
	if k.owner[c.owner] == id {
		delete(k.owner, c.owner)
	}
}

// CachedKeys is how many unwrapped keys the cache holds.
func (k *Keyring) CachedKeys() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.lru.Len()
}

func additional(header, aad []byte) []byte {
	ad := make([]byte, 0, len(header)+len(aad))
	return append(append(ad, header...), aad...)
}

// DeriveKey returns n bytes derived (HKDF-SHA256, info) from owner's data
// key, creating the key on first use: a stable secret for a system
// component, wrapped by the KEK like every data key (e.g. the JetStream
// store key, owner "system:jetstream"). The bytes are secret: never log
// them. A destroyed owner's key is ErrDestroyed.
func (k *Keyring) DeriveKey(ctx context.Context, owner, info string, n int) ([]byte, error) {
	w, ok, err := k.ks.OwnerDataKey(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("datakey: lookup: %w", err)
	}
	if !ok {
		if w, err = k.create(ctx, owner); err != nil {
			return nil, err
		}
	}
	if !w.DestroyedAt.IsZero() || w.Wrapped == nil {
		return nil, fmt.Errorf("datakey: key %s: %w", w.ID, ErrDestroyed)
	}
	dek, err := k.kek.Unwrap(w.Wrapped, wrapAAD(w.ID, w.Owner))
	if err != nil {
		return nil, fmt.Errorf("datakey: unwrap key %s: %w", w.ID, errors.Join(ErrIntegrity, err))
	}
	defer clear(dek)
	out, err := hkdf.Key(sha256.New, dek, nil, info, n)
	if err != nil {
		return nil, fmt.Errorf("datakey: derive: %w", err)
	}
	return out, nil
}
