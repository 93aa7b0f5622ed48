package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"io"
	"time"

	"vigil/internal/store"
)

const hashSize = sha256.Size

// genesis is the PrevHash of record 1: 32 zero bytes.
func genesis() []byte { return make([]byte, hashSize) }

// Hash returns a record's hash: SHA-256 over
//
//	"vigil audit record v1" 0x00
//	seq                         8 bytes, big-endian
//	at                          8 bytes, big-endian: Unix nanoseconds (UTC)
//	org id, actor, source ip, action, object type, object id,
//	outcome, severity, details, prev hash
//	                            each as an 8-byte big-endian length, then
//	                            its bytes (strings as stored, UTF-8)
//
// Fixed-width integers and length-prefixed fields make the encoding
// unambiguous: no two different records encode to the same bytes. r.Hash
// itself is not covered.
func Hash(r store.AuditRecord) []byte {
	h := sha256.New()
	io.WriteString(h, "vigil audit record v1\x00")
	putUint(h, uint64(r.Seq))
	putUint(h, uint64(r.At.UnixNano()))
	for _, s := range []string{r.OrgID, r.Actor, r.SourceIP, r.Action, r.ObjectType, r.ObjectID, r.Outcome, r.Severity, r.Details} {
		putUint(h, uint64(len(s)))
		io.WriteString(h, s)
	}
	putUint(h, uint64(len(r.PrevHash)))
	h.Write(r.PrevHash)
	return h.Sum(nil)
}

// checkpointMessage is what a checkpoint's Ed25519 signature covers:
//
//	"vigil audit checkpoint v1" 0x00
//	seq   8 bytes, big-endian
//	at    8 bytes, big-endian: Unix nanoseconds
//	hash  an 8-byte big-endian length, then the head's hash
func checkpointMessage(seq int64, at time.Time, headHash []byte) []byte {
	b := make([]byte, 0, 26+24+len(headHash))
	b = append(b, "vigil audit checkpoint v1\x00"...)
	b = binary.BigEndian.AppendUint64(b, uint64(seq))
	b = binary.BigEndian.AppendUint64(b, uint64(at.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, uint64(len(headHash)))
	return append(b, headHash...)
}

func putUint(h hash.Hash, v uint64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	h.Write(b[:])
}
