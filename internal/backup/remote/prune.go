package remote

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"vigil/internal/backup"
)

// Policy is what Prune keeps: the newest complete backup of each of the
// Daily most recent days (UTC) that have one, and of each of the Weekly
// most recent ISO weeks. The newest complete backup is always kept.
type Policy struct {
	Daily, Weekly int
}

// PruneResult names the backup directories Prune kept and removed.
type PruneResult struct {
	Kept, Removed []string
}

// incompleteGrace is how old a backup without manifest.sig must be before
// Prune removes it (it may still be arriving).
const incompleteGrace = 24 * time.Hour

// Prune applies p to the backups in dir (the receiver's directory or a
// local target) at time now, removing what p does not keep unless dryRun;
// it also removes the receiver's temp files of uploads older than a day
// (a receiver killed mid-upload).
// It runs on the backup host, by the operator: Vigil's server never has
// the rights it needs. Entries that are not backup directories are left
// alone; a backup without a signature is removed only when it is older
// than the newest complete one and than a day.
func Prune(dir string, now time.Time, p Policy, dryRun bool) (PruneResult, error) {
	if p.Daily < 0 || p.Weekly < 0 || p.Daily+p.Weekly == 0 {
		return PruneResult{}, errors.New("prune backups: keep at least one daily or weekly backup")
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return PruneResult{}, fmt.Errorf("prune backups: %w", err)
	}
	type bk struct {
		name     string
		at       time.Time
		complete bool
	}
	var all []bk
	for _, e := range ents {
		if !e.IsDir() || !backupName.MatchString(e.Name()) {
			continue
		}
		at, err := time.Parse("20060102T150405Z", e.Name()[len("vigil-"):len("vigil-")+16])
		if err != nil {
			continue
		}
		_, serr := os.Lstat(filepath.Join(dir, e.Name(), backup.SignatureFile))
		all = append(all, bk{name: e.Name(), at: at, complete: serr == nil})
	}
	// Newest first; equal times by name.
	slices.SortFunc(all, func(a, b bk) int {
		if c := b.at.Compare(a.at); c != 0 {
			return c
		}
		if a.name > b.name {
			return -1
		}
		return 1
	})
	keep := map[string]bool{}
	days, weeks := map[string]bool{}, map[string]bool{}
	var newest time.Time
	for _, b := range all {
		if !b.complete {
			continue
		}
		if newest.IsZero() {
			newest = b.at
			keep[b.name] = true
		}
		day := b.at.UTC().Format("2006-01-02")
		if !days[day] && len(days) < p.Daily {
			days[day] = true
			keep[b.name] = true
		}
		y, w := b.at.UTC().ISOWeek()
		week := fmt.Sprintf("%d-W%02d", y, w)
		if !weeks[week] && len(weeks) < p.Weekly {
			weeks[week] = true
			keep[b.name] = true
		}
	}
	var res PruneResult
	// Uploads a receiver was killed in the middle of.
	if inc, err := os.ReadDir(filepath.Join(dir, incomingDir)); err == nil {
		for _, e := range inc {
			fi, err := e.Info()
			if err != nil || !fi.Mode().IsRegular() || now.Sub(fi.ModTime()) <= incompleteGrace {
				continue
			}
			if !dryRun {
				if err := os.Remove(filepath.Join(dir, incomingDir, e.Name())); err != nil {
					return res, fmt.Errorf("prune backups: %w", err)
				}
			}
			res.Removed = append(res.Removed, incomingDir+"/"+e.Name())
		}
	}
	for _, b := range all {
		drop := !keep[b.name]
		if !b.complete {
			drop = !newest.IsZero() && b.at.Before(newest) && now.Sub(b.at) > incompleteGrace
		}
		if !drop {
			res.Kept = append(res.Kept, b.name)
			continue
		}
		if !dryRun {
			if err := os.RemoveAll(filepath.Join(dir, b.name)); err != nil {
				return res, fmt.Errorf("prune backups: remove %s: %w", b.name, err)
			}
		}
		res.Removed = append(res.Removed, b.name)
	}
	return res, nil
}
