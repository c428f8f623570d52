#!/usr/bin/env bash
# The live failover demo of lab/lab.sh (lab.sh demo): a 2-host lab, the
# takeover, the holder's link cut, the failover as the client sees it.
# Sourced by lab.sh, whose functions and settings it uses; run directly, it
# runs the demo through lab.sh.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	exec bash "$(dirname "$0")/lab.sh" demo
fi

# --- demo -------------------------------------------------------------------

holders() { # prints each host's eth0 addresses
	local i
	for i in 1 2; do
		printf '  h%s: ' "$i"
		ip -n "$P-h$i" -br -4 addr show dev eth0 | tr -s ' '
	done
}

wait_vip_on() { # host-index seconds; prints the milliseconds it took
	local i="$1" start deadline
	start="$(now_ms)"
	deadline=$((start + $2 * 1000))
	until ip -n "$P-h$i" -4 addr show dev eth0 2>/dev/null | grep -qF " $VIP/"; do
		(($(now_ms) < deadline)) || return 1
		sleep 0.02
	done
	echo "$(($(now_ms) - start))"
}

cmd_demo() {
	local client_pid ms h deadline
	[[ $EUID -eq 0 ]] || die "the demo must run as root (network namespaces)"
	say "Checking tools"
	cmd_deps
	[[ -z "$(our_namespaces)" ]] || die "lab '$P' already exists; run: FLOATIP_LAB=$P $0 down"
	trap 'cmd_down' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	mkdir -p "$STATE"

	say "Building floatip and udpecho into $STATE"
	if [[ -n "${FLOATIP_BIN:-}" ]]; then
		echo "  using FLOATIP_BIN=$FLOATIP_BIN"
		cp -- "$FLOATIP_BIN" "$STATE/floatip"
	else
		(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$STATE/floatip" .)
	fi
	(cd "$REPO" && CGO_ENABLED=0 go build -trimpath -o "$STATE/udpecho" ./lab/udpecho)

	say "Building the LAN: a bridge, a client (192.0.2.100), hosts h1 (192.0.2.11) and h2 (192.0.2.12)"
	cmd_up 2

	say "Starting a UDP echo service on both hosts, bound to the floating IP $VIP:$ECHO_PORT"
	start_bg echo-h1 "$P-h1" "$STATE/udpecho" serve -listen "$VIP:$ECHO_PORT" -name h1 >/dev/null
	start_bg echo-h2 "$P-h2" "$STATE/udpecho" serve -listen "$VIP:$ECHO_PORT" -name h2 >/dev/null
	echo "  each answers with its own name, so the client sees which host holds the VIP"

	say "Starting floatip on h1: floatip -i eth0 $VIP"
	start_bg h1 "$P-h1" "$STATE/floatip" -i eth0 "$VIP" >/dev/null
	if ! ms="$(wait_vip_on 1 10)"; then
		tail -n 20 "$STATE/h1.log" >&2 || true
		die "h1 did not take $VIP within 10 s"
	fi
	echo "  h1 holds $VIP (took $ms ms)"

	say "Starting floatip on h2 as the backup: floatip -i eth0 --priority 50 $VIP"
	start_bg h2 "$P-h2" "$STATE/floatip" -i eth0 --priority 50 "$VIP" >/dev/null
	sleep 1
	echo "  who holds the VIP:"
	holders

	say "Starting the client in $CLIENT: a request to $VIP:$ECHO_PORT every 10 ms for 10 s"
	echo "  (it prints a line as soon as the answering host changes or answers resume after a gap)"
	ip netns exec "$CLIENT" "$STATE/udpecho" client -target "$VIP:$ECHO_PORT" \
		-every 10ms -duration 10s -live </dev/null &
	client_pid=$!
	echo "$client_pid" >"$STATE/client.pid"
	sleep 2
	echo "  the client's ARP entry for $VIP (h1 is $(host_mac 1), h2 is $(host_mac 2)):"
	ip -n "$CLIENT" neigh show "$VIP" | sed 's/^/    /'

	say "Cutting h1's link: its bridge port goes down, h1 sees NO-CARRIER"
	cmd_cut_heal h1 down
	if ms="$(wait_vip_on 2 15)"; then
		echo "  h2 holds $VIP ${ms} ms after the cut"
	else
		echo "  h2 did NOT take $VIP within 15 s of the cut"
	fi
	holders
	sleep 1
	echo "  the client's ARP entry for $VIP now:"
	ip -n "$CLIENT" neigh show "$VIP" | sed 's/^/    /'

	say "Waiting for the client's summary"
	deadline=$(($(now_ms) + 15000))
	while pid_alive "$client_pid" && (($(now_ms) < deadline)); do sleep 0.1; done
	if pid_alive "$client_pid"; then kill -s TERM "$client_pid" 2>/dev/null || true; fi
	wait "$client_pid" || true
	rm -f "$STATE/client.pid"

	say "What the daemons logged (interesting lines)"
	for h in h1 h2; do
		echo "--- $h ($STATE/$h.log)"
		grep -iE 'vip|take|acquir|releas|announc|conflict|carrier|link|state|master|active|backup|error|warn|fail' \
			"$STATE/$h.log" | tail -n 12 || tail -n 12 "$STATE/$h.log" || true
	done
	say "Done: tearing the lab down"
}

cmd_isolate() { # host on|off
	local port
	port="$(port_of "$1")"
	need_tools nft
	if [[ "$2" == on ]]; then
		set_drops iso "$port" 100
	else
		clear_drops iso "$port"
	fi
}

host_ip6() { echo "2001:db8::$((10 + $1))"; }

# cmd_ipv6 HOST...: the lab is IPv4-only (setup_ns turns IPv6 off to keep
# the LAN quiet); this turns it on for the hosts of an IPv6 test, without
# DAD (its probes and delay) or router solicitations, with an address in
# 2001:db8::/64 so that the host can answer IPv6 traffic.
cmd_ipv6() {
	local host ns addr k
	(($# > 0)) || die "usage: ipv6 HOST..."
	for host in "$@"; do
		port_of "$host" >/dev/null
		ns="$P-$host"
		case "$host" in
		c) addr="2001:db8::100" ;;
		*) addr="$(host_ip6 "${host#h}")" ;;
		esac
		for k in all default eth0; do
			nsysctl "$ns" "net/ipv6/conf/$k/accept_dad" 0
			nsysctl "$ns" "net/ipv6/conf/$k/dad_transmits" 0
			nsysctl "$ns" "net/ipv6/conf/$k/router_solicitations" 0
			nsysctl "$ns" "net/ipv6/conf/$k/accept_ra" 0
		done
		nsysctl "$ns" net/ipv6/conf/all/disable_ipv6 0
		nsysctl "$ns" net/ipv6/conf/eth0/disable_ipv6 0
		nsysctl "$ns" net/ipv6/conf/lo/disable_ipv6 0
		ip -n "$ns" -6 addr replace "$addr/64" dev eth0 nodad
	done
}

cmd_cut_heal() { # host up|down
	local port
	port="$(port_of "$1")"
	ip -n "$BR" link set dev "$port" "$2"
}
