package main

import (
	"bytes"
	"context"
	"io"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"floatip/internal/engine"
	"floatip/internal/wire/frame"

	"floatip/internal/wire"

	"floatip/internal/fiptest"
)

// runCLI runs the command line in-process and returns exit code and output.
func runCLI(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// TestBadInput: every bad input is one clear line on stderr, exit 2, and
// happens before anything touches the host (no root is needed to see it).
func TestBadInput(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"not an address", []string{"-i", "eth0", "192.0.2.300"}, `"192.0.2.300" is not an IP address`},
		{"hostname", []string{"-i", "eth0", "vip.example"}, "is not an IP address"},
		{"IPv6 link-local", []string{"-i", "eth0", "fe80::50"}, "link-local"},
		{"IPv6 multicast", []string{"-i", "eth0", "ff02::1:ff00:50"}, "multicast"},
		{"IPv6 unspecified", []string{"-i", "eth0", "::"}, "unspecified"},
		{"IPv6 loopback", []string{"-i", "eth0", "::1"}, "loopback"},
		{"IPv6 zone", []string{"-i", "eth0", "2001:db8::50%eth0"}, "has a zone"},
		{"IPv4-compatible", []string{"-i", "eth0", "::192.0.2.50"}, "::/96"},
		{"mixed list with a typo", []string{"-i", "eth0", "192.0.2.50", "2001:db8::50", "2001:db8::5g"}, `"2001:db8::5g" is not an IP address`},
		{"IPv6 duplicate", []string{"-i", "eth0", "2001:db8::50", "2001:db8:0::50"}, "given twice"},
		{"multicast", []string{"-i", "eth0", "224.0.0.18"}, "multicast"},
		{"broadcast", []string{"-i", "eth0", "255.255.255.255"}, "broadcast address"},
		{"loopback", []string{"-i", "eth0", "127.0.0.5"}, "loopback"},
		{"unspecified", []string{"-i", "eth0", "0.0.0.0"}, "unspecified"},
		{"this network", []string{"-i", "eth0", "0.1.2.3"}, "0.0.0.0/8"},
		{"reserved", []string{"-i", "eth0", "240.0.0.1"}, "reserved"},
		{"duplicate", []string{"-i", "eth0", "192.0.2.50", "192.0.2.50"}, "given twice"},
		{"no vip", []string{"-i", "eth0"}, "no address given"},
		{"shared and floated", []string{"-i", "eth0", "--share", "192.0.2.80", "192.0.2.80"}, "both a VIP and --share"},
		{"shared IPv6", []string{"-i", "eth0", "--share", "2001:db8::80"}, "shared IPv6 address is not supported"},
		{"shared twice", []string{"-i", "eth0", "--share", "192.0.2.80", "--share", "192.0.2.80"}, "given twice"},
		{"shared multicast", []string{"-i", "eth0", "--share", "239.0.2.80"}, "multicast"},
		{"one bucket", []string{"-i", "eth0", "--share", "192.0.2.80", "--buckets", "1"}, "--buckets 1 is out of range 2..1024"},
		{"bad hash", []string{"-i", "eth0", "--share", "192.0.2.80", "--hash", "dest"}, "--hash"},
		{"negative drain", []string{"-i", "eth0", "--share", "192.0.2.80", "--drain=-1s"}, "--drain -1s is out of range"},
		{"no interface", []string{"192.0.2.50"}, "missing flags: --interface"},
		{"bad interface name", []string{"-i", "eth0/1", "192.0.2.50"}, "not a valid interface name"},
		{"label too long", []string{"-i", "eth0", "--label", "eth0:floatingvip", "192.0.2.50"}, "at most 15"},
		{"label without interface prefix", []string{"-i", "eth0", "--label", "vip", "192.0.2.50"}, "must start with the interface name"},
		{"priority zero", []string{"-i", "eth0", "--priority", "0", "192.0.2.50"}, "--priority 0 is out of range 1..255"},
		{"priority too high", []string{"-i", "eth0", "--priority", "256", "192.0.2.50"}, "out of range 1..255"},
		{"interval too short", []string{"-i", "eth0", "--interval", "1ms", "192.0.2.50"}, "--interval 1ms is out of range"},
		{"misses zero", []string{"-i", "eth0", "--misses", "0", "192.0.2.50"}, "--misses 0"},
		{"announce spacing below locktime", []string{"-i", "eth0", "--announce-spacing", "500ms", "192.0.2.50"}, "below 1.1s"},
		{"bad form", []string{"-i", "eth0", "--announce-form", "loud", "192.0.2.50"}, "announce-form"},
		{"probe IPv6 loopback", []string{"probe", "-i", "eth0", "::1"}, "loopback"},
		{"probe IPv6 link-local", []string{"probe", "-i", "eth0", "fe80::1"}, "link-local"},
		{"announce IPv6 multicast", []string{"announce", "-i", "eth0", "ff02::1"}, "multicast"},
		{"announce IPv6 reply form", []string{"announce", "-i", "eth0", "--reply", "2001:db8::50"}, "--reply is an ARP form"},
		{"reference IPv6 multicast", []string{"-i", "eth0", "--reference", "ff02::2", "2001:db8::50"}, "--reference: ff02::2 is a multicast"},
		{"announce multicast", []string{"announce", "-i", "eth0", "239.1.1.1"}, "multicast"},
		{"unknown flag", []string{"-i", "eth0", "--frobnicate", "192.0.2.50"}, "unknown flag --frobnicate"},
		{"reference is a VIP", []string{"-i", "eth0", "--reference", "192.0.2.50", "192.0.2.50"}, "is one of the VIPs"},
		{"reference not unicast", []string{"-i", "eth0", "--reference", "224.0.0.1", "192.0.2.50"}, "--reference: 224.0.0.1 is a multicast"},
		{"reference and no reference", []string{"-i", "eth0", "--reference", "192.0.2.1", "--no-reference", "192.0.2.50"}, "contradict"},
		{"preempt in a pool", []string{"-i", "eth0", "--spread", "--preempt", "192.0.2.50-192.0.2.53"}, "--preempt has no effect with --spread"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCLI(t, nil, tc.args...)
			if code != exitError {
				t.Errorf("exit code %d, want %d", code, exitError)
			}
			if !strings.Contains(stderr, tc.want) {
				t.Errorf("stderr %q does not say %q", stderr, tc.want)
			}
			if lines := strings.Count(strings.TrimRight(stderr, "\n"), "\n") + 1; lines != 1 {
				t.Errorf("stderr has %d lines, want one:\n%s", lines, stderr)
			}
			if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
				t.Errorf("stack trace on stderr:\n%s", stderr)
			}
		})
	}
}

func TestBadInputFromEnvironment(t *testing.T) {
	code, _, stderr := runCLI(t, map[string]string{"FLOATIP_PRIORITY": "300"}, "-i", "eth0", "192.0.2.50")
	if code != exitError || !strings.Contains(stderr, "--priority 300") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestHelpAndVersion(t *testing.T) {
	code, stdout, _ := runCLI(t, nil, "--help")
	if code != exitOK {
		t.Fatalf("--help exit %d", code)
	}
	// A bare --help is the daemon's manual: its flags, their defaults and
	// their environment variables must be there.
	for _, want := range []string{"floatip -i eth0 192.0.2.50", "--priority=100", "--interval=200ms", "--misses=3",
		"--announce-form", "--label", "$FLOATIP_INTERVAL", "floatip probe", "floatip announce"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--help does not mention %q", want)
		}
	}
	code, stdout, _ = runCLI(t, nil, "--version")
	if code != exitOK || !strings.HasPrefix(stdout, "floatip ") {
		t.Fatalf("--version: exit %d, %q", code, stdout)
	}
}

// parseRun parses a run command line into its validated config.
func parseRun(t *testing.T, args ...string) *config {
	t.Helper()
	var c cli
	var out bytes.Buffer
	parser, err := newParser(&c, &out, &out)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parser.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	cfg, err := c.Run.config()
	if err != nil {
		t.Fatalf("config %v: %v", args, err)
	}
	return cfg
}

func TestRunDefaults(t *testing.T) {
	// `run` is the default command: the rc.local one-liner.
	cfg := parseRun(t, "-i", "eth0", "192.0.2.50", "198.51.100.7")
	want := engine.Config{Priority: 100, Interval: 200 * time.Millisecond, Misses: 3, AnnounceCount: 5,
		AnnounceSpacing: 1100 * time.Millisecond, AnnounceForm: frame.FormRequest, Refresh: 100 * time.Second,
		PreemptDelay: 5 * time.Second}
	if cfg.machine != want {
		t.Errorf("defaults %+v, want %+v", cfg.machine, want)
	}
	if cfg.label != "eth0:fip" {
		t.Errorf("default label %q", cfg.label)
	}
	if len(cfg.vips) != 2 || cfg.vips[1] != netip.MustParseAddr("198.51.100.7") {
		t.Errorf("vips %v", cfg.vips)
	}
	if !cfg.resetConns {
		t.Error("connection reset is off by default")
	}
	if cfg := parseRun(t, "-i", "eth0", "--no-reset-connections", "192.0.2.50"); cfg.resetConns {
		t.Error("--no-reset-connections did not turn it off")
	}
	t.Setenv("FLOATIP_RESET_CONNECTIONS", "false")
	if cfg := parseRun(t, "-i", "eth0", "192.0.2.50"); cfg.resetConns {
		t.Error("FLOATIP_RESET_CONNECTIONS=false did not turn it off")
	}
	// A long interface name leaves no room for the default label.
	if cfg := parseRun(t, "-i", "enp0s31f6.1000", "192.0.2.50"); cfg.label != "" {
		t.Errorf("label for a long interface name: %q", cfg.label)
	}
}

func TestRunFlagsAndEnvironment(t *testing.T) {
	t.Setenv("FLOATIP_INTERFACE", "bond0")
	t.Setenv("FLOATIP_INTERVAL", "20ms")
	cfg := parseRun(t, "--priority", "250", "--announce-form", "both", "--label", "bond0:db", "run", "192.0.2.50")
	if cfg.ifname != "bond0" || cfg.machine.Interval != 20*time.Millisecond || cfg.machine.Priority != 250 ||
		cfg.machine.AnnounceForm != frame.FormBoth || cfg.label != "bond0:db" {
		t.Errorf("got %+v", cfg)
	}
	// The command line beats the environment.
	if cfg := parseRun(t, "-i", "eth1", "192.0.2.50"); cfg.ifname != "eth1" {
		t.Errorf("interface %q, want the flag's eth1", cfg.ifname)
	}
}

func TestParseVIPAcceptsUnicast(t *testing.T) {
	for _, s := range []string{"192.0.2.50", "198.51.100.1", "203.0.113.254", "::ffff:192.0.2.9"} {
		a, err := parseVIP(s)
		if err != nil || !a.Is4() {
			t.Errorf("parseVIP(%q) = %v, %v", s, a, err)
		}
	}
	for _, s := range []string{"2001:db8::50", "2001:DB8:0:0::1", "fd00::5"} {
		a, err := parseVIP(s)
		if err != nil || !a.Is6() {
			t.Errorf("parseVIP(%q) = %v, %v", s, a, err)
		}
	}
	// A reference host may be an IPv6 router's link-local address.
	if a, err := parseHostAddr("fe80::1"); err != nil || a != netip.MustParseAddr("fe80::1") {
		t.Errorf("parseHostAddr(fe80::1) = %v, %v", a, err)
	}
}

// TestParseMixedRun: one invocation holds IPv4 and IPv6 VIPs.
func TestParseMixedRun(t *testing.T) {
	cfg := parseRun(t, "-i", "eth0", "192.0.2.50", "2001:db8::50", "--reference", "2001:db8::1")
	if len(cfg.vips) != 2 || !cfg.vips[0].Is4() || cfg.vips[1] != netip.MustParseAddr("2001:db8::50") {
		t.Errorf("vips %v", cfg.vips)
	}
	if len(cfg.references) != 1 || !cfg.references[0].Is6() {
		t.Errorf("references %v", cfg.references)
	}
}

func TestParseListenAddr(t *testing.T) {
	for in, want := range map[string]string{"127.0.0.1:9810": "127.0.0.1:9810", ":9810": ":9810", "[::1]:9810": "[::1]:9810"} {
		got, err := parseListenAddr(in)
		if err != nil || got.String() != want {
			t.Errorf("parseListenAddr(%q) = %v, %v", in, got, err)
		}
	}
	for _, bad := range []string{"localhost:9810", "127.0.0.1", ":http", ":99999", ""} {
		if _, err := parseListenAddr(bad); err == nil {
			t.Errorf("parseListenAddr(%q) accepted", bad)
		}
	}
}

// TestREADMEListsEveryFlag keeps the README's flags table in step with the
// command line: every flag of run, with its environment variable.
func TestREADMEListsEveryFlag(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var c cli
	parser, err := newParser(&c, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, node := range parser.Model.Children {
		if node.Name != "run" {
			continue
		}
		for _, flag := range node.Flags {
			if flag.Name == "help" || flag.Name == "version" {
				continue
			}
			if !bytes.Contains(readme, []byte("`--"+flag.Name+"`")) {
				t.Errorf("README.md does not document --%s", flag.Name)
			}
			for _, env := range flag.Envs {
				short := strings.TrimPrefix(env, "FLOATIP")
				if !bytes.Contains(readme, []byte(env)) && !bytes.Contains(readme, []byte("`"+short+"`")) {
					t.Errorf("README.md does not mention %s", env)
				}
			}
		}
	}
}

func FuzzParseARP(f *testing.F) {
	good, _ := frame.AnnouncePacket(fiptest.MustMAC("02:00:00:00:00:01"), netip.MustParseAddr("192.0.2.50"), true)
	b, _ := good.MarshalBinary()
	f.Add(b)
	f.Fuzz(func(t *testing.T, frame []byte) {
		if p, ok := wire.ParseARP(frame); ok && (!p.SenderIP.Is4() || len(p.SenderHardwareAddr) != 6) {
			t.Errorf("accepted a packet that is not Ethernet/IPv4 ARP: %+v", p)
		}
	})
}
