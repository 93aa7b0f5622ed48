package encrypted

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"vigil/internal/store"
)

// LedgerFile is where an install keeps the second copy of its erasure
// ledger: beside the key-encryption key, so outside the data directory and
// its backups. A backup taken before an erasure still holds the person's
// wrapped data key; restoring it with this key directory re-applies every
// erasure recorded here (ApplyErasures), even when the database that
// recorded it is lost.
func LedgerFile(kekPath string) string { return filepath.Join(filepath.Dir(kekPath), "erasures.log") }

// ledgerLine is one erasure in the ledger file: ids and a time only, never
// personal data.
type ledgerLine struct {
	PersonID  string    `json:"person_id"`
	OrgID     string    `json:"org_id"`
	ErasedAt  time.Time `json:"erased_at"`
	ReceiptID string    `json:"receipt_id"`
}

type fileLedger struct {
	mu   sync.Mutex
	path string
}

// append adds e as one line and syncs it before returning.
func (l *fileLedger) append(e store.Erasure) error {
	b, err := json.Marshal(ledgerLine{PersonID: e.PersonID, OrgID: e.OrgID, ErasedAt: e.ErasedAt.UTC(), ReceiptID: e.ReceiptID})
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("erasure ledger: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("erasure ledger: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("erasure ledger: %w", err)
	}
	return f.Close()
}

// ReadLedger reads a ledger file (LedgerFile); a missing file is an empty
// ledger. A line that is not a ledger entry is an error naming the line:
// an erasure must never be skipped silently.
func ReadLedger(path string) ([]store.Erasure, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("erasure ledger: %w", err)
	}
	defer f.Close()
	var out []store.Erasure
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var l ledgerLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.PersonID == "" {
			return nil, fmt.Errorf("erasure ledger %s line %d: not an erasure entry", path, n)
		}
		// The receipt re-recorded with it says where it came from (the
		// original is in the database that was lost or replaced).
		r, err := json.Marshal(store.ErasureReceipt{ID: l.ReceiptID, PersonID: l.PersonID, OrgID: l.OrgID, ErasedAt: l.ErasedAt,
			Reason: "re-applied from the erasure ledger after a restore", DataKeyDestroyed: true})
		if err != nil {
			return nil, fmt.Errorf("erasure ledger: %w", err)
		}
		out = append(out, store.Erasure{PersonID: l.PersonID, OrgID: l.OrgID, ErasedAt: l.ErasedAt, ReceiptID: l.ReceiptID, Receipt: string(r)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("erasure ledger: %w", err)
	}
	return out, nil
}
