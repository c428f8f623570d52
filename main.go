// Command floatip holds floating IPv4 and IPv6 addresses for a group of
// Linux hosts over plain ARP and neighbour discovery: no protocol of its
// own, no config file, no cluster store.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"floatip/internal/clusterip"
	"floatip/internal/daemon"

	"floatip/internal/status"

	"floatip/internal/engine"

	"floatip/internal/system"

	"floatip/internal/wire"

	"floatip/internal/privilege"

	"floatip/internal/operator"

	"floatip/internal/event"

	"github.com/alecthomas/kong"
	"github.com/vishvananda/netlink/nl"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes: the contract of `arping -D` for probe, and one code for every
// error so that scripts and systemd see a failure the same way.
const (
	exitOK    = 0
	exitHeld  = 1 // probe: the address is in use
	exitError = 2
)

type cli struct {
	Run      runCmd           `cmd:"" default:"withargs" help:"Hold floating IPv4 and IPv6 addresses: probe, claim when free, keep, release on exit (the default command)."`
	Probe    probeCmd         `cmd:"" help:"Probe once whether an address is in use; print the holder's MAC or 'free'. Exit 0 free, 1 held, 2 error (as arping -D)."`
	Announce announceCmd      `cmd:"" help:"Send unsolicited ARP for an address this host holds, byte for byte as arping -U (or -A with --reply); for IPv6, unsolicited neighbour advertisements as the kernel sends them."`
	Status   statusCmd        `cmd:"" help:"Show what the floatip daemons running in this network namespace see: per VIP its state, who holds it and, with --spread, who should. Exit 2 when no daemon answers."`
	Version  kong.VersionFlag `help:"Print the version and exit."`
}

type runCmd struct {
	Interface       string        `short:"i" required:"" env:"FLOATIP_INTERFACE" placeholder:"IFACE" help:"Interface on the shared LAN segment. It may be missing or down at start: floatip waits for it."`
	Priority        int           `default:"100" env:"FLOATIP_PRIORITY" help:"Rank of this node, 1..255: when the holder dies, the highest-priority live standby takes over (ties: lowest MAC)."`
	Interval        time.Duration `default:"200ms" env:"FLOATIP_INTERVAL" help:"Probe interval of a standby. Detection takes about misses x interval."`
	Misses          int           `default:"3" env:"FLOATIP_MISSES" help:"The VIP is free after this many probe intervals without an answer (after the first miss, re-probes go out 4x faster)."`
	AnnounceCount   int           `default:"5" env:"FLOATIP_ANNOUNCE_COUNT" help:"Unsolicited ARP rounds (IPv6: neighbour advertisements) sent after a claim, the first at once."`
	AnnounceSpacing time.Duration `default:"1.1s" env:"FLOATIP_ANNOUNCE_SPACING" help:"Time between those rounds; at least 1.1s (Linux ignores a second update within its 1s locktime)."`
	AnnounceForm    string        `default:"request" enum:"request,reply,both" env:"FLOATIP_ANNOUNCE_FORM" help:"Form of the IPv4 announcements: request (as arping -U), reply (as arping -A), or both. IPv6 announcements are always unsolicited NAs with the Override flag."`
	Refresh         time.Duration `default:"100s" env:"FLOATIP_REFRESH" help:"While active, re-announce this often so switch MAC tables (often 300s) never age out; 0 turns it off."`
	Reference       []string      `env:"FLOATIP_REFERENCE" placeholder:"IP" help:"A host that a healthy node can reach on the interface (repeatable); a standby that reaches none of them is the one cut off and never claims, and a holder that hears none of them and no other floatip node for 3s gives the VIP up. Default: the gateway of the default route through IFACE, if any."`
	NoReference     bool          `env:"FLOATIP_NO_REFERENCE" help:"Ask no reference host, neither before claiming nor while holding (not even the default gateway)."`
	Preempt         bool          `env:"FLOATIP_PREEMPT" help:"Take the VIP back from a lower-priority holder (after --preempt-delay), with one make-before-break handover. Off: a holder keeps the VIP until it fails. Not with --spread."`
	PreemptDelay    time.Duration `default:"5s" env:"FLOATIP_PREEMPT_DELAY" help:"With --preempt: how long this node must have seen the lower-priority holder, continuously, before it takes over."`
	Label           string        `env:"FLOATIP_LABEL" help:"Address label for the VIPs, at most 15 bytes, starting with the interface name (default IFACE:fip when that fits)."`
	Check           string        `env:"FLOATIP_CHECK" placeholder:"CMD" help:"Health check, run every --check-interval (argv, no shell: write sh -c '...' for one). A node whose check fails does not claim; a holder whose check fails hands the VIP to a healthy standby."`
	CheckInterval   time.Duration `default:"2s" env:"FLOATIP_CHECK_INTERVAL" help:"Time between two runs of --check."`
	CheckTimeout    time.Duration `default:"1s" env:"FLOATIP_CHECK_TIMEOUT" help:"A --check run taking longer has failed (its process group is killed)."`
	Rise            int           `default:"2" env:"FLOATIP_RISE" help:"Consecutive passing checks that make a node healthy."`
	Fall            int           `default:"2" env:"FLOATIP_FALL" help:"Consecutive failing checks that make a node unhealthy."`
	OnUp            string        `env:"FLOATIP_ON_UP" placeholder:"CMD" help:"Run when this node takes a VIP (asynchronously; FLOATIP_STATE, FLOATIP_PREVIOUS_STATE, FLOATIP_VIP, FLOATIP_INTERFACE, FLOATIP_HOLDER, FLOATIP_REASON in its environment)."`
	OnDown          string        `env:"FLOATIP_ON_DOWN" placeholder:"CMD" help:"Run when this node gives a VIP up."`
	OnChange        string        `env:"FLOATIP_ON_CHANGE" placeholder:"CMD" help:"Run on every state change of a VIP."`
	HookTimeout     time.Duration `default:"30s" env:"FLOATIP_HOOK_TIMEOUT" help:"A hook running longer is killed; hooks never delay a failover."`
	Fence           string        `env:"FLOATIP_FENCE" placeholder:"CMD" help:"Fencing (STONITH) step, run before claiming a VIP whose holder went silent; the claim goes ahead only if it exits 0. Same environment as the hooks."`
	FenceTimeout    time.Duration `default:"30s" env:"FLOATIP_FENCE_TIMEOUT" help:"A fencing run taking longer has failed."`
	ResetConns      bool          `name:"reset-connections" default:"true" negatable:"" env:"FLOATIP_RESET_CONNECTIONS" help:"On every release of a VIP, first reset its TCP connections (as ss -K), so that clients idle on them learn at once that it moved; --no-reset-connections leaves them to their own timeouts."`
	MetricsListen   string        `env:"FLOATIP_METRICS_LISTEN" placeholder:"ADDR" help:"Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9810). Off by default."`
	LogLevel        string        `default:"info" enum:"debug,info,warn,error" env:"FLOATIP_LOG_LEVEL" help:"Log level: debug, info, warn or error."`
	LogFormat       string        `default:"text" enum:"text,json" env:"FLOATIP_LOG_FORMAT" help:"Log format: text (logfmt) or json."`
	Spread          bool          `env:"FLOATIP_SPREAD" help:"Pool mode (active-active): spread the VIPs over every healthy node, ⌊M/N⌋ or ⌈M/N⌉ each (weighted by --priority), instead of all going to the best node; a dead node's VIPs move to the survivors, and no other VIP moves. Run the same line on every node."`
	PoolHoldDown    time.Duration `default:"5s" env:"FLOATIP_POOL_HOLD_DOWN" help:"With --spread or --share: a node (re)joining the pool takes its share only after being heard continuously this long, so a flapping node moves nothing."`
	Share           []string      `env:"FLOATIP_SHARE" placeholder:"ADDR" help:"A shared IPv4 address (repeatable), served by every healthy node at once, as the removed CLUSTERIP target did: it is answered with a multicast MAC, every node receives every packet, and each keeps the flows whose hash falls into its buckets. A dead node's buckets move to the survivors. Run the same line on every node."`
	Hash            string        `default:"source" enum:"source,source-port,source-port-dest-port" env:"FLOATIP_HASH" help:"With --share: what the flow hash covers: source (one client's flows stay on one node; CLUSTERIP's sourceip), source-port (sourceip-sourceport) or source-port-dest-port (sourceip-sourceport-destport)."`
	Buckets         int           `default:"64" env:"FLOATIP_BUCKETS" help:"With --share: how many buckets the flow hash is cut into, 2..1024; the same on every node. Each node serves about buckets/nodes of them."`
	Drain           time.Duration `default:"2m" env:"FLOATIP_DRAIN" help:"With --share: when a bucket moves by plan (a node joins), its old node keeps serving the bucket's established TCP connections this long while the new node takes the new ones; 0 moves them at once. UDP moves at once."`
	VIPs            []string      `arg:"" optional:"" name:"vip" help:"Floating IPv4 and/or IPv6 address(es) to hold, each handled independently; a range A-B (IPv4) stands for every address from A to B."`
}

// env is what a command needs from the world outside it.
type env struct {
	ctx    context.Context
	stdout io.Writer
	stderr io.Writer
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// kongExit carries kong's exit code (after --help or --version) out of Parse.
type kongExit struct{ code int }

// run parses args and runs the command; it returns the exit code. Every
// error becomes one line on stderr: no stack trace reaches an operator.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(kongExit); ok {
				code = e.code
				return
			}
			fmt.Fprintf(stderr, "floatip: internal error: %v\n", r)
			code = exitError
		}
	}()
	var c cli
	parser, err := newParser(&c, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "floatip: %v\n", err)
		return exitError
	}
	kctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "floatip: error: %v\n", err)
		return exitError
	}
	e := &env{ctx: ctx, stdout: stdout, stderr: stderr}
	switch cmd := kctx.Selected().Target.Addr().Interface().(type) {
	case *runCmd:
		err = cmd.run(e)
	case *probeCmd:
		var held bool
		held, err = cmd.run(e)
		if err == nil && held {
			return exitHeld
		}
	case *announceCmd:
		err = cmd.run(e)
	case *statusCmd:
		err = cmd.run(e)
	default:
		err = fmt.Errorf("unknown command %q", kctx.Command())
	}
	if err != nil {
		fmt.Fprintf(stderr, "floatip: %v\n", err)
		return exitError
	}
	return exitOK
}

// newParser builds the command-line parser. kong's exit (after --help or
// --version) unwinds as a kongExit panic that run recovers, so tests can
// parse in-process.
func newParser(c *cli, stdout, stderr io.Writer) (*kong.Kong, error) {
	return kong.New(c,
		kong.Name("floatip"),
		kong.Description("Hold a floating IPv4 or IPv6 address for a group of Linux hosts over plain ARP and neighbour discovery."),
		kong.Vars{"version": "floatip " + version},
		kong.Writers(stdout, stderr),
		kong.Exit(func(code int) { panic(kongExit{code}) }),
		kong.Help(helpPrinter),
		kong.ConfigureHelp(kong.HelpOptions{WrapUpperBound: 100}),
	)
}

// helpPrinter shows the daemon's flags for a bare `floatip --help`: most
// operators never type `run`, so its flags are the manual they need.
func helpPrinter(options kong.HelpOptions, ctx *kong.Context) error {
	if ctx.Selected() != nil {
		return kong.DefaultHelpPrinter(options, ctx)
	}
	runCtx, err := kong.Trace(ctx.Kong, []string{"run"})
	if err != nil {
		return kong.DefaultHelpPrinter(options, ctx)
	}
	w := ctx.Stdout
	fmt.Fprintln(w, "floatip: hold a floating IPv4 or IPv6 address for a group of Linux hosts over plain ARP and neighbour discovery.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run the same line on every host, e.g.   floatip -i eth0 192.0.2.50")
	fmt.Fprintln(w, "Exactly one host holds the address; when it dies, the best standby takes over.")
	fmt.Fprintln(w, "Every flag of run can also be set by its FLOATIP_* environment variable.")
	fmt.Fprintln(w)
	if err := kong.DefaultHelpPrinter(options, runCtx); err != nil {
		return err
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Other commands:")
	fmt.Fprintln(w, "  floatip probe -i IFACE VIP       is VIP in use? prints the holder's MAC or 'free'; exit 0 free, 1 held, 2 error")
	fmt.Fprintln(w, "  floatip announce -i IFACE VIP    unsolicited ARP for a held address, as arping -U (--reply: as arping -A); IPv6: unsolicited NA")
	fmt.Fprintln(w, "  floatip status [-i IFACE]        what the running daemons see: per VIP its state, holder and (--spread) assignee; --json")
	fmt.Fprintln(w, "  floatip <command> --help         the flags of a command;  floatip --version")
	return nil
}

func newLogger(w io.Writer, level slog.Level, json bool) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if json {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func (r *runCmd) run(e *env) error {
	// At once: SIGHUP's default would end the process and leave its VIPs
	// behind (a reload requested while this program starts).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	cfg, err := r.config()
	if err != nil {
		return err
	}
	if err := privilege.Check(); err != nil {
		return err
	}
	nl.EnableErrorMessageReporting = true
	if err := system.CheckIPv6Enabled(cfg.ifname, cfg.vips); err != nil {
		return err
	}
	if err := checkShared(cfg); err != nil {
		return err
	}
	if os.Getenv("GOMAXPROCS") == "" {
		// The daemon's work is one loop; a second P only makes the runtime
		// wake idle threads to look for work on every frame and timer,
		// which is most of an idle daemon's CPU time (issue 14).
		runtime.GOMAXPROCS(1)
	}
	log := newLogger(e.stderr, cfg.level, cfg.jsonLogs).With("interface", cfg.ifname)
	handed := takeHandOver(log)
	for {
		onInterface, err := system.CheckExistingAddresses(cfg.ifname, cfg.vips)
		if err != nil {
			return err
		}
		// Listen before anything else happens, so a busy port is a clean error.
		var metricsListener net.Listener
		if cfg.metricsListen != nil {
			if metricsListener, err = net.ListenTCP("tcp", cfg.metricsListen); err != nil {
				return fmt.Errorf("--metrics-listen: %w", err)
			}
		}
		log.Info("floatip starting", "version", version, "vips", fmt.Sprint(cfg.vips), "priority", cfg.machine.Priority,
			"interval", cfg.machine.Interval.String(), "misses", cfg.machine.Misses)
		if handed != nil {
			log.Info("reloaded: taking back the VIPs held before", "held", fmt.Sprint(handed.Held))
		}
		control := status.ListenControl(cfg.ifname, log)
		next, err := runDaemon(e.ctx, cfg, startsOf(cfg.vips, onInterface, handed), handed, hup, metricsListener, control, log)
		if err != nil || next == nil {
			return err
		}
		exe, err := reexecutable()
		if err == nil {
			log.Info("reload: executing the binary again", "binary", exe, "held", fmt.Sprint(next.Held))
			err = reexec(exe, next)
		}
		// Still here: carry on with this program, as the new one would.
		log.Error("reload failed: carrying on with the running binary", "err", err)
		handed = next
	}
}

// runDaemon wires the components of a validated run command and runs them
// until ctx ends or a reload (SIGHUP on hup) hands the VIPs over; starts
// says how each VIP begins, handed is the previous program's hand-over
// (nil at a start); control (may be nil) is the control socket for
// `floatip status`. Shutdown order: tell systemd we are stopping (or
// reloading), let every VIP release its address (or keep the held ones for
// the next program), wait for the hooks, then return, with the hand-over
// for the next program on a reload.
func runDaemon(ctx context.Context, cfg *config, starts map[netip.Addr]engine.Start, handed *handOver, hup <-chan os.Signal,
	metricsListener, control net.Listener, log *slog.Logger) (*handOver, error) {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	notifier := operator.NewNotifier(log)
	// The summary of every VIP is built on each change only for systemd:
	// with hundreds of VIPs a claim of all of them would build it hundreds
	// of times for nobody.
	var statusUpdate func(string)
	if notifier != nil {
		statusUpdate = notifier.Post
	}
	board := status.NewBoard(statusUpdate)
	met := status.NewMetrics(version, log)
	hooks := operator.NewHookRunner(cfg.onUp, cfg.onDown, cfg.onChange, cfg.hookTimeout, log)
	obs := event.Observers{board, met, hooks}

	port := &wire.Port{}
	group := engine.NewGroup(cfg.machine, port, log)
	d := daemon.New(cfg.ifname, log, port, group)
	for _, ip := range append(slices.Clone(cfg.vips), cfg.references...) {
		if ip.Is6() {
			d.IPv6 = append(d.IPv6, ip)
		}
	}
	var refs engine.Reachability = engine.EverReachable{}
	if !cfg.noReference {
		d.Refs = daemon.NewReferences(cfg.ifname, cfg.references, len(d.IPv6) > 0, port, engine.FastSpacing(cfg.machine.Interval), log)
		refs = d.Refs
	}
	// A health check gates claims: the node starts unhealthy until it
	// passes, or as healthy as the program before a reload.
	startHealthy := handed != nil && handed.Healthy
	addMachines(cfg, starts, cfg.check != nil && !startHealthy, d, group, port, refs, obs, log)
	if cfg.spread {
		engine.NewPoolView(group, cfg.vips, cfg.poolHoldDown)
	}
	if len(cfg.shared) > 0 {
		path, err := openSharedPath(cfg, &d.Index, log)
		if err != nil {
			return nil, err
		}
		defer func() {
			if err := path.Close(); err != nil {
				log.Error("shared address: cleaning up", "err", err)
			}
		}()
		view := engine.NewSharedView(group, engine.SharedConfig{Addrs: cfg.shared, ClusterMAC: clusterip.ClusterMAC,
			Buckets: cfg.buckets, HoldDown: cfg.poolHoldDown, Drain: cfg.drain, Table: path, Send: port, Refs: refs,
			RenewOffLoop: true})
		view.SetInitialHealth(cfg.check == nil || startHealthy)
		met.SetShared(path.stats)
		log.Info("serving shared addresses", "addresses", fmt.Sprint(cfg.shared), "buckets", cfg.buckets,
			"hash", cfg.hash.String(), "cluster_mac", clusterip.ClusterMAC(cfg.shared[0]).String())
	}

	var background sync.WaitGroup
	background.Go(func() { _ = notifier.Run(ctx) })
	if metricsListener != nil {
		log.Info("serving metrics", "address", "http://"+metricsListener.Addr().String()+"/metrics")
		background.Go(func() {
			if err := met.Serve(ctx, metricsListener); err != nil {
				log.Error("metrics endpoint stopped", "err", err)
			}
		})
	}
	if control != nil {
		srv := status.NewHTTPServer(status.NewServer(cfg.ifname, version, d.Call, group.Facts, board).Handler(), log)
		background.Go(func() {
			if err := status.ServeHTTP(ctx, srv, control, "control socket"); err != nil {
				log.Error("control socket stopped", "err", err)
			}
		})
	}
	if cfg.check != nil {
		check := operator.NewHealthCheck(cfg.check, cfg.checkInterval, cfg.checkTimeout, cfg.rise, cfg.fall, startHealthy, log)
		background.Go(func() {
			err := check.Run(ctx, func(healthy bool) { d.SetHealthy(ctx, healthy) })
			if err != nil {
				log.Error("health check stopped", "err", err)
			}
		})
	}
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	var next *handOver // set on a reload, read after background.Wait
	background.Go(func() {
		for {
			select {
			case <-ctx.Done():
				if next == nil {
					_ = notifier.Stopping()
				}
				return
			case <-usr1:
				for _, line := range board.Lines() {
					log.Info("status: " + line)
				}
			case <-hup:
				if _, err := reexecutable(); err != nil {
					log.Error("reload refused: the binary cannot be executed; carrying on", "err", err)
					continue
				}
				log.Info("reload requested: handing the held VIPs over to the binary file's program")
				_ = notifier.Reloading()
				held, healthy, ok := d.HandOver(ctx)
				if ok {
					next = &handOver{Held: held, Healthy: healthy}
				}
				stop()
			}
		}
	})

	_ = notifier.Ready()
	err := d.Run(ctx)
	hooks.Wait()
	background.Wait()
	if err == nil && next != nil {
		return next, nil
	}
	log.Info("floatip stopped")
	return nil, err
}
