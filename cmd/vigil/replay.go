package main

import (
	"fmt"
	"os"
	"path/filepath"

	"vigil/internal/fall/sisfall"
	"vigil/internal/sim"
)

// loadReplays reads recordings for the simulator to replay as motion
// streams: path is one SisFall file (in its subject folder) or a
// SisFall-format folder, from which n recordings are taken, falls and
// daily activities alternating, spread over the subjects.
func loadReplays(path string, n int) ([]sim.Recording, error) {
	if path == "" || n <= 0 {
		return nil, nil
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	var files []sisfall.File
	if fi.IsDir() {
		all, err := sisfall.List(path)
		if err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
		var falls, adls []sisfall.File
		for _, f := range all {
			if f.Fall() {
				falls = append(falls, f)
			} else {
				adls = append(adls, f)
			}
		}
		pick := func(fs []sisfall.File, k int) sisfall.File { return fs[(k*7919)%len(fs)] }
		for i := 0; i < n && len(falls)+len(adls) > 0; i++ {
			switch {
			case (i%2 == 0 || len(adls) == 0) && len(falls) > 0:
				files = append(files, pick(falls, i/2))
			default:
				files = append(files, pick(adls, i/2))
			}
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("replay: no SisFall recordings under %s", path)
		}
	} else {
		rec, err := sisfall.LoadPath(path)
		if err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
		return []sim.Recording{{Name: rec.Subject + "/" + filepath.Base(path), Fall: rec.Fall(), Samples: rec.Samples}}, nil
	}
	out := make([]sim.Recording, 0, len(files))
	for _, f := range files {
		rec, err := sisfall.Load(f)
		if err != nil {
			return nil, fmt.Errorf("replay: %w", err)
		}
		out = append(out, sim.Recording{Name: f.Subject + "/" + filepath.Base(f.Path), Fall: f.Fall(), Samples: rec.Samples})
	}
	return out, nil
}
