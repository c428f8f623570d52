package main

import (
	"go/build"
	"io/fs"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The walls between the packages, as the README's layout draws them: each
// package under internal/ may import only the floatip packages below it in
// its own concern, and only the wire and the kernel packages touch sockets
// and netlink. Go refuses a cycle; this keeps the direction and the
// decision core's purity (a new import here is a decision to make in the
// README too).
func TestPackageWalls(t *testing.T) {
	const mod = "floatip/internal/"
	allowed := map[string][]string{
		"event":      nil,
		"pool":       nil,
		"privilege":  nil,
		"fiptest":    nil,
		"wire/frame": nil,
		"wire":       {"wire/frame", "privilege"},
		"system":     {"privilege"},
		"engine":     {"event", "pool", "wire/frame"},
		"operator":   {"event"},
		"status":     {"engine", "event"},
		"daemon":     {"engine", "system", "wire", "wire/frame", "event"},
		"clusterip":  nil,
	}
	// Sockets and netlink: the wire's and the kernel side's alone.
	sideEffects := map[string][]string{
		"github.com/vishvananda/netlink": {"system"},
		"github.com/mdlayher/packet":     {"wire"},
		"github.com/mdlayher/ndp":        {"wire"},
		"github.com/google/nftables":     {"clusterip"},
	}
	// A new package gets its place in the walls (and in the README's map).
	err := filepath.WalkDir("internal", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		if goFiles, _ := filepath.Glob(filepath.Join(path, "*.go")); len(goFiles) > 0 {
			if _, known := allowed[strings.TrimPrefix(path, "internal/")]; !known {
				t.Errorf("%s has no place in the walls: add it to this test and to the README's layout", path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for dir, ok := range allowed {
		p, err := build.ImportDir("internal/"+dir, 0)
		if err != nil {
			t.Fatalf("internal/%s: %v", dir, err)
		}
		for _, imp := range p.Imports {
			if name, ours := strings.CutPrefix(imp, mod); ours && !slices.Contains(ok, name) {
				t.Errorf("internal/%s imports %s: not below it (allowed: %v)", dir, imp, ok)
			}
			for lib, users := range sideEffects {
				if (imp == lib || strings.HasPrefix(imp, lib+"/")) && !slices.Contains(users, dir) {
					t.Errorf("internal/%s imports %s: sockets and netlink belong to %v", dir, imp, users)
				}
			}
		}
	}
}
