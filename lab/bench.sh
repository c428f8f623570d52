#!/usr/bin/env bash
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
ONLY="outage,handover,reload,conns,heal,isolated,loss,steady,scale,scalefail,flood,pool"
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
		[[ "$m" =~ ^(outage|handover|reload|conns|heal|isolated|loss|steady|scale|scalefail|flood|pool)$ ]] || die "unknown measurement '$m'"
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

# --- the lab ----------------------------------------------------------------

# lab CMD...: lab.sh on the current lab ($LAB) with our binary.
lab() { FLOATIP_LAB="$LAB" FLOATIP_BIN="$BIN" bash "$HERE/lab.sh" "$@"; }
ns() { echo "$LAB-$1"; }
state_dir() { echo "${TMPDIR:-/tmp}/$LAB.lab"; }
lab_name() { echo "$PREFIX-$1"; }

# lab_new NAME HOSTS: a fresh lab $PREFIX-NAME (made current) with HOSTS hosts.
lab_new() {
	LAB="$(lab_name "$1")"
	lab down >/dev/null 2>&1 || true
	lab up "$2" >/dev/null
}

# lab_done TAG: keep the daemons' logs as logs/TAG-*.log, tear the lab down.
lab_done() {
	local f
	mkdir -p "$OUT/logs"
	for f in "$(state_dir)"/*.log; do
		[[ -f "$f" ]] && cp -- "$f" "$OUT/logs/$1-$(basename "$f")"
	done
	lab down >/dev/null 2>&1 || true
}

# holds HOST VIP: HOST has VIP/32 (IPv6: /128) on eth0.
holds() {
	local a
	if [[ "$2" == *:* ]]; then
		a="$(ip -n "$(ns "$1")" -6 -o addr show dev eth0 2>/dev/null)" || return 1
		[[ "$a" == *" $2/128 "* ]]
		return
	fi
	a="$(ip -n "$(ns "$1")" -4 -o addr show dev eth0 2>/dev/null)" || return 1
	[[ "$a" == *" $2/32 "* ]]
}

# vip_port: $VIP:$PORT, [$VIP]:$PORT for IPv6.
vip_port() {
	if [[ "$VIP" == *:* ]]; then echo "[$VIP]:$PORT"; else echo "$VIP:$PORT"; fi
}

# holds_all HOST VIP...: HOST has every one of them.
holds_all() {
	local a v
	a="$(ip -n "$(ns "$1")" -4 -o addr show dev eth0 2>/dev/null)" || return 1
	shift
	for v in "$@"; do [[ "$a" == *" $v/32 "* ]] || return 1; done
}

# log_count HOST REGEX [FROM-LINE]: matching lines of HOST's daemon log.
log_count() {
	local f
	f="$(state_dir)/$1.log"
	[[ -f "$f" ]] || {
		echo 0
		return
	}
	tail -n "+${3:-1}" "$f" | grep -cE -- "$2" || true
}
log_lines() { wc -l <"$(state_dir)/$1.log"; }
log_has_n() { (($(log_count "$1" "$2") >= $3)); }

# client_mac: the client's neighbour entry for $VIP (MAC or "none").
client_mac() {
	local out
	out="$(ip -n "$(ns c)" neigh show "$VIP" dev eth0 2>/dev/null)" || true
	if [[ "$out" =~ lladdr\ ([0-9a-f:]+) ]]; then echo "${BASH_REMATCH[1]}"; else echo none; fi
}
mac_of() { printf '02:00:00:00:00:%02x' "${1#h}"; }

# start_servers HOST...: a udpecho server on $VIP in each host.
start_servers() {
	local h
	for h in "$@"; do
		ip netns exec "$(ns "$h")" "$UDPECHO" serve -listen "$(vip_port)" -name "$h" >/dev/null 2>&1 &
	done
}

# pair_up: a 2-host lab "$1" with servers, floatip on h1 (priority 200, the
# holder) and on h2 (default priority, the standby), both with flags "${@:2}".
# Returns 1 (with a message) if the pair did not form within 10 s.
pair_up() {
	local name="$1"
	shift
	lab_new "$name" 2
	if [[ "$VIP" == *:* ]]; then lab ipv6 c h1 h2 >/dev/null; fi
	start_servers h1 h2
	lab start h1 -- -i eth0 --priority 200 "${EXTRA[@]}" "$@" "$VIP" >/dev/null
	if ! wait_until 10 holds h1 "$VIP"; then
		PAIR_ERR="h1 did not take the VIP within 10 s"
		return 1
	fi
	lab start h2 -- -i eth0 "${EXTRA[@]}" "$@" "$VIP" >/dev/null
	if ! wait_until 10 log_has_n h2 "$HELD_RE" 1; then
		PAIR_ERR="h2 did not log '$HELD_RE' within 10 s"
		return 1
	fi
}

# start_client DURATION OUTFILE [LIVEFILE]: a client in the background, one
# request to $VIP every 10 ms; sets CLIENT_PID.
start_client() {
	ip netns exec "$(ns c)" "$UDPECHO" client -target "$(vip_port)" -every 10ms \
		-duration "$1" -json -live >"$2" 2>"${3:-/dev/null}" </dev/null &
	CLIENT_PID=$!
}

# stop_client PID: SIGTERM (the summary is still printed) and wait for it.
stop_client() {
	local i
	kill -s TERM "$1" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.05
	done
	wait "$1" 2>/dev/null || true
}

# --- nftables counters on the bridge ------------------------------------------
#
# The bridge namespace sees every frame that enters the LAN exactly once, at
# the bridge's prerouting hook (after the lab's netdev loss rules, before
# flooding): unicast between two hosts included, which a capture in the
# client namespace would never see (the bridge forwards a unicast frame only
# to the port of its destination MAC).

# counters_setup HOSTS: per host port, ARP frames by broadcast/unicast and by
# probe (sender IP 0.0.0.0) or not.
counters_setup() {
	local i p rules=""
	for ((i = 1; i <= $1; i++)); do
		p="h$i"
		rules+="add rule bridge bench pre iifname \"$p\" ether type arp ether daddr ff:ff:ff:ff:ff:ff arp saddr ip 0.0.0.0 counter comment \"$p:bcast:probe\""$'\n'
		rules+="add rule bridge bench pre iifname \"$p\" ether type arp ether daddr ff:ff:ff:ff:ff:ff arp saddr ip != 0.0.0.0 counter comment \"$p:bcast:other\""$'\n'
		rules+="add rule bridge bench pre iifname \"$p\" ether type arp ether daddr != ff:ff:ff:ff:ff:ff arp saddr ip 0.0.0.0 counter comment \"$p:ucast:probe\""$'\n'
		rules+="add rule bridge bench pre iifname \"$p\" ether type arp ether daddr != ff:ff:ff:ff:ff:ff arp saddr ip != 0.0.0.0 counter comment \"$p:ucast:other\""$'\n'
	done
	ip netns exec "$(ns br)" nft -f - <<-EOF
		add table bridge bench
		add chain bridge bench pre { type filter hook prerouting priority -300; policy accept; }
		$rules
	EOF
}

# counters_read: "NAME PACKETS" lines (NAME is host:bcast|ucast:probe|other).
counters_read() {
	ip netns exec "$(ns br)" nft list table bridge bench |
		sed -nE 's/.*counter packets ([0-9]+) bytes [0-9]+ comment "([^"]+)".*/\2 \1/p'
}

# counters_sum FILE-BEFORE FILE-AFTER PATTERN: packets matching the awk regex.
counters_sum() {
	awk -v pat="$3" 'NR == FNR { b[$1] = $2; next } $1 ~ pat { s += $2 - b[$1] } END { print s + 0 }' "$1" "$2"
}

# --- process figures ----------------------------------------------------------

# cpu_ticks PID: utime + stime of the whole process (clock ticks).
cpu_ticks() {
	local s
	s="$(<"/proc/$1/stat")"
	s="${s##*) }"
	local -a f
	read -ra f <<<"$s"
	echo $((f[11] + f[12]))
}

# vm_kb PID FIELD: VmHWM or VmRSS in kB.
vm_kb() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

daemon_pid() { cat "$(state_dir)/$1.pid"; }

# --- 1 and 2: outage when the holder dies or hands over -----------------------

# outage_run KIND TAG FLAGS...: one run; KIND cut (link cut) or term (SIGTERM).
# Sets RUN_RESULT to the client's longest gap in ms, or "inf" on failure.
outage_run() {
	local kind="$1" tag="$2" json gap last ok=1
	shift 2
	json="$OUT/tmp/$tag.json"
	RUN_RESULT=inf
	if ! pair_up o "$@"; then
		raw "$tag: setup failed: $PAIR_ERR"
		lab_done "$tag"
		return
	fi
	local live="$OUT/tmp/$tag.live"
	start_client 20s "$json" "$live"
	# A random moment, so the event is not phase-locked to the probes.
	sleep "$(printf '1.%03d' $((500 + RANDOM % 1000)))"
	if [[ "$kind" == cut ]]; then lab cut h1 >/dev/null; else lab stop h1 TERM >/dev/null; fi
	# Until h2 answers (at most 15 s), then 0.5 s more for any flap back.
	wait_until 15 grep -q "responder changed: h1 -> h2" "$live" || true
	sleep 0.5
	stop_client "$CLIENT_PID"
	gap="$(json_field longest_gap_ms "$json")"
	last="$(json_field last_responder "$json")"
	holds h2 "$VIP" || ok=0
	[[ "$last" == h2 ]] || ok=0
	if ((ok)) && [[ "$gap" =~ ^[0-9]+$ ]]; then RUN_RESULT="$gap"; fi
	raw "$tag: longest_gap_ms=$gap last_responder=$last h2_holds=$(holds h2 "$VIP" && echo yes || echo no)" \
		"claims_h2=$(log_count h2 "$CLAIM_RE") summary=$(tr -d '\n' <"$json")"
	lab_done "$tag"
}

# outage_series KEY KIND LABEL TARGET FLAGS...: RUNS runs, one table row.
outage_series() {
	local key="$1" kind="$2" label="$3" target="$4" r
	shift 4
	local -a vals=()
	say "$key: $RUNS runs ($label)"
	for ((r = 1; r <= RUNS; r++)); do
		outage_run "$kind" "$key-r$r" "$@"
		vals+=("$RUN_RESULT")
		say "  $key run $r: $RUN_RESULT ms"
	done
	local med
	med="$(median "${vals[@]}")"
	row_ms "$label" "$med" "$target" "${vals[*]}" "$(count_of inf "${vals[@]}")"
}

measure_outage() {
	outage_series outage-cut cut "Holder death (link cut), defaults" 800
	outage_series outage-cut-20ms cut "Holder death (link cut), --interval 20ms" 100 --interval 20ms
	VIP="$VIP6" outage_series outage-cut-v6 cut "Holder death (link cut), defaults, IPv6 VIP" 800
}

measure_handover() {
	outage_series handover term "Graceful handover (SIGTERM), defaults" 100
	VIP="$VIP6" outage_series handover-v6 term "Graceful handover (SIGTERM), defaults, IPv6 VIP" 100
}

# --- reload: re-executed in place, against a restart ---------------------------

# reload_run KIND TAG: one run on a pair whose daemons run a copy of the
# binary; KIND reload (h1's file replaced by BIN_NEXT, as a package upgrade
# does, then SIGHUP) or restart (SIGTERM, then h1 started again at once).
# Sets RUN_RESULT to the client's longest gap in ms, or "inf" on failure.
reload_run() {
	local kind="$1" tag="$2" json live gap pid ok=1 bin="$OUT/tmp/$2.floatip"
	json="$OUT/tmp/$tag.json" live="$OUT/tmp/$tag.live"
	RUN_RESULT=inf
	cp -- "$BIN" "$bin"
	local shared="$BIN"
	BIN="$bin" # pair_up starts both hosts from the copy
	if ! pair_up o; then
		BIN="$shared"
		raw "$tag: setup failed: $PAIR_ERR"
		lab_done "$tag"
		return
	fi
	pid="$(daemon_pid h1)"
	start_client 20s "$json" "$live"
	sleep "$(printf '1.%03d' $((500 + RANDOM % 1000)))"
	if [[ "$kind" == reload ]]; then
		cp -- "$BIN_NEXT" "$bin.new" && mv -f -- "$bin.new" "$bin"
		kill -s HUP "$pid"
		wait_until 5 log_has_n h1 'reloaded: taking back' 1 || ok=0
	else
		lab stop h1 TERM >/dev/null
		lab start h1 -- -i eth0 --priority 200 "${EXTRA[@]}" "$VIP" >/dev/null
		wait_until 15 grep -q "responder changed: h1 -> h2" "$live" || ok=0
	fi
	sleep 1
	BIN="$shared"
	stop_client "$CLIENT_PID"
	gap="$(json_field longest_gap_ms "$json")"
	if [[ "$kind" == reload ]]; then
		# Same process, still the holder, and the standby claimed nothing.
		[[ "$(daemon_pid h1)" == "$pid" ]] && kill -0 "$pid" 2>/dev/null || ok=0
		holds h1 "$VIP" || ok=0
		(($(log_count h2 "$CLAIM_RE") == 0)) || ok=0
	fi
	if ((ok)) && [[ "$gap" =~ ^[0-9]+$ ]]; then RUN_RESULT="$gap"; fi
	raw "$tag: longest_gap_ms=$gap ok=$ok claims_h2=$(log_count h2 "$CLAIM_RE") summary=$(tr -d '\n' <"$json")"
	lab_done "$tag"
}

measure_reload() {
	local kind r label target
	for kind in reload restart; do
		local -a vals=()
		if [[ "$kind" == reload ]]; then
			label="Reload of the holder (binary replaced, SIGHUP), defaults" target=30
		else
			label="Restart of the holder (SIGTERM, start again), defaults" target=""
		fi
		say "$kind: $RUNS runs"
		for ((r = 1; r <= RUNS; r++)); do
			reload_run "$kind" "$kind-r$r"
			vals+=("$RUN_RESULT")
			say "  $kind run $r: $RUN_RESULT ms"
		done
		row_ms "$label" "$(median "${vals[@]}")" "$target" "${vals[*]}" "$(count_of inf "${vals[@]}")"
	done
}

# --- 2b: open TCP connections when the VIP moves ---------------------------------

TCP_PORT=7100

# event_field FILE EVENT KEY: a field of the first EVENT line of tcpidle's output.
event_field() {
	local v
	v="$(grep -m 1 "^$2 " "$1" | grep -oE "(^| )$3=[^ ]+" | head -n 1 | cut -d= -f2)" || true
	echo "${v:-?}"
}

# conn_run KIND TAG CLIENT-FLAGS -- FLOATIP-FLAGS...: one run. KIND term
# (SIGTERM on the holder) or cut (its link cut: a holder death). An idle
# client is connected to h1's TCP server on the VIP; then the event.
# Sets CR_ERR (ms from the event to the client's read error, "inf" if the
# read did not fail before the client's own timeout), CR_REQ (ms from the
# event to its first answered request on h2), CR_RST (with
# -send-after-idle: ms from its request on the stale connection to the RST).
conn_run() {
	local kind="$1" tag="$2" out="$OUT/tmp/$2.tcp" h t0 at kind_seen resp
	shift 2
	local -a cflags=()
	while (($# > 0)) && [[ "$1" != -- ]]; do cflags+=("$1") && shift; done
	shift || true
	CR_ERR=inf CR_REQ=inf CR_RST=inf
	if ! pair_up t "$@"; then
		raw "$tag: setup failed: $PAIR_ERR"
		lab_done "$tag"
		return
	fi
	for h in h1 h2; do
		ip netns exec "$(ns "$h")" "$TCPIDLE" serve -listen "$VIP:$TCP_PORT" -name "$h" >"$OUT/tmp/$tag-$h.srv" 2>&1 &
	done
	for h in h1 h2; do
		if ! wait_until 5 grep -q "serving on" "$OUT/tmp/$tag-$h.srv"; then
			raw "$tag: the TCP server in $h did not start: $(tr '\n' ' ' <"$OUT/tmp/$tag-$h.srv")"
			lab_done "$tag"
			return
		fi
	done
	ip netns exec "$(ns c)" "$TCPIDLE" client -target "$VIP:$TCP_PORT" -idle "${CONN_IDLE}s" -reconnect 15s \
		"${cflags[@]}" >"$out" 2>&1 </dev/null &
	local cpid=$!
	if ! wait_until 5 grep -q '^connected responder=h1' "$out"; then
		raw "$tag: the client did not connect to h1: $(tr '\n' ' ' <"$out")"
		stop_client "$cpid"
		lab_done "$tag"
		return
	fi
	# A random moment, so the event is not phase-locked to the probes.
	sleep "$(printf '0.%03d' $((500 + RANDOM % 500)))"
	tick
	t0=$NOW
	if [[ "$kind" == cut ]]; then lab cut h1 >/dev/null; else kill -s TERM "$(daemon_pid h1)"; fi
	wait_until $((CONN_IDLE + 20)) grep -qE '^(reconnected|reconnect_failed) ' "$out" || true
	stop_client "$cpid"
	kind_seen="$(event_field "$out" read_ended kind)"
	at="$(event_field "$out" read_ended at_ms)"
	if [[ "$kind_seen" == reset && "$at" =~ ^[0-9]+$ ]]; then CR_ERR=$((at - t0)); fi
	resp="$(event_field "$out" reconnected responder)"
	at="$(event_field "$out" reconnected at_ms)"
	if [[ "$resp" == h2 && "$at" =~ ^[0-9]+$ ]]; then CR_REQ=$((at - t0)); fi
	at="$(event_field "$out" request_ended at_ms)"
	local sent
	sent="$(event_field "$out" request_ended sent_ms)"
	if [[ "$(event_field "$out" request_ended kind)" == reset && "$at" =~ ^[0-9]+$ && "$sent" =~ ^[0-9]+$ ]]; then
		CR_RST=$((at - sent))
	fi
	raw "$tag: err_ms=$CR_ERR first_request_on_h2_ms=$CR_REQ stale_request_rst_ms=$CR_RST read_ended=$kind_seen" \
		"h1_reset_log=$(log_count h1 "reset the VIP's TCP connections") client: $(tr '\n' '|' <"$out")"
	lab_done "$tag"
}

# conn_series KEY KIND LABEL CLIENT-FLAGS -- FLOATIP-FLAGS...: RUNS runs;
# sets CS_ERR, CS_REQ, CS_RST to "median|runs|failed" of each figure.
conn_series() {
	local key="$1" kind="$2" label="$3" r
	shift 3
	local -a errs=() reqs=() rsts=()
	say "$key: $RUNS runs ($label)"
	for ((r = 1; r <= RUNS; r++)); do
		conn_run "$kind" "$key-r$r" "$@"
		errs+=("$CR_ERR") reqs+=("$CR_REQ") rsts+=("$CR_RST")
		say "  $key run $r: error after $CR_ERR ms, request on h2 after $CR_REQ ms, stale request RST after $CR_RST ms"
	done
	CS_ERR="$(median "${errs[@]}")|${errs[*]}|$(count_of inf "${errs[@]}")"
	CS_REQ="$(median "${reqs[@]}")|${reqs[*]}|$(count_of inf "${reqs[@]}")"
	CS_RST="$(median "${rsts[@]}")|${rsts[*]}|$(count_of inf "${rsts[@]}")"
}

# conn_row LABEL "median|runs|failed" [NONE-TEXT]: a row; "inf" shows as NONE-TEXT.
conn_row() {
	local med runs failed
	IFS='|' read -r med runs failed <<<"$2"
	if [[ "$med" == inf ]]; then
		row "$1" "${3:-failed}" "${runs//inf/✗}" "" "–"
	else
		row_ms "$1" "$med" "" "$runs" "$failed"
	fi
}

measure_conns() {
	local none="none within the client's own ${CONN_IDLE} s read timeout"
	conn_series conns-on term "reset on" --
	conn_row "Idle TCP client, SIGTERM on the holder: until its read fails (reset)" "$CS_ERR"
	conn_row "Idle TCP client, SIGTERM on the holder: until its first answered request on the new holder" "$CS_REQ"
	conn_series conns-on-fast term "reset on, client dials with a 100 ms timeout" -dial-timeout 100ms --
	conn_row "Same, a client that retries its connect every 100 ms: until its first answered request on the new holder" "$CS_REQ"
	conn_series conns-off term "--no-reset-connections" -- --no-reset-connections
	conn_row "Idle TCP client, SIGTERM, --no-reset-connections: until its read fails" "$CS_ERR" "$none"
	conn_row "Idle TCP client, SIGTERM, --no-reset-connections: until its first answered request on the new holder (after its own timeout)" "$CS_REQ"
	conn_series conns-dead cut "holder death (link cut), client sends after its ${CONN_IDLE} s timeout" -send-after-idle --
	conn_row "Idle TCP client, holder death (link cut): until its read fails" "$CS_ERR" "$none"
	conn_row "Idle TCP client, holder death: its next request on the stale connection until the new holder's RST" "$CS_RST"
}

# --- 3: partition heal ----------------------------------------------------------

# heal_watch: poll every ~10 ms from the heal (HEAL_T0) for at most HEAL_MAX
# s: who holds the VIP, where the client's ARP entry points. Stops once one
# holder with the client pointing at it has lasted STABLE_MS. Sets
# HEAL_SINGLE and HEAL_CLIENT (ms after the heal when the final state began,
# "inf" if not reached), HEAL_SURVIVOR, HEAL_STEPS (state changes).
heal_watch() {
	local trace="$1" a1 a2 mac holder st prev="" t deadline
	local single_since=-1 conv_since=-1 polls=0 began left
	HEAL_STEPS=0 HEAL_SURVIVOR=none
	deadline=$((HEAL_T0 + HEAL_MAX * 1000))
	while :; do
		tick
		t=$((NOW - HEAL_T0))
		a1=0 a2=0
		if holds h1 "$VIP"; then a1=1; fi
		if holds h2 "$VIP"; then a2=1; fi
		mac="$(client_mac)"
		polls=$((polls + 1))
		st="h1=$a1 h2=$a2 client->$mac"
		if [[ "$st" != "$prev" ]]; then
			echo "+${t} ms $st" >>"$trace"
			[[ -z "$prev" ]] || HEAL_STEPS=$((HEAL_STEPS + 1))
			prev="$st"
		fi
		holder=""
		if ((a1 + a2 == 1)); then
			if ((a1)); then holder=h1; else holder=h2; fi
			((single_since >= 0)) || single_since=$t
		else
			single_since=-1
		fi
		if [[ -n "$holder" && "$mac" == "$(mac_of "$holder")" ]]; then
			((conv_since >= 0)) || conv_since=$t
		else
			conv_since=-1
		fi
		((conv_since < 0 || t - conv_since < STABLE_MS)) || break
		((NOW < deadline)) || break
		# The next poll 10 ms after this one began (the polls themselves take
		# several ms: three "ip" commands).
		began=$NOW
		tick
		left=$((began + 10 - NOW))
		((left <= 0)) || sleep "0.$(printf '%03d' "$left")"
	done
	echo "polls=$polls over ${t} ms (one every $((t / (polls > 1 ? polls - 1 : 1))) ms)" >>"$trace"
	HEAL_SURVIVOR="${holder:-none}"
	if ((single_since >= 0)); then HEAL_SINGLE=$single_since; else HEAL_SINGLE=inf; fi
	if ((conv_since >= 0)); then HEAL_CLIENT=$conv_since; else HEAL_CLIENT=inf; fi
}

# heal_run TAG: isolate the holder h1 (carrier stays up: it keeps the VIP),
# let h2 take over and finish its announcements, then heal and watch.
# Client A runs until just before the heal, client B from just before it:
# B's longest gap is the second outage. Sets HR_* results.
heal_run() {
	local tag="$1" ja="$OUT/tmp/$1-a.json" jb="$OUT/tmp/$1-b.json" trace="$OUT/tmp/$1-trace" t_iso pre
	HR_SINGLE=inf HR_CLIENT=inf HR_GAP2=inf HR_GAP1=inf HR_FLIPS=inf HR_NOTE=""
	: >"$trace"
	if ! pair_up h; then
		raw "$tag: setup failed: $PAIR_ERR"
		HR_NOTE="setup failed"
		lab_done "$tag"
		return
	fi
	start_client 120s "$ja" "$OUT/tmp/$tag-a.live"
	local a_pid=$CLIENT_PID
	sleep 1.5
	tick
	t_iso=$NOW
	lab isolate h1 >/dev/null
	if ! wait_until 10 holds h2 "$VIP"; then
		stop_client "$a_pid"
		HR_NOTE="h2 did not claim within 10 s of the isolation"
		raw "$tag: $HR_NOTE"
		lab unisolate h1 >/dev/null
		lab_done "$tag"
		return
	fi
	tick
	echo "isolation: h2 claimed after $((NOW - t_iso)) ms" >>"$trace"
	sleep "$ISO_HOLD"
	pre="h1=$(holds h1 "$VIP" && echo 1 || echo 0) h2=$(holds h2 "$VIP" && echo 1 || echo 0) client->$(client_mac)"
	echo "before heal: $pre" >>"$trace"
	stop_client "$a_pid"
	start_client "$((HEAL_MAX + 10))s" "$jb" "$OUT/tmp/$tag-b.live"
	local b_pid=$CLIENT_PID
	sleep 0.5
	tick
	HEAL_T0=$NOW
	lab unisolate h1 >/dev/null
	tick
	echo "unisolate took $((NOW - HEAL_T0)) ms (the clock starts before it)" >>"$trace"
	heal_watch "$trace"
	sleep 0.5
	stop_client "$b_pid"
	HR_SINGLE=$HEAL_SINGLE HR_CLIENT=$HEAL_CLIENT
	HR_GAP1="$(json_field longest_gap_ms "$ja")"
	HR_GAP2="$(json_field longest_gap_ms "$jb")"
	[[ "$HR_GAP1" =~ ^[0-9]+$ ]] || HR_GAP1=inf
	[[ "$HR_GAP2" =~ ^[0-9]+$ ]] || HR_GAP2=inf
	HR_FLIPS="$(json_changes "$jb")"
	[[ "$pre" == "h1=1 h2=1 "* ]] || HR_NOTE="no split brain formed ($pre)"
	raw "$tag: heal_to_single_ms=$HR_SINGLE heal_to_client_ms=$HR_CLIENT survivor=$HEAL_SURVIVOR" \
		"steps=$HEAL_STEPS second_outage_ms=$HR_GAP2 isolation_outage_ms=$HR_GAP1" \
		"client_b_changes=$HR_FLIPS note='$HR_NOTE'"
	sed 's/^/    /' "$trace" >>"$OUT/runs.log"
	raw "    client B: $(tr -d '\n' <"$jb")"
	if [[ -s "$OUT/tmp/$tag-b.live" ]]; then sed 's/^/    B live: /' "$OUT/tmp/$tag-b.live" >>"$OUT/runs.log"; fi
	raw "    h1 after heal: $(grep -cE 'split brain|conflict' "$(state_dir)/h1.log" || true) split-brain/conflict lines," \
		"h2: $(grep -cE 'split brain|conflict' "$(state_dir)/h2.log" || true)"
	lab_done "$tag"
}

measure_heal() {
	local r
	local -a single=() client=() gap2=() gap1=() flips=() notes=()
	say "heal: $RUNS runs (isolate h1 for ${ISO_HOLD} s after h2's claim, then heal; watch up to ${HEAL_MAX} s)"
	for ((r = 1; r <= RUNS; r++)); do
		heal_run "heal-r$r"
		single+=("$HR_SINGLE") client+=("$HR_CLIENT") gap2+=("$HR_GAP2") gap1+=("$HR_GAP1") flips+=("$HR_FLIPS")
		[[ -z "$HR_NOTE" ]] || notes+=("run $r: $HR_NOTE")
		say "  heal run $r: single holder +$HR_SINGLE ms, client on it +$HR_CLIENT ms, second outage $HR_GAP2 ms ${HR_NOTE:+($HR_NOTE)}"
	done
	row_ms "Partition heal: heal to a single holder" "$(median "${single[@]}")" "" "${single[*]}" "$(count_of inf "${single[@]}")" "$HEAL_MAX"
	row_ms "Partition heal: heal to the client on that holder" "$(median "${client[@]}")" "" "${client[*]}" "$(count_of inf "${client[@]}")" "$HEAL_MAX"
	row_ms "Partition heal: second outage (longest gap after the heal; > 50 ms is an outage)" "$(median "${gap2[@]}")" 50 "${gap2[*]}" "$(count_of inf "${gap2[@]}")"
	row "Partition heal: changes of the answering host seen by the client after the heal" \
		"$(median "${flips[@]}")" "${flips[*]//inf/✗}" "" "–"
	row_ms "Partition start: outage until the standby took over" "$(median "${gap1[@]}")" "" "${gap1[*]}" 0
	if ((${#notes[@]} > 0)); then NOTES+=("heal: ${notes[*]}"); fi
}

# --- 3b: isolated holder ----------------------------------------------------------

REF=192.0.2.100 # the client: the reference host of the isolated runs

# isolated_run TAG: a pair with the client as reference host; isolate the
# holder h1 (carrier up) at a random moment, time h2's claim and h1's
# release, heal 1 s after the release and count the client's moves. Sets
# IR_CLAIM, IR_DROP (ms after the cut, "inf" if not within 15 s), IR_MOVES.
isolated_run() {
	local tag="$1" json="$OUT/tmp/$1.json" t0
	IR_CLAIM=inf IR_DROP=inf IR_MOVES=inf
	if ! pair_up i "--reference=$REF"; then
		raw "$tag: setup failed: $PAIR_ERR"
		lab_done "$tag"
		return
	fi
	start_client 40s "$json"
	sleep "$(printf '1.%03d' $((500 + RANDOM % 1000)))"
	tick
	t0=$NOW
	lab isolate h1 >/dev/null
	if wait_until 15 holds h2 "$VIP"; then
		tick
		IR_CLAIM=$((NOW - t0))
	fi
	if wait_until 15 eval '! holds h1 "$VIP"'; then
		tick
		IR_DROP=$((NOW - t0))
	fi
	sleep 1
	lab unisolate h1 >/dev/null
	sleep 3
	stop_client "$CLIENT_PID"
	IR_MOVES="$(json_changes "$json")"
	raw "$tag: claim_ms=$IR_CLAIM release_ms=$IR_DROP client_moves=$IR_MOVES" \
		"claims_h1=$(log_count h1 "$CLAIM_RE") claims_h2=$(log_count h2 "$CLAIM_RE")" \
		"h1_holds=$(holds h1 "$VIP" && echo yes || echo no) h2_holds=$(holds h2 "$VIP" && echo yes || echo no)" \
		"summary=$(tr -d '\n' <"$json")"
	lab_done "$tag"
}

measure_isolated() {
	local r
	local -a claim=() drop=() moves=()
	say "isolated: $RUNS runs (reference host $REF; isolate the holder, heal 1 s after it released)"
	for ((r = 1; r <= RUNS; r++)); do
		isolated_run "isolated-r$r"
		claim+=("$IR_CLAIM") drop+=("$IR_DROP") moves+=("$IR_MOVES")
		say "  isolated run $r: standby claimed +$IR_CLAIM ms, isolated holder released +$IR_DROP ms, client moves $IR_MOVES"
	done
	row_ms "Isolated holder (reference host): standby took over, after the cut" "$(median "${claim[@]}")" "" "${claim[*]}" "$(count_of inf "${claim[@]}")" 15
	row_ms "Isolated holder (reference host): cut-off holder released the VIP, after the cut" "$(median "${drop[@]}")" 5000 "${drop[*]}" "$(count_of inf "${drop[@]}")" 15
	local met="**no**"
	[[ "$(median "${moves[@]}")" != 1 ]] || met=yes
	row "Isolated holder (reference host): client moves, cut and heal" "$(median "${moves[@]}")" "${moves[*]//inf/✗}" "1" "$met"
}

# --- 4: false takeovers under loss ----------------------------------------------

# loss_run PCT SLOT RESULTFILE: lab $PREFIX-lSLOT, PCT% loss both ways on
# h2's port for LOSS_SECS, a client on the VIP all along. Runs in a subshell.
loss_run() {
	local pct="$1" slot="$2" res="$3" json mon mon_pid from h1from claims appear
	json="$OUT/tmp/loss-$pct.json"
	mon="$OUT/tmp/loss-$pct.addr"
	if ! pair_up "l$slot"; then
		echo "fail fail fail fail setup:$PAIR_ERR" >"$res"
		lab_done "loss-$pct"
		return
	fi
	# Every address the standby gains or loses, timestamped.
	ip -n "$(ns h2)" -ts monitor address >"$mon" 2>/dev/null &
	mon_pid=$!
	from=$(($(log_lines h2) + 1))
	h1from=$(($(log_lines h1) + 1))
	lab loss h2 "$pct" >/dev/null
	start_client "${LOSS_SECS}s" "$json"
	wait "$CLIENT_PID" || true
	lab loss h2 0 >/dev/null
	kill -s TERM "$mon_pid" 2>/dev/null || true
	wait "$mon_pid" 2>/dev/null || true
	claims="$(log_count h2 "$CLAIM_RE" "$from")"
	appear="$(grep -v Deleted "$mon" | grep -cF " $VIP/32" || true)"
	echo "$claims $appear $(json_field longest_gap_ms "$json") $(json_changes "$json")" \
		"h1_split_brain_lines=$(log_count h1 'split brain|conflict' "$h1from")" \
		"h1_released=$(log_count h1 'released VIP' "$h1from")" \
		"h2_claims_aborted=$(log_count h2 'claim aborted' "$from")" >"$res"
	if [[ -s "$mon" ]]; then sed "s/^/    loss-$pct h2 address event: /" "$mon" >"$res.events"; fi
	lab_done "loss-$pct"
}

# loss_batch PCT...: at most two loss runs at once (one lab each), bounded.
loss_batch() {
	local pct pid deadline slot=0
	local -a pids=()
	for pct in "$@"; do
		slot=$((slot + 1))
		loss_run "$pct" "$slot" "$OUT/tmp/loss-$pct.res" >"$OUT/tmp/loss-$pct.out" 2>&1 &
		pids+=("$!")
		BG+=("$!")
	done
	tick
	deadline=$((NOW + (LOSS_SECS + 60) * 1000))
	for pid in "${pids[@]}"; do
		while kill -0 "$pid" 2>/dev/null; do
			tick
			if ((NOW > deadline)); then
				kill -s TERM "$pid" 2>/dev/null || true
				break
			fi
			sleep 0.5
		done
		wait "$pid" 2>/dev/null || true
	done
}

measure_loss() {
	local -a levels
	IFS=, read -ra levels <<<"$LOSS_LEVELS"
	local i pct
	say "loss: ${LOSS_LEVELS//,/% and }% loss both ways on h2's link, ${LOSS_SECS} s each, two labs at a time"
	for ((i = 0; i < ${#levels[@]}; i += 2)); do
		loss_batch "${levels[@]:i:2}"
	done
	for pct in "${levels[@]}"; do
		local claims="?" appear="?" gap="?" changes="?" rest=""
		if [[ -s "$OUT/tmp/loss-$pct.res" ]]; then
			read -r claims appear gap changes rest <"$OUT/tmp/loss-$pct.res"
		else
			rest="no result: $(tail -n 3 "$OUT/tmp/loss-$pct.out" | tr '\n' ' ')"
		fi
		raw "loss-$pct: seconds=$LOSS_SECS claims_by_standby=$claims vip_appearances_on_standby=$appear" \
			"client_longest_gap_ms=$gap client_responder_changes=$changes $rest"
		if [[ -s "$OUT/tmp/loss-$pct.res.events" ]]; then cat "$OUT/tmp/loss-$pct.res.events" >>"$OUT/runs.log"; fi
		say "  loss $pct%: $claims claims, $appear VIP appearances on h2, client longest gap $gap ms"
		local target="" met="–"
		if ((pct == 5)); then
			target="0"
			if [[ "$claims" == 0 && "$appear" == 0 ]]; then met="yes"; elif [[ "$claims" =~ ^[0-9]+$ ]]; then met="**no**"; fi
		fi
		row "False takeovers, ${pct}% loss both ways on the standby, ${LOSS_SECS} s" \
			"$claims claims, $appear VIP appearances" \
			"one window; client: longest gap $gap ms, $changes responder changes" "$target" "$met"
	done
}

# --- 5 and 6: steady-state cost ---------------------------------------------------

# scale_vips N: N VIPs, 198.51.100.1-254 then 203.0.113.1-... (one per line).
scale_vips() {
	local k
	for ((k = 1; k <= $1; k++)); do
		if ((k <= 254)); then echo "198.51.100.$k"; else echo "203.0.113.$((k - 254))"; fi
	done
}

# syscall_count_start PID FILE SECS: count PID's system calls (all threads)
# for SECS in the background with perf, if it is there; syscall_rate FILE SECS
# reads the rate afterwards ("–" without perf).
syscall_count_start() {
	if command -v perf >/dev/null 2>&1; then
		perf stat -x, -e raw_syscalls:sys_enter -p "$1" -o "$2" -- sleep "$3" >/dev/null 2>&1 &
		BG+=("$!")
	fi
}
syscall_rate() {
	local n
	n="$(awk -F, '/raw_syscalls:sys_enter/ { print $1 }' "$1" 2>/dev/null)"
	if [[ "$n" =~ ^[0-9]+$ ]]; then awk -v n="$n" -v s="$2" 'BEGIN { printf "%.0f", n / s }'; else echo "–"; fi
}

# steady_run HOSTS VIPS: h1 (priority 200) holds VIPS VIPs, HOSTS-1 standbys.
# Appends a row to the scale table; the 2x1 setup also to the main table.
# Per window: ARP frames of the whole group on the bridge, CPU per 30 s of
# the holder and of the standbys (median), system calls per second of the
# holder and of h2 (perf), RSS.
steady_run() {
	local hosts="$1" nv="$2" tag="steady-$1x$2" i w settle_until secs="$STEADY_SECS"
	local -a vips=() pids=() names=()
	mapfile -t vips < <(scale_vips "$nv")
	say "steady: $hosts hosts, $nv VIP(s): ${STEADY_RUNS} window(s) of ${secs} s"
	lab_new s "$hosts"
	counters_setup "$hosts"
	lab start h1 -- -i eth0 --priority 200 "${EXTRA[@]}" "${vips[@]}" >/dev/null
	if ! wait_until 30 holds_all h1 "${vips[@]}"; then
		raw "$tag: h1 did not hold all $nv VIPs within 30 s"
		SCALE_ROWS+=("| $hosts | $nv | setup failed: h1 did not hold all VIPs | | | | | |")
		lab_done "$tag"
		return
	fi
	tick
	# Past the claim's announcement rounds (at 0, 1.1, ... 4.4 s by default).
	settle_until=$((NOW + 5000))
	for ((i = 2; i <= hosts; i++)); do
		lab start "h$i" -- -i eth0 "${EXTRA[@]}" "${vips[@]}" >/dev/null
	done
	for ((i = 2; i <= hosts; i++)); do
		wait_until 30 log_has_n "h$i" "$HELD_RE" "$nv" || raw "$tag: h$i did not log '$HELD_RE' $nv times within 30 s"
	done
	tick
	# and past the standbys' start-up (one discovery probe per VIP)
	settle_until=$((settle_until > NOW + 3000 ? settle_until : NOW + 3000))
	if ((NOW < settle_until)); then sleep "$(printf '%d.%03d' $(((settle_until - NOW) / 1000)) $(((settle_until - NOW) % 1000)))"; fi
	for ((i = 1; i <= hosts; i++)); do
		names+=("h$i")
		pids+=("$(daemon_pid "h$i")")
	done

	local -a bc=() uc=() cpu_h=() cpu_s=() sc_h=() sc_s=()
	local before="$OUT/tmp/$tag.c0" after="$OUT/tmp/$tag.c1" b u p
	for ((w = 1; w <= STEADY_RUNS; w++)); do
		local -a t0=() t1=()
		counters_read >"$before"
		syscall_count_start "${pids[0]}" "$OUT/tmp/$tag.sc1" "$secs"
		syscall_count_start "${pids[1]}" "$OUT/tmp/$tag.sc2" "$secs"
		for p in "${pids[@]}"; do t0+=("$(cpu_ticks "$p")"); done
		sleep "$secs"
		counters_read >"$after"
		for p in "${pids[@]}"; do t1+=("$(cpu_ticks "$p")"); done
		sleep 0.3 # perf writes its count
		b="$(counters_sum "$before" "$after" ':bcast:')"
		u="$(counters_sum "$before" "$after" ':ucast:')"
		bc+=("$(awk -v n="$b" -v s="$secs" 'BEGIN { printf "%.2f", n / s }')")
		uc+=("$(awk -v n="$u" -v s="$secs" 'BEGIN { printf "%.2f", n / s }')")
		sc_h+=("$(syscall_rate "$OUT/tmp/$tag.sc1" "$secs")")
		sc_s+=("$(syscall_rate "$OUT/tmp/$tag.sc2" "$secs")")
		local line="$tag window $w: ${secs} s, ARP broadcast $b, unicast $u; syscalls/s h1 ${sc_h[-1]} h2 ${sc_s[-1]};" sb=""
		for ((i = 0; i < hosts; i++)); do
			local ms=$(((t1[i] - t0[i]) * 1000 / CLK_TCK))
			local per30
			per30="$(awk -v ms="$ms" -v s="$secs" 'BEGIN { printf "%.0f", ms * 30 / s }')"
			if ((i == 0)); then cpu_h+=("$per30"); else sb+="$per30 "; fi
			line+=" ${names[i]} cpu ${ms} ms"
			line+=" (bcast $(counters_sum "$before" "$after" "^${names[i]}:bcast:"), probes $(counters_sum "$before" "$after" "^${names[i]}:bcast:probe"), ucast $(counters_sum "$before" "$after" "^${names[i]}:ucast:"))"
		done
		# shellcheck disable=SC2086 # word splitting of the list is intended
		if ((hosts > 1)); then cpu_s+=("$(median $sb)"); fi
		raw "$line"
	done
	local hwm=0 rss=0 kb
	local rss_line="$tag RSS (VmRSS/VmHWM kB):"
	for ((i = 0; i < hosts; i++)); do
		kb="$(vm_kb "${pids[i]}" VmHWM)"
		rss_line+=" ${names[i]} $(vm_kb "${pids[i]}" VmRSS)/$kb"
		((kb <= hwm)) || hwm=$kb
		kb="$(vm_kb "${pids[i]}" VmRSS)"
		((kb <= rss)) || rss=$kb
	done
	raw "$rss_line"
	local others=0
	for ((i = 2; i <= hosts; i++)); do others=$((others + $(log_count "h$i" "$CLAIM_RE"))); done
	raw "$tag claim lines since the start: h1 $(log_count h1 "$CLAIM_RE"), the standbys $others (expected: $nv and 0)"
	local mbc muc mch mcs="–" rss_mb msh mss
	mbc="$(fmt "%.2f" "$(median "${bc[@]}")")" muc="$(fmt "%.2f" "$(median "${uc[@]}")")"
	mch="$(median "${cpu_h[@]}")"
	((hosts == 1)) || mcs="$(median "${cpu_s[@]}")"
	msh="$(median "${sc_h[@]}")" mss="$(median "${sc_s[@]}")"
	rss_mb="$(awk -v k="$rss" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }')"
	# FIG: bcast/s ucast/s cpu-holder cpu-standby (ms per 30 s) rss-kB hwm-kB
	FIG["$hosts x $nv"]="$mbc $muc $mch ${mcs/–/0} $rss $hwm"
	SCALE_ROWS+=("| $hosts | $nv | $mbc | $muc | $mch / $mcs ms | $msh / $mss | $rss_mb MB |")
	if ((hosts == 2 && nv == 1)); then
		local met_b="**no**" met_r="**no**" met_h="**no**" met_s="**no**"
		awk -v x="$mbc" 'BEGIN { exit !(x <= 1) }' && met_b=yes
		awk -v k="$hwm" 'BEGIN { exit !(k * 1024 < 10e6) }' && met_r=yes
		awk -v x="$mch" 'BEGIN { exit !(x <= 10) }' && met_h=yes
		awk -v x="$mcs" 'BEGIN { exit !(x <= 10) }' && met_s=yes
		row "Steady state: ARP broadcast frames/s (whole group, 1 VIP)" "$mbc" "${bc[*]}" "≤ 1" "$met_b"
		row "Steady state: ARP unicast frames/s (whole group, 1 VIP)" "$muc" "${uc[*]}" "" "–"
		row "Idle CPU of the holder, ms per 30 s (system calls/s)" "$mch ms ($msh/s)" "${cpu_h[*]}" "≤ 10 ms" "$met_h"
		row "Idle CPU of the standby, ms per 30 s (system calls/s)" "$mcs ms ($mss/s)" "${cpu_s[*]}" "≤ 10 ms" "$met_s"
		row "Steady state: peak RSS (VmHWM), largest daemon" "$(awk -v k="$hwm" 'BEGIN { printf "%.1f", k * 1024 / 1e6 }') MB" "${STEADY_RUNS} × ${secs} s" "< 10 MB" "$met_r"
	fi
	lab_done "$tag"
}

# measure_steady: the idle figures are the median of at least 3 windows.
measure_steady() {
	local runs="$STEADY_RUNS"
	((STEADY_RUNS >= 3)) || STEADY_RUNS=3
	steady_run 2 1
	STEADY_RUNS="$runs"
}

# ratio_row LABEL A B FIELD MAX: a row comparing field FIELD (1-based) of
# FIG[B] to FIG[A]: met when B <= MAX x A.
ratio_row() {
	local label="$1" a="${FIG[$2]:-}" b="${FIG[$3]:-}" f="$4" max="$5" x y met="**no**"
	[[ -n "$a" && -n "$b" ]] || return 0
	x="$(awk -v s="$a" -v f="$f" 'BEGIN { split(s, v, " "); print v[f] }')"
	y="$(awk -v s="$b" -v f="$f" 'BEGIN { split(s, v, " "); print v[f] }')"
	awk -v x="$x" -v y="$y" -v m="$max" 'BEGIN { exit !(y <= m * x || y <= x) }' && met=yes
	row "$label" "$y vs $x ($(awk -v x="$x" -v y="$y" 'BEGIN { if (x > 0) printf "%.1f×", y / x; else print "–" }'))" "$3 vs $2" "≤ ${max}×" "$met"
}

measure_scale() {
	wanted steady || steady_run 2 1 # the baseline of the growth
	steady_run 2 50
	steady_run 2 256
	steady_run 5 1
	steady_run 5 256
	ratio_row "Scale: ARP broadcast frames/s of the group, 5 hosts × 256 VIPs vs × 1" "5 x 1" "5 x 256" 1 3
	ratio_row "Scale: ARP unicast frames/s of the group, 5 hosts × 256 VIPs vs × 1" "5 x 1" "5 x 256" 2 3
	ratio_row "Scale: idle CPU of a standby (ms/30 s), 256 VIPs vs 1" "2 x 1" "2 x 256" 4 2
	ratio_row "Scale: idle CPU of a standby (ms/30 s), 50 VIPs vs 1" "2 x 1" "2 x 50" 4 2
	ratio_row "Scale: idle CPU of the holder (ms/30 s), 50 VIPs vs 1" "2 x 1" "2 x 50" 3 2
	ratio_row "Scale: RSS of the holder, 256 VIPs vs 1" "2 x 1" "2 x 256" 5 2
}

# --- scale failover: the last of 256 VIPs -------------------------------------

# neigh_all_at MAC VIP...: the client's cache has every VIP at MAC (one
# netlink dump and one awk per poll: a 256-VIP check takes milliseconds).
neigh_all_at() {
	local mac="$1"
	shift
	ip -n "$(ns c)" neigh show dev eth0 2>/dev/null | awk -v mac="$mac" -v want="$#" -v list="$*" '
		BEGIN { n = split(list, v, " "); for (i = 1; i <= n; i++) vip[v[i]] = 1 }
		($1 in vip) && / lladdr / { for (i = 1; i < NF; i++) if ($i == "lladdr" && $(i + 1) == mac) ok++ }
		END { exit !(ok == want) }'
}

# scalefail_run NV: h1 (priority 200) holds NV VIPs, h2 and h3 stand by; the
# client has talked to every VIP (so its cache has them all); h1's port is
# cut; RUN_RESULT is the time until the client's cache points every VIP at
# h2 (h2 adds before it announces, so then every VIP answers at h2).
scalefail_run() {
	local nv="$1" tag="scalefail-$1-$2" i t_cut
	local -a vips=()
	mapfile -t vips < <(scale_vips "$nv")
	RUN_RESULT=inf
	lab_new x 3
	ip -n "$(ns c)" route add 198.51.100.0/24 dev eth0
	ip -n "$(ns c)" route add 203.0.113.0/24 dev eth0
	for ((i = 1; i <= 3; i++)); do
		lab start "h$i" -- -i eth0 --priority $((250 - 50 * i)) "${EXTRA[@]}" "${vips[@]}" >/dev/null
	done
	if ! wait_until 30 holds_all h1 "${vips[@]}"; then
		raw "$tag: h1 did not hold all $nv VIPs"
		lab_done "$tag"
		return
	fi
	sleep 2
	# The client talks to every VIP once (a gratuitous ARP only updates an
	# existing entry).
	printf '%s\n' "${vips[@]}" | ip netns exec "$(ns c)" xargs -P 32 -I{} ping -n -q -c 1 -W 1 {} >/dev/null 2>&1 || true
	if ! neigh_all_at "$(mac_of h1)" "${vips[@]}"; then
		raw "$tag: the client did not reach every VIP at h1"
		lab_done "$tag"
		return
	fi
	tick
	t_cut=$NOW
	lab cut h1 >/dev/null
	if wait_until 10 neigh_all_at "$(mac_of h2)" "${vips[@]}"; then
		tick
		RUN_RESULT=$((NOW - t_cut))
	fi
	raw "$tag: all $nv VIPs at h2 after $RUN_RESULT ms; h3 claims $(log_count h3 "$CLAIM_RE")"
	lab_done "$tag"
}

measure_scalefail() {
	local nv r
	local -a one=() many=()
	for nv in 1 256; do
		say "scale failover: $nv VIP(s), $RUNS runs"
		for ((r = 1; r <= RUNS; r++)); do
			scalefail_run "$nv" "$r"
			if ((nv == 1)); then one+=("$RUN_RESULT"); else many+=("$RUN_RESULT"); fi
		done
	done
	local m1 m256 bound
	m1="$(median "${one[@]}")" m256="$(median "${many[@]}")"
	bound="$(awk -v m="$m1" 'BEGIN { if (m == "inf") print ""; else printf "%.0f", m * 1.2 }')"
	row_ms "Holder death, 1 VIP: until the client's cache points at the new holder (3 hosts)" "$m1" "" "${one[*]}" "$(count_of inf "${one[@]}")"
	row_ms "Holder death, 256 VIPs: until the last VIP points at the new holder" "$m256" "$bound" "${many[*]}" "$(count_of inf "${many[@]}")"
}

# --- 7: a flood of foreign ARP for the VIP ----------------------------------------

# measure_flood: FLOOD_SECS of lab/arpflood from h2 to the holder h1's MAC at
# 10 000 frames/s, each frame from a new random MAC (gratuitous ARP and
# replies for the VIP, invalid floatip tags, malformed frames). Defences are
# h1's broadcast ARP with the VIP as sender, counted on the bridge (--refresh
# 0: nothing else sends those once the claim's rounds are over). The flood goes
# to h1 alone: broadcast, it would poison the client's cache whatever h1 does.
measure_flood() {
	local tag=flood secs="$FLOOD_SECS" pid c0 c1 l0 l1 t0 el
	local before="$OUT/tmp/flood.c0" after="$OUT/tmp/flood.c1" out="$OUT/tmp/flood.json" cl="$OUT/tmp/flood.client"
	say "flood: ${secs} s of foreign ARP at 10 000 frames/s against the holder"
	lab_new f 2
	start_servers h1
	lab start h1 -- -i eth0 --priority 200 --refresh 0 "${EXTRA[@]}" "$VIP" >/dev/null
	if ! wait_until 10 holds h1 "$VIP"; then
		raw "$tag: h1 did not take the VIP within 10 s"
		row "ARP flood: setup" "failed" "" "" "**no**"
		lab_done "$tag"
		return
	fi
	sleep 5 # past the claim's announcement rounds
	counters_setup 2
	ip netns exec "$(ns br)" nft add rule bridge bench pre iifname h1 ether type arp ether daddr ff:ff:ff:ff:ff:ff \
		arp saddr ip "$VIP" counter comment '"h1:announce"'
	pid="$(daemon_pid h1)"
	start_client "$((secs + 2))s" "$cl"
	sleep 1
	counters_read >"$before"
	c0="$(cpu_ticks "$pid")" l0="$(log_lines h1)"
	tick
	t0=$NOW
	ip netns exec "$(ns h2)" "$ARPFLOOD" -i eth0 -vip "$VIP" -to "$(mac_of h1)" -rate 10000 -duration "${secs}s" \
		>"$out" 2>>"$OUT/runs.log" </dev/null || raw "$tag: arpflood failed"
	tick
	el=$((NOW - t0))
	c1="$(cpu_ticks "$pid")" l1="$(log_lines h1)"
	counters_read >"$after"
	wait "$CLIENT_PID" 2>/dev/null || true
	local rate cpu defences lines kept=yes max
	rate="$(fmt "%.0f" "$(json_field frames_per_second "$out")")"
	cpu="$(awk -v t=$((c1 - c0)) -v hz="$CLK_TCK" -v ms="$el" 'BEGIN { printf "%.1f", 100 * t / hz / (ms / 1000) }')"
	defences="$(counters_sum "$before" "$after" '^h1:announce')"
	lines=$((l1 - l0))
	holds h1 "$VIP" || kept="**no**"
	max=$((el / 10000 + 1))
	raw "$tag: $(cat "$out")"
	raw "$tag: ${el} ms, h1 cpu $((c1 - c0)) ticks, defences $defences, log lines $lines, client $(cat "$cl")"
	local met_d="**no**" met_l="**no**" met_c="**no**"
	((defences >= 1 && defences <= max)) && met_d=yes
	((lines <= 20)) && met_l=yes
	awk -v c="$cpu" 'BEGIN { exit !(c <= 50) }' && met_c=yes
	row "ARP flood, ${secs} s: frames/s achieved (lab/arpflood, to the holder)" "$rate" "1 × ${secs} s" "" "–"
	row "ARP flood: the holder keeps the VIP; client answered / sent, longest gap" "$kept; $(json_field answered "$cl") / $(json_field sent "$cl"), $(json_field longest_gap_ms "$cl") ms" "" "kept" "$kept"
	row "ARP flood: defences (RFC 5227: at most one per 10 s)" "$defences" "" "1 … $max" "$met_d"
	row "ARP flood: the holder's log lines during the flood" "$lines" "" "≤ 20" "$met_l"
	row "ARP flood: the holder's CPU (% of one core)" "${cpu}%" "" "≤ 50%" "$met_c"
	lab_done "$tag"
}

# --- 8: pool mode (--spread) -------------------------------------------------------

POOL_HOSTS=5
POOL_VIPS=64

# pool_vips_of HOST: the pool's VIPs on HOST's eth0, one a line.
pool_vips_of() {
	ip -n "$(ns "$1")" -4 -o addr show dev eth0 2>/dev/null |
		grep -oE "inet $SCALE_NET\.[0-9]+/32" | sed -e 's/^inet //' -e 's#/32##' || true
}

# pool_balanced HOST...: every pool VIP held once, each of HOSTS holding
# floor(M/N) or ceil(M/N).
pool_balanced() {
	local h n total=0 lo hi all
	lo=$((POOL_VIPS / $#)) hi=$(((POOL_VIPS + $# - 1) / $#))
	all="$(for h in "$@"; do pool_vips_of "$h"; done)"
	[[ "$(sort -u <<<"$all" | grep -c .)" == "$POOL_VIPS" ]] || return 1
	for h in "$@"; do
		n="$(pool_vips_of "$h" | grep -c .)" || true
		((n >= lo && n <= hi)) || return 1
		total=$((total + n))
	done
	((total == POOL_VIPS))
}

# pool_clients TAG SECS VIP...: one udpecho client per VIP (every 10 ms) in
# the background; sets POOL_PIDS, the summaries in $OUT/tmp/TAG-VIP.json.
pool_clients() {
	local tag="$1" secs="$2" v
	shift 2
	POOL_PIDS=()
	for v in "$@"; do
		ip netns exec "$(ns c)" "$UDPECHO" client -target "$v:$PORT" -every 10ms -duration "${secs}s" -json \
			>"$OUT/tmp/$tag-$v.json" 2>/dev/null </dev/null &
		POOL_PIDS+=($!)
	done
}

# pool_worst_gap TAG DIR VIP...: the worst outage at the move of each
# client's VIP: the gap before its first change away from h1 (DIR from) or
# its last change to h1 (DIR to); "inf" when a client saw no such change.
pool_worst_gap() {
	local tag="$1" dir="$2" v g worst=0
	shift 2
	for v in "$@"; do
		g="$(grep -oE "\"$dir\":\"h1\"[^}]*\"gap_ms\":[0-9]+" "$OUT/tmp/$tag-$v.json" |
			{ if [[ "$dir" == from ]]; then head -n 1; else tail -n 1; fi; } | grep -oE '[0-9]+$')" || true
		[[ "$g" =~ ^[0-9]+$ ]] || {
			echo inf
			return
		}
		((g <= worst)) || worst=$g
	done
	echo "$worst"
}

# pool_run TAG: POOL_HOSTS hosts with --spread over POOL_VIPS VIPs; one
# client per VIP of h1; cut h1's link (a death), then bring it back. Sets
# PR_FAIL (the worst client outage at the death: until the last of h1's VIPs
# answers again) and PR_MOVE (the worst outage as h1 takes its share back
# after the hold-down: a planned move), "inf" when it did not happen. The
# outage of a move is the gap between a client's last answer from the old
# holder and its first from the new one (udpecho's gap_ms of that change).
pool_run() {
	local tag="$1" i h v
	local -a hosts=() mine=()
	PR_FAIL=inf PR_MOVE=inf
	lab_new p "$POOL_HOSTS"
	ip -n "$(ns c)" route add "$SCALE_NET.0/24" dev eth0
	for ((i = 1; i <= POOL_HOSTS; i++)); do
		hosts+=("h$i")
		lab start "h$i" -- -i eth0 --spread "${EXTRA[@]}" "$SCALE_NET.1-$SCALE_NET.$POOL_VIPS" >/dev/null
	done
	if ! wait_until 30 pool_balanced "${hosts[@]}"; then
		raw "$tag: the pool did not balance within 30 s"
		lab_done "$tag"
		return
	fi
	mapfile -t mine < <(pool_vips_of h1)
	for h in "${hosts[@]}"; do
		for v in "${mine[@]}"; do
			ip netns exec "$(ns "$h")" "$UDPECHO" serve -listen "$v:$PORT" -name "$h" >/dev/null 2>&1 &
		done
	done
	sleep 1
	pool_clients "$tag-fail" 8 "${mine[@]}"
	sleep "$(printf '2.%03d' $((RANDOM % 1000)))"
	lab cut h1 >/dev/null
	wait_until 10 pool_balanced "${hosts[@]:1}" || true
	for i in "${POOL_PIDS[@]}"; do wait "$i" 2>/dev/null || true; done
	PR_FAIL="$(pool_worst_gap "$tag-fail" from "${mine[@]}")"
	# Back: h1 holds nothing during its hold-down, then takes its share.
	pool_clients "$tag-move" 14 "${mine[@]}"
	sleep 1
	lab heal h1 >/dev/null
	wait_until 12 holds_all h1 "${mine[@]}" || true
	for i in "${POOL_PIDS[@]}"; do wait "$i" 2>/dev/null || true; done
	PR_MOVE="$(pool_worst_gap "$tag-move" to "${mine[@]}")"
	pool_balanced "${hosts[@]}" || PR_MOVE=inf
	raw "$tag: h1 held ${#mine[@]} VIPs; share failover (worst client gap) $PR_FAIL ms; planned move back (worst gap) $PR_MOVE ms"
	lab_done "$tag"
}

measure_pool() {
	local r
	local -a fail=() move=()
	say "pool: $RUNS runs ($POOL_HOSTS hosts x $POOL_VIPS VIPs with --spread; cut one host, then bring it back)"
	for ((r = 1; r <= RUNS; r++)); do
		pool_run "pool-r$r"
		fail+=("$PR_FAIL") move+=("$PR_MOVE")
		say "  pool run $r: share failover $PR_FAIL ms, planned move $PR_MOVE ms"
	done
	row_ms "Pool ($POOL_HOSTS x $POOL_VIPS VIPs, --spread): a host dies, until the last of its VIPs answers again (worst client outage)" \
		"$(median "${fail[@]}")" 733 "${fail[*]}" "$(count_of inf "${fail[@]}")"
	row_ms "Pool: the host comes back, its share moves to it after the hold-down (worst client outage at the move, make before break)" \
		"$(median "${move[@]}")" 100 "${move[*]}" "$(count_of inf "${move[@]}")"
}

measure_size() {
	local bytes met="**no**"
	bytes="$(stat -c %s "$BIN")"
	((bytes > 10000000)) || met=yes
	row "Static binary size (CGO_ENABLED=0, -trimpath, -s -w)" \
		"$(awk -v b="$bytes" 'BEGIN { printf "%.2f MB", b / 1e6 }') ($bytes bytes)" "–" "≤ 10 MB" "$met"
	raw "binary: $BIN $bytes bytes${BIN_NOTE:+ ($BIN_NOTE)}"
}

# --- the table -------------------------------------------------------------------

ROWS=()
SCALE_ROWS=()
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
	for x in o t h i l1 l2 s x f p; do LABS+=("$(lab_name "$x")"); done
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
	for m in outage handover reload conns heal isolated loss steady scale scalefail flood pool; do
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
