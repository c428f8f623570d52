package fiptest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The programs the lab runs, built once per test process from the module root.

// RemoveBuilds deletes the binaries built for this test process.
func RemoveBuilds() {
	builds.mu.Lock()
	defer builds.mu.Unlock()
	if builds.dir != "" {
		_ = os.RemoveAll(builds.dir)
	}
}

// builds holds the binaries built once per test run (the only state tests share).
var builds struct {
	mu        sync.Mutex
	dir       string
	floatip   onceBuild
	udpecho   onceBuild
	arpflood  onceBuild
	tcpidle   onceBuild
	flowcheck onceBuild
	versions  map[string]*onceBuild // floatip stamped with another version
}

type onceBuild struct {
	once sync.Once
	path string
	err  error
}

func goBuild(b *onceBuild, name, pkg string, ldflags ...string) (string, error) {
	b.once.Do(func() {
		builds.mu.Lock()
		if builds.dir == "" {
			builds.dir, b.err = os.MkdirTemp("", "floatip-test-bin-")
		}
		dir := builds.dir
		builds.mu.Unlock()
		if b.err != nil {
			return
		}
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = "/usr/local/go/bin/go"
		}
		out := filepath.Join(dir, name)
		args := []string{"build", "-trimpath", "-o", out}
		if len(ldflags) > 0 {
			args = append(args, "-ldflags", strings.Join(ldflags, " "))
		}
		args = append(args, pkg)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goTool, args...)
		cmd.Dir = ModuleRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if msg, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, msg)
			return
		}
		b.path = out
	})
	return b.path, b.err
}

// buildFloatip builds the floatip binary (once per test run) and returns its path.
func buildFloatip(t *testing.T) string {
	t.Helper()
	p, err := goBuild(&builds.floatip, "floatip", ".", "-s", "-w")
	if err != nil {
		t.Fatalf("building floatip: %v", err)
	}
	return p
}

// BuildFloatipVersion builds floatip stamped with version (once per test
// run and version): a newer binary for a test that replaces a running
// daemon's file.
func BuildFloatipVersion(t *testing.T, version string) string {
	t.Helper()
	builds.mu.Lock()
	if builds.versions == nil {
		builds.versions = map[string]*onceBuild{}
	}
	b := builds.versions[version]
	if b == nil {
		b = &onceBuild{}
		builds.versions[version] = b
	}
	builds.mu.Unlock()
	p, err := goBuild(b, "floatip-"+version, ".", "-s", "-w", "-X", "main.version="+version)
	if err != nil {
		t.Fatalf("building floatip %s: %v", version, err)
	}
	return p
}

// BuildUDPEcho builds lab/udpecho (once per test run) and returns its path.
func BuildUDPEcho(t *testing.T) string { return buildLabProgram(t, &builds.udpecho, "udpecho") }

// BuildARPFlood builds lab/arpflood (once per test run) and returns its path.
func BuildARPFlood(t *testing.T) string { return buildLabProgram(t, &builds.arpflood, "arpflood") }

// BuildTCPIdle builds lab/tcpidle (once per test run) and returns its path.
func BuildTCPIdle(t *testing.T) string { return buildLabProgram(t, &builds.tcpidle, "tcpidle") }

// BuildFlowCheck builds lab/flowcheck (once per test run) and returns its path.
func BuildFlowCheck(t *testing.T) string { return buildLabProgram(t, &builds.flowcheck, "flowcheck") }

// buildLabProgram builds lab/NAME once per test run.
func buildLabProgram(t *testing.T, b *onceBuild, name string) string {
	t.Helper()
	p, err := goBuild(b, name, "./lab/"+name)
	if err != nil {
		t.Fatalf("building %s: %v", name, err)
	}
	return p
}

// ModuleRoot is the directory of floatip's go.mod, found from the working
// directory up: go test runs each package in its own directory, and the lab
// script and the programs to build are named from the root.
func ModuleRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		panic(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.HasPrefix(string(b), "module floatip\n") {
			return d
		}
		if filepath.Dir(d) == d {
			panic("no floatip go.mod above " + dir)
		}
	}
}
