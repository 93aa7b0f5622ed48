package encrypted

import (
	"context"
	"errors"
	"time"

	"vigil/internal/datakey"
	"vigil/internal/store"
)

// NewKeyring returns a keyring whose wrapped data keys live in st's
// data_keys table and are wrapped by kek.
func NewKeyring(st store.PrivacyStore, kek datakey.KEK, cfg datakey.Config) *datakey.Keyring {
	return datakey.New(KeyStore{st}, kek, cfg)
}

// KeyStore adapts the store's data_keys table to datakey.KeyStore.
type KeyStore struct{ St store.PrivacyStore }

func toWrapped(k store.DataKey) datakey.WrappedKey {
	return datakey.WrappedKey{ID: k.ID, Owner: k.Owner, KEKID: k.KEKID, Wrapped: k.Wrapped, CreatedAt: k.CreatedAt, DestroyedAt: k.DestroyedAt}
}

// CreateDataKey implements datakey.KeyStore.
func (a KeyStore) CreateDataKey(ctx context.Context, k datakey.WrappedKey) (datakey.WrappedKey, error) {
	got, err := a.St.CreateDataKey(ctx, store.DataKey{ID: k.ID, Owner: k.Owner, KEKID: k.KEKID, Wrapped: k.Wrapped, CreatedAt: k.CreatedAt})
	return toWrapped(got), err
}

func found(k store.DataKey, err error) (datakey.WrappedKey, bool, error) {
	if errors.Is(err, store.ErrNotFound) {
		return datakey.WrappedKey{}, false, nil
	}
	if err != nil {
		return datakey.WrappedKey{}, false, err
	}
	return toWrapped(k), true, nil
}

// GetDataKey implements datakey.KeyStore.
func (a KeyStore) GetDataKey(ctx context.Context, id string) (datakey.WrappedKey, bool, error) {
	return found(a.St.GetDataKey(ctx, id))
}

// OwnerDataKey implements datakey.KeyStore.
func (a KeyStore) OwnerDataKey(ctx context.Context, owner string) (datakey.WrappedKey, bool, error) {
	return found(a.St.GetOwnerDataKey(ctx, owner))
}

// RewrapDataKey implements datakey.KeyStore.
func (a KeyStore) RewrapDataKey(ctx context.Context, id, oldKEKID, newKEKID string, wrapped []byte) (bool, error) {
	return a.St.RewrapDataKey(ctx, id, oldKEKID, newKEKID, wrapped)
}

// DestroyDataKey implements datakey.KeyStore.
func (a KeyStore) DestroyDataKey(ctx context.Context, owner string, at time.Time) (bool, error) {
	return a.St.DestroyDataKey(ctx, owner, at)
}

// DataKeyKEKs implements datakey.KeyStore.
func (a KeyStore) DataKeyKEKs(ctx context.Context) (map[string]int, error) {
	return a.St.CountDataKeysByKEK(ctx)
}

// LiveDataKeys implements datakey.KeyStore.
func (a KeyStore) LiveDataKeys(ctx context.Context, after string, limit int) ([]datakey.WrappedKey, error) {
	ks, err := a.St.ListLiveDataKeys(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]datakey.WrappedKey, len(ks))
	for i, k := range ks {
		out[i] = toWrapped(k)
	}
	return out, nil
}

// WrapWithKeyFile wraps inner with a keyring whose KEK is the key file at
// kekPath (created, with its directory, on first use): what the server and
// the CLI call with config.Config.KEKPath(). A store that is already
// wrapped is returned as it is.
func WrapWithKeyFile(inner store.Store, kekPath string, cfg datakey.Config) (*Store, error) {
	if s, ok := inner.(*Store); ok {
		return s, nil
	}
	kek, err := datakey.OpenFileKEK(kekPath)
	if err != nil {
		return nil, err
	}
	s := Wrap(inner, NewKeyring(inner, kek, cfg))
	s.ledger = &fileLedger{path: LedgerFile(kekPath)}
	return s, nil
}
