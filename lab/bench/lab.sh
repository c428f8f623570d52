# shellcheck shell=bash
# The bench's lab: labs of lab/lab.sh named fipbench-<pid>-<x>, the hosts' daemons
# and clients, nftables counters on the bridge, process figures.
# Sourced by lab/bench.sh, which sets the globals these functions use.

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
