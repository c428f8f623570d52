#!/usr/bin/env bash
# shellcheck disable=SC2034 # the settings are read by the measurements in lab/bench/*.sh
# bench.sh - measure floatip in the namespace lab the way a user feels it.
#
#   bash lab/bench.sh [-n RUNS] [-only LIST] [-quick] [-out DIR] [-bin FLOATIP]
#                     [-loss-secs S] [-loss-levels 5,10] [-steady-secs S] [-steady-runs N]
#                     [-heal-max S] [-- EXTRA-FLOATIP-FLAGS...]
#
# LIST is a comma-separated subset of (default: all of them)
#   outage    holder death (its bridge port cut), defaults and --interval 20ms;
#             defaults with an IPv6 VIP (2001:db8::50) too
#   handover  graceful handover (SIGTERM on the holder), defaults; IPv6 too
#   reload    the holder's binary file replaced by another version's, then
#             SIGHUP (systemctl reload: re-executed in place, the VIP kept);
#             next to it a restart (SIGTERM, then started again at once, as
#             systemctl restart does): the client's longest gap of each
#   conns     an idle TCP client (lab/tcpidle) blocked in read on the VIP: from
#             SIGTERM on the holder to its error and to its first answered
#             request on the new holder, with and without the connection
#             reset; and after a holder death, its next request's RST
#   heal      partition heal (holder isolated, carrier up, then healed)
#   isolated  the same with a reference host: the cut-off holder gives the VIP
#             up, so the client moves once (issue: isolated holder)
#   loss      false takeovers under 5% and 10% (-loss-levels) loss both ways on
#             a standby's link, -loss-secs each (default 120), two labs at a time
#   steady    steady-state cost: 2 hosts, 1 VIP (idle CPU, system calls, frames, RSS)
#   scale     the same with 2 hosts x 50 and 256 VIPs, 5 hosts x 1 and 256 VIPs,
#             and the growth from 1 VIP to many against the targets
#   scalefail holder death with 1 and with 256 VIPs (3 hosts): until the client's
#             cache points the last VIP at the new holder
#   flood     a holder under 30 s (quick: 12 s) of foreign ARP for its VIP at
#             10 000 frames/s from lab/arpflood: CPU, defences, log lines
#   pool      --spread, 5 hosts x 64 VIPs: a host's link cut, the time until
#             the last of its VIPs answers a client again (share failover);
#             then its link back, the longest client gap of the VIPs that
#             return to it after the hold-down (planned move)
#   shared    --share, 3 hosts serving 192.0.2.80, a client sending from 64
#             source addresses (lab/flowcheck): kill -9, link cut and SIGTERM
#             of a host, the worst outage of its clients and of the others';
#             a host joining (long TCP connections kept); the throughput
#             through the shared address next to a plain VIP (iperf3)
# The binary size is always reported.
#
# Event figures (outage, handover, heal, conns) are medians of RUNS runs (default 5),
# each in a fresh lab. A loss figure is a count of rare events over one
# -loss-secs window per loss level: repeating it would only add exposure time.
# Steady-state figures are rates over one -steady-secs window (default 60) per
# setup, or the median of -steady-runs consecutive windows.
# -quick: 3 runs, 15 s loss windows, 8 s steady windows, heal watched 10 s,
# the idle TCP client's timeout 5 s.
#
# The Markdown table goes to stdout and DIR/results.md; every run's raw
# figures to DIR/runs.log; the daemons' logs to DIR/logs/. Progress goes to
# stderr. Needs root, ip, nft, go (unless -bin). Labs are named
# fipbench-<pid>-<x> and are always torn down on exit.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"

# --- settings ---------------------------------------------------------------

RUNS=5
RUNS_SET=0
ONLY="outage,handover,reload,conns,heal,isolated,loss,steady,scale,scalefail,flood,pool,shared"
QUICK=0
OUT=""
BIN=""
LOSS_SECS=120
LOSS_LEVELS="5,10"
STEADY_SECS=60
STEADY_RUNS=1
HEAL_MAX=20  # seconds to watch for convergence after a heal
FLOOD_SECS=30 # length of the ARP flood
CONN_IDLE=10 # s: the idle TCP client's own read timeout (conns)
ISO_HOLD=5   # seconds the partition lasts after the standby's claim (> its 5 announcement rounds)
STABLE_MS=3000 # a heal has converged when its end state held this long
EXTRA=()     # extra floatip flags for every daemon

VIP=192.0.2.50 # outage, handover, heal, loss
VIP6=2001:db8::50 # the IPv6 rows of outage and handover (VIP=$VIP6 for one series)
PORT=7007
HELD_RE='VIP is held'
CLAIM_RE='claimed VIP'
PREFIX="fipbench-$$"
LABS=() # every lab prefix this run may create, for the exit trap
BG=()   # background subshells we started

usage() {
	awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
	exit 2
}

parse_args() {
	while (($# > 0)); do
		case "$1" in
		-n | --n) RUNS="${2:-}" RUNS_SET=1 && shift ;;
		-only | --only) ONLY="${2:-}" && shift ;;
		-quick | --quick) QUICK=1 ;;
		-out | --out) OUT="${2:-}" && shift ;;
		-bin | --bin) BIN="${2:-}" && shift ;;
		-loss-secs | --loss-secs) LOSS_SECS="${2:-}" && shift ;;
		-loss-levels | --loss-levels) LOSS_LEVELS="${2:-}" && shift ;;
		-steady-secs | --steady-secs) STEADY_SECS="${2:-}" && shift ;;
		-steady-runs | --steady-runs) STEADY_RUNS="${2:-}" && shift ;;
		-heal-max | --heal-max) HEAL_MAX="${2:-}" && shift ;;
		--)
			shift
			EXTRA=("$@")
			break
			;;
		*) usage ;;
		esac
		shift
	done
	if ((QUICK)); then
		((RUNS_SET)) || RUNS=3
		LOSS_SECS=15 STEADY_SECS=8 HEAL_MAX=10 STABLE_MS=2000 FLOOD_SECS=12 CONN_IDLE=5
	fi
	local v
	for v in RUNS LOSS_SECS STEADY_SECS STEADY_RUNS HEAL_MAX; do
		if [[ ! "${!v}" =~ ^[0-9]{1,4}$ ]] || ((${!v} < 1)); then die "$v must be a number >= 1"; fi
	done
	((RUNS <= 100 && LOSS_SECS <= 3600 && STEADY_SECS <= 3600 && HEAL_MAX <= 300)) || die "a setting is too large"
	[[ "$LOSS_LEVELS" =~ ^[0-9]{1,3}(,[0-9]{1,3})*$ ]] || die "-loss-levels takes percentages like 5,10"
	local m
	for m in ${ONLY//,/ }; do
		[[ "$m" =~ ^(outage|handover|reload|conns|heal|isolated|loss|steady|scale|scalefail|flood|pool|shared)$ ]] || die "unknown measurement '$m'"
	done
	[[ $EUID -eq 0 ]] || die "needs root (network namespaces)"
}

# --- small helpers ----------------------------------------------------------

die() {
	echo "bench.sh: $*" >&2
	exit 1
}

say() { echo "bench: $*" >&2; }

wanted() { [[ ",$ONLY," == *",$1,"* ]]; }

# tick sets NOW to the wall clock in milliseconds (no fork).
tick() {
	local t="${EPOCHREALTIME//[!0-9]/}"
	NOW=$((t / 1000))
}

# raw LINE...: one line of raw figures into runs.log.
raw() { echo "$*" >>"$OUT/runs.log"; }

# median V...: the median of numbers; "inf" stands for "did not happen in time".
median() {
	printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 }
		END {
			if (NR == 0) { print "n/a"; exit }
			if (NR % 2) { print a[(NR + 1) / 2]; exit }
			x = a[NR / 2]; y = a[NR / 2 + 1]
			if (x == "inf" || y == "inf") print "inf"; else printf "%g\n", (x + y) / 2
		}'
}

# fmt FORMAT NUMBER: printf through awk (any locale).
fmt() { awk -v f="$1" -v x="$2" 'BEGIN { printf f, x }'; }

# count_of WORD V...: how many of V are WORD.
count_of() {
	local w="$1" n=0 v
	shift
	for v in "$@"; do [[ "$v" != "$w" ]] || n=$((n + 1)); done
	echo "$n"
}

# wait_until SECONDS CMD...: run CMD every 20 ms until it succeeds (bounded).
wait_until() {
	local deadline
	tick
	deadline=$((NOW + $1 * 1000))
	shift
	until "$@" >/dev/null 2>&1; do
		tick
		((NOW < deadline)) || return 1
		sleep 0.02
	done
}

# json_field KEY FILE: a number or string field of udpecho's JSON summary.
json_field() {
	local v
	v="$(grep -oE "\"$1\":(\"[^\"]*\"|[0-9.]+)" "$2" | head -n 1 | cut -d: -f2)" || true
	v="${v//\"/}"
	echo "${v:-?}"
}

# json_changes FILE: how many times the responder changed.
json_changes() { grep -o '"from":' "$1" | wc -l; }

# The measurements, each in a file of its concern.
# shellcheck source=lab/bench/lab.sh
source "$HERE/bench/lab.sh"
# shellcheck source=lab/bench/events.sh
source "$HERE/bench/events.sh"
# shellcheck source=lab/bench/cost.sh
source "$HERE/bench/cost.sh"
# shellcheck source=lab/bench/pool.sh
source "$HERE/bench/pool.sh"
# shellcheck source=lab/bench/shared.sh
source "$HERE/bench/shared.sh"

# --- the table -------------------------------------------------------------------

ROWS=()
SCALE_ROWS=()
declare -A SERIES_MEDIAN=() # an event series' median by its key (outage-cut, ...), for targets relative to it
declare -A FIG=() # "HOSTS x VIPS" -> "bcast/s/VIP ucast/s/VIP cpu-holder% cpu-standby% rss-kB"
NOTES=()

# row MEASUREMENT MEDIAN RUNS TARGET MET
row() { ROWS+=("| $1 | $2 | $3 | ${4:-–} | $5 |"); }

# row_ms LABEL MEDIAN TARGET-MS RUNS FAILED [LIMIT-S]: a milliseconds row;
# "inf" shows as "none in LIMIT s" (or "failed").
row_ms() {
	local label="$1" med="$2" target="$3" runs="$4" failed="$5" limit="${6:-}" shown met="–"
	if [[ "$med" == inf ]]; then
		if [[ -n "$limit" ]]; then shown="did not converge in $limit s"; else shown="failed"; fi
	else
		shown="$med ms"
	fi
	if [[ -n "$target" ]]; then
		if [[ "$med" != inf ]] && awk -v m="$med" -v t="$target" 'BEGIN { exit !(m <= t) }'; then met=yes; else met="**no**"; fi
	fi
	runs="${runs//inf/✗}"
	((failed == 0)) || runs+=" ($failed of $RUNS failed or did not converge)"
	row "$label" "$shown" "$runs" "${target:+≤ $target ms}" "$met"
}

# scale_note: how the frames are counted.
scale_note() {
	echo
	echo "Frames are counted with nftables counters at the bridge's prerouting hook (bridge namespace): every frame entering the LAN is seen once, including unicast between hosts (a standby's probes to the holder and the holder kernel's replies), which a capture in the client namespace would miss. CPU is utime + stime from /proc per 30 s (clock ticks of 10 ms: figures under 30 ms are coarse); system calls are counted by perf (raw_syscalls:sys_enter) for the holder h1 and the standby h2."
}

print_table() {
	{
		echo "floatip benchmark, $(date -u +%Y-%m-%dT%H:%MZ), floatip built from $SOURCE, kernel $(uname -r), $(nproc) CPUs; runs per figure: $RUNS${EXTRA[*]:+, extra flags: ${EXTRA[*]}}"
		echo
		echo "| Measurement | Median | Runs | Target | Met |"
		echo "|---|---|---|---|---|"
		printf '%s\n' "${ROWS[@]}"
		if ((${#SCALE_ROWS[@]} > 0)); then
			echo
			echo "Steady state by size (one holder, priority 200; the others standbys; ${STEADY_RUNS} window(s) of ${STEADY_SECS} s, medians; ARP frames of the whole group counted on the bridge):"
			echo
			echo "| Hosts | VIPs | ARP broadcast/s (group) | ARP unicast/s (group) | CPU per 30 s, holder / standby | system calls/s, holder / standby | RSS (largest) |"
			echo "|---|---|---|---|---|---|---|"
			printf '%s\n' "${SCALE_ROWS[@]}"
			scale_note
		fi
		if ((${#NOTES[@]} > 0)); then
			echo
			printf -- '- %s\n' "${NOTES[@]}"
		fi
	} | tee "$OUT/results.md"
}

# --- setup and teardown ------------------------------------------------------------

cleanup() {
	local pid p
	for pid in "${BG[@]}"; do
		kill -s TERM "$pid" 2>/dev/null || true
	done
	for pid in "${BG[@]}"; do wait "$pid" 2>/dev/null || true; done
	for p in "${LABS[@]}"; do
		FLOATIP_LAB="$p" bash "$HERE/lab.sh" down >/dev/null 2>&1 || echo "bench.sh: could not tear down lab $p" >&2
	done
}

build() {
	mkdir -p "$OUT/bin" "$OUT/tmp" "$OUT/logs"
	if [[ -z "$(command -v go)" && -x /usr/local/go/bin/go ]]; then PATH="$PATH:/usr/local/go/bin"; fi
	# What the binary is built from, taken before the build: the tree may change during a run.
	local dirty
	SOURCE="commit $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
	dirty="$(git -C "$REPO" status --porcelain -- '*.go' go.mod go.sum 2>/dev/null | awk '{ print $2 }' | tr '\n' ' ')"
	[[ -z "$dirty" ]] || SOURCE+=" + uncommitted changes (${dirty% })"
	if [[ -n "$BIN" ]]; then
		[[ -x "$BIN" ]] || die "-bin $BIN is not an executable"
		cp -- "$BIN" "$OUT/bin/floatip"
		BIN_NOTE="given with -bin, not built"
		SOURCE="$BIN (-bin)"
	else
		say "building floatip (static, stripped) and udpecho"
		(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$OUT/bin/floatip" .) ||
			die "floatip does not build"
		BIN_NOTE=""
	fi
	BIN="$OUT/bin/floatip"
	# The reload's newer binary: the same source stamped with another version
	# (with -bin, the same file again: still a real re-execution).
	BIN_NEXT="$OUT/bin/floatip-next"
	if wanted reload && [[ -z "$BIN_NOTE" ]]; then
		(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w -X main.version=bench-reload' -o "$BIN_NEXT" .) ||
			die "floatip does not build"
	else
		cp -- "$BIN" "$BIN_NEXT"
	fi
	(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -o "$OUT/bin/udpecho" ./lab/udpecho) || die "udpecho does not build"
	UDPECHO="$OUT/bin/udpecho"
	(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -o "$OUT/bin/arpflood" ./lab/arpflood) || die "arpflood does not build"
	ARPFLOOD="$OUT/bin/arpflood"
	(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -o "$OUT/bin/tcpidle" ./lab/tcpidle) || die "tcpidle does not build"
	TCPIDLE="$OUT/bin/tcpidle"
	(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -o "$OUT/bin/flowcheck" ./lab/flowcheck) || die "flowcheck does not build"
	FLOWCHECK="$OUT/bin/flowcheck"
}

main() {
	parse_args "$@"
	if ! command -v ip >/dev/null || ! command -v nft >/dev/null; then die "needs ip and nft (run: lab/lab.sh deps)"; fi
	OUT="${OUT:-${TMPDIR:-/tmp}/floatip-bench.$(date +%Y%m%d-%H%M%S)}"
	mkdir -p "$OUT"
	OUT="$(cd "$OUT" && pwd)"
	: >"$OUT/runs.log"
	CLK_TCK="$(getconf CLK_TCK)"
	local x
	for x in o t h i l1 l2 s x f p sh; do LABS+=("$(lab_name "$x")"); done
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	build
	raw "floatip bench $(date -u +%FT%TZ) runs=$RUNS only=$ONLY quick=$QUICK loss_secs=$LOSS_SECS steady_secs=$STEADY_SECS steady_runs=$STEADY_RUNS heal_max=$HEAL_MAX extra='${EXTRA[*]}'"
	raw "floatip built from $SOURCE"
	raw "floatip sha256 $(sha256sum "$BIN" | cut -c1-16)"
	tick
	local start=$NOW
	local m
	for m in outage handover reload conns heal isolated loss steady scale scalefail flood pool shared; do
		wanted "$m" || continue
		tick
		local t=$NOW
		"measure_$m"
		tick
		raw "($m took $(((NOW - t) / 1000)) s)"
	done
	measure_size
	tick
	say "done in $(((NOW - start) / 1000)) s; raw figures: $OUT/runs.log, daemon logs: $OUT/logs/"
	print_table
}

main "$@"
