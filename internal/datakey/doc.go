// Package datakey is envelope encryption of personal data: per-person
// data keys wrapped by the seal key-encryption key (issue 9).
//
// Every person (and every organisation, for text about nobody in
// particular) has one data-encryption key (DEK): 32 random bytes used with
// AES-256-GCM. The DEK is stored only wrapped by the key-encryption key
// (KEK), which lives outside the database (a key file read through
// internal/seal, or an external KMS behind the KEK interface). A field
// value sealed under a DEK is
//
//	version (1 byte, 0x01) | DEK id (8 bytes) | nonce (12 bytes) | ciphertext and tag
//
// and is bound, as GCM additional data, to the header and to the place it
// is stored (table, column, row id: Field), so a ciphertext copied into
// another row or column does not open. Open never returns unauthenticated
// bytes: a flipped byte, a truncated value or a wrong place is ErrIntegrity.
//
// Crypto-shredding: Destroy deletes an owner's wrapped DEK (a tombstone row
// remains, so no new key is made for an erased person) and drops it from
// the cache; every value sealed under it is then ErrDestroyed for ever, in
// the database, in the event streams and in every backup taken earlier,
// as long as the KEK that wrapped the key is not in the same backup.
//
// KEK rotation (Rewrap) re-wraps every live DEK with the KEK's current key
// while the server runs: a FileKEK reloads its key file when it meets a key
// id it does not know, so a server keeps opening DEKs that a `vigil keys
// rotate` in another process re-wrapped.
//
// Unwrapped DEKs are kept in a bounded in-memory cache (Config.CacheSize)
// for Config.CacheTTL: another process's Destroy reaches this one's cache at
// most that late.
//
// Must not import: anything but the standard library and internal/seal
// (TestDeps). A Keyring is safe for concurrent use and starts no goroutine.
package datakey
