package store

// RetentionStore keeps and applies per-organisation retention; part of
// Store.
type RetentionStore interface{}
