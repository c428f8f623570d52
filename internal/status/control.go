package status

// The control socket: a running daemon answers `floatip status` on the
// abstract unix socket @floatip/IFACE. An abstract socket belongs to the
// network namespace (each namespace, container or lab host has its own),
// leaves nothing on disk and needs no configuration or file permissions.
// What it serves is read-only and no more than the LAN can see anyway
// (VIPs, MACs, priorities).

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"floatip/internal/engine"
)

// controlPrefix names the control sockets: @floatip/eth0 for eth0's daemon
// (Go's leading @ is Linux's abstract namespace).
const controlPrefix = "@floatip/"

const (
	// LoopTimeout bounds the wait for the interface's loop to build
	// a report (it is busy for far less, even with thousands of VIPs).
	LoopTimeout = 2 * time.Second
	// ClientTimeout bounds the whole exchange on the command's side.
	ClientTimeout = 5 * time.Second
	// statusMaxBody bounds a report read by the command (4096 VIPs are
	// about 1 MB).
	statusMaxBody = 16 << 20
)

func controlAddress(ifname string) string { return controlPrefix + ifname }

// ListenControl opens the daemon's control socket. A taken name means that
// another floatip daemon runs on the same interface in this network
// namespace: a misconfiguration (the two would fight over the VIPs) that is
// logged loudly; this daemon goes on without the socket rather than fail on
// account of a status endpoint. nil: no socket.
func ListenControl(ifname string, log *slog.Logger) net.Listener {
	addr := controlAddress(ifname)
	ln, err := net.Listen("unix", addr)
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		log.Error("another floatip daemon already runs on this interface in this network namespace (two daemons on one interface is a misconfiguration); going on without the control socket, so `floatip status` shows only the other one", "socket", addr)
		return nil
	case err != nil:
		log.Warn("cannot open the control socket; `floatip status` will not see this daemon", "socket", addr, "err", err)
		return nil
	}
	return ln
}

// Server answers GET /status on the control socket with the report
// of its interface, built in the interface's loop.
type Server struct {
	ifname, version string
	// inLoop runs fn in the interface's loop, the only goroutine that may
	// read the group; false when the loop did not take it before ctx ended.
	inLoop func(ctx context.Context, fn func(now time.Time)) bool
	facts  func() engine.Facts // the group's facts; only in the loop
	board  *Board
	// busy lets one report be built at a time: a client asking in a tight
	// loop cannot keep the daemon's loop from its own work.
	busy chan struct{}
}

// NewServer answers for the interface ifname: inLoop runs a function in the
// interface's loop, where facts may be read; board has the VIPs.
func NewServer(ifname, version string, inLoop func(ctx context.Context, fn func(now time.Time)) bool,
	facts func() engine.Facts, board *Board) *Server {
	return &Server{ifname: ifname, version: version, inLoop: inLoop, facts: facts, board: board, busy: make(chan struct{}, 1)}
}

// Handler serves GET /status.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), LoopTimeout)
		defer cancel()
		rep, err := s.report(ctx)
		if err != nil {
			http.Error(w, "the daemon's loop did not answer: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		body, err := json.Marshal(rep)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	return mux
}

// report has the loop build the report.
func (s *Server) report(ctx context.Context) (Report, error) {
	select {
	case s.busy <- struct{}{}:
	case <-ctx.Done():
		return Report{}, ctx.Err()
	}
	defer func() { <-s.busy }()
	out := make(chan Report, 1) // the loop never waits for us
	if !s.inLoop(ctx, func(now time.Time) { out <- buildStatusReport(s.facts(), s.board, s.ifname, s.version, now) }) {
		return Report{}, ctx.Err()
	}
	select {
	case r := <-out:
		return r, nil
	case <-ctx.Done():
		return Report{}, ctx.Err()
	}
}

// ControlInterfaces lists the interfaces with a daemon's control socket in
// this network namespace: the listening sockets named @floatip/... in
// /proc/net/unix (which shows the reader's namespace), or, if that cannot be
// read, every interface (Fetch then tells which have a daemon).
func ControlInterfaces() []string {
	f, err := os.Open("/proc/net/unix")
	if err != nil {
		var names []string
		ifs, _ := net.Interfaces()
		for _, ifi := range ifs {
			names = append(names, ifi.Name)
		}
		return names
	}
	defer f.Close()
	return parseControlSockets(f)
}

// parseControlSockets reads /proc/net/unix ("Num RefCount Protocol Flags
// Type St Inode Path"); a listening socket has __SO_ACCEPTCON (1<<16) in
// its flags.
func parseControlSockets(r io.Reader) []string {
	var names []string
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 8 || !strings.HasPrefix(f[7], controlPrefix) {
			continue
		}
		flags, err := strconv.ParseUint(f[3], 16, 32)
		if err != nil || flags&(1<<16) == 0 {
			continue
		}
		if name := strings.TrimPrefix(f[7], controlPrefix); !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Fetch asks one daemon for its report: one HTTP/1.1 request over the
// control socket, written and read with net/http's own codec (the daemon's
// binary links no HTTP client).
func Fetch(ctx context.Context, ifname string) (Report, error) {
	var rep Report
	addr := controlAddress(ifname)
	ctx, cancel := context.WithTimeout(ctx, ClientTimeout)
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "unix", addr)
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
		return rep, fmt.Errorf("no floatip daemon on %s in this network namespace (nothing listens on %s)", ifname, addr)
	}
	if err != nil {
		return rep, fmt.Errorf("connect to the daemon of %s (%s): %w", ifname, addr, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://floatip/status", nil)
	if err != nil {
		return rep, err
	}
	req.Close = true
	if err := req.Write(conn); err != nil {
		return rep, fmt.Errorf("ask the daemon of %s: %w", ifname, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return rep, fmt.Errorf("read the answer of the daemon of %s: %w", ifname, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, statusMaxBody))
	if err != nil {
		return rep, fmt.Errorf("read the answer of the daemon of %s: %w", ifname, err)
	}
	if resp.StatusCode != http.StatusOK {
		return rep, fmt.Errorf("the daemon of %s answered %s: %s", ifname, resp.Status, strings.TrimSpace(string(body)))
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		return rep, fmt.Errorf("the daemon of %s answered with a report this command cannot read (another version?): %w", ifname, err)
	}
	return rep, nil
}
