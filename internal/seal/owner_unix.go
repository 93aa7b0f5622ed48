//go:build unix

package seal

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// checkOwner refuses a key file owned by another user than the one running
// the service (security requirement 2: secret files are owned by the
// service user).
func checkOwner(path string, fi fs.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil
	}
	if uid := os.Geteuid(); int(st.Uid) != uid {
		return fmt.Errorf("seal: key file %s is owned by uid %d, not the service user (uid %d); fix with: chown %d %s", path, st.Uid, uid, uid, path)
	}
	return nil
}
