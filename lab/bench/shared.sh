# shellcheck shell=bash
# A shared address (--share): per-client failover when a host dies or stops,
# a host joining (planned moves, established connections kept), and the
# throughput through the shared address next to a plain VIP.
# Sourced by lab/bench.sh, which sets the globals these functions use.

# --- 9: a shared address (--share) -------------------------------------------------

SHARED_HOSTS=3
SHARED_ADDR=192.0.2.80
SHARED_SOURCES=192.0.2.130-192.0.2.193 # 64 client source addresses
SHARED_BUCKETS=64
SHARED_PIDS=() # the servers of the current lab, ended with it

# shared_done TAG: end the current lab's servers, then the lab.
shared_done() {
	local pid
	for pid in "${SHARED_PIDS[@]}"; do kill -s TERM "$pid" 2>/dev/null || true; done
	for pid in "${SHARED_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
	SHARED_PIDS=()
	lab_done "$1"
}

# shared_mine HOST: how many buckets HOST serves (floatip status --json).
shared_mine() {
	local j
	j="$(ip netns exec "$(ns "$1")" "$BIN" status --json 2>/dev/null)" || {
		echo 0
		return
	}
	j="$(tr -d ' \n' <<<"$j" | grep -oE '"mine":\[[0-9,]*\]')" || true
	j="${j#*[}" j="${j%]}"
	if [[ -z "$j" ]]; then echo 0; else tr ',' '\n' <<<"$j" | grep -c .; fi
}

# shared_balanced HOST...: the HOSTS serve every bucket between them, each
# floor(B/N) or ceil(B/N).
shared_balanced() {
	local h n total=0 lo hi
	lo=$((SHARED_BUCKETS / $#)) hi=$(((SHARED_BUCKETS + $# - 1) / $#))
	for h in "$@"; do
		n="$(shared_mine "$h")"
		((n >= lo && n <= hi)) || return 1
		total=$((total + n))
	done
	((total == SHARED_BUCKETS))
}

# shared_lab TAG HOSTS [FLOATIP-ARGS...]: a lab of HOSTS hosts, the client's
# 64 sources, a flowcheck server on every host, floatip with --share on
# hosts 1..SHARED_HOSTS. Fails when they do not balance within 30 s.
shared_lab() {
	local tag="$1" n="$2" i
	shift 2
	lab_new sh "$n"
	for ((i = 130; i <= 193; i++)); do ip -n "$(ns c)" addr add "192.0.2.$i/24" dev eth0; done
	for ((i = 1; i <= n; i++)); do
		ip netns exec "$(ns "h$i")" "$FLOWCHECK" serve -listen "$SHARED_ADDR:$PORT" -name "h$i" >/dev/null 2>&1 &
		SHARED_PIDS+=($!)
	done
	for ((i = 1; i <= SHARED_HOSTS; i++)); do
		lab start "h$i" -- -i eth0 --share "$SHARED_ADDR" --pool-hold-down 2s "$@" "${EXTRA[@]}" >/dev/null
	done
	local -a hosts=()
	for ((i = 1; i <= SHARED_HOSTS; i++)); do hosts+=("h$i"); done
	wait_until 30 shared_balanced "${hosts[@]}" || {
		raw "$tag: the shared address did not balance within 30 s"
		return 1
	}
}

# shared_fault TAG FAULT: FAULT (kill, cut or term) on h2 while the client
# sends from 64 sources every 10 ms; sets SF_OF (the worst longest gap of
# h2's clients), SF_OTHERS (the worst of the others'), SF_DUP (duplicate
# answers), "inf" when the lab did not come up.
shared_fault() {
	local tag="$1" fault="$2" out client
	SF_OF=inf SF_OTHERS=inf SF_DUP=inf
	if ! shared_lab "$tag" "$SHARED_HOSTS"; then
		shared_done "$tag"
		return
	fi
	out="$OUT/tmp/$tag.json"
	ip netns exec "$(ns c)" "$FLOWCHECK" client -target "$SHARED_ADDR:$PORT" -sources "$SHARED_SOURCES" \
		-every 10ms -duration 6s -timeout 300ms -udp-only -json >"$out" 2>/dev/null </dev/null &
	client=$!
	sleep "$(printf '2.%03d' $((RANDOM % 1000)))"
	case "$fault" in
	kill) kill -s KILL "$(daemon_pid h2)" ;;
	term) kill -s TERM "$(daemon_pid h2)" ;;
	cut) lab cut h2 >/dev/null ;;
	esac
	wait "$client" || true
	local sum
	sum="$("$FLOWCHECK" gaps -of h2 <"$out" 2>/dev/null)" || sum=""
	SF_OF="$(grep -oE 'of_worst_ms=[0-9]+' <<<"$sum" | cut -d= -f2)" || true
	SF_OTHERS="$(grep -oE 'others_worst_ms=[0-9]+' <<<"$sum" | cut -d= -f2)" || true
	SF_DUP="$(grep -oE 'duplicates=[0-9]+' <<<"$sum" | cut -d= -f2)" || true
	[[ -n "$SF_OF" ]] || SF_OF=inf
	[[ -n "$SF_OTHERS" ]] || SF_OTHERS=inf
	[[ -n "$SF_DUP" ]] || SF_DUP=inf
	raw "$tag: $fault h2: $sum"
	shared_done "$tag"
}

# shared_join TAG: h1 and h2 serve, a client keeps a long TCP connection
# per source (and opens new ones) while h3 joins; sets SJ_BROKEN (long
# connections broken), SJ_MOVED (sources whose new connections reached h3).
shared_join() {
	local tag="$1" out client
	SJ_BROKEN=inf SJ_MOVED=0
	SHARED_HOSTS=2
	if ! shared_lab "$tag" 3 --drain 1m; then
		SHARED_HOSTS=3
		shared_done "$tag"
		return
	fi
	SHARED_HOSTS=3
	out="$OUT/tmp/$tag.json"
	ip netns exec "$(ns c)" "$FLOWCHECK" client -target "$SHARED_ADDR:$PORT" -sources "$SHARED_SOURCES" \
		-every 100ms -duration 10s -long -json >"$out" 2>/dev/null </dev/null &
	client=$!
	sleep 2
	lab start h3 -- -i eth0 --share "$SHARED_ADDR" --pool-hold-down 2s --drain 1m "${EXTRA[@]}" >/dev/null
	wait "$client" || true
	SJ_BROKEN="$(grep -oE '"long":\{"opened":[0-9]+,"broken":[0-9]+' "$out" | grep -oE '[0-9]+$')" || SJ_BROKEN=inf
	SJ_MOVED="$(grep -oE '"tcp_responders":\{[^}]*"h3"' "$out" | grep -c .)" || true
	raw "$tag: h3 joined: long connections broken $SJ_BROKEN, sources whose new connections reached h3 $SJ_MOVED"
	shared_done "$tag"
}

# shared_iperf TARGET [SOURCE]: the client's TCP throughput to TARGET over
# 5 s (iperf3), in Mbit/s.
shared_iperf() {
	local bind=() v
	[[ -z "${2:-}" ]] || bind=(-B "$2")
	v="$(ip netns exec "$(ns c)" iperf3 -c "$1" "${bind[@]}" -t 5 -f m 2>/dev/null | awk '/receiver/ { print $(NF-2) }')" || true
	echo "${v:-0}"
}

# shared_throughput TAG: one lab whose hosts serve the shared address and a
# plain VIP ($VIP) at once; iperf3 to each, alternately, 3 times; sets
# ST_SHARED and ST_VIP (medians, Mbit/s).
shared_throughput() {
	local tag="$1" i
	local -a s=() p=()
	ST_SHARED=0 ST_VIP=0
	if ! command -v iperf3 >/dev/null; then
		# shellcheck source=lab/tools.sh
		source "$HERE/tools.sh"
		install_packages bench.sh iperf3 >/dev/null
	fi
	if ! shared_lab "$tag" "$SHARED_HOSTS" "$VIP"; then
		shared_done "$tag"
		return
	fi
	wait_until 10 holds h1 "$VIP" || true
	for ((i = 1; i <= SHARED_HOSTS; i++)); do
		ip netns exec "$(ns "h$i")" iperf3 -s >/dev/null 2>&1 &
		SHARED_PIDS+=($!)
	done
	sleep 1
	for ((i = 0; i < 3; i++)); do
		s+=("$(shared_iperf "$SHARED_ADDR" 192.0.2.130)")
		p+=("$(shared_iperf "$VIP")")
	done
	ST_SHARED="$(median "${s[@]}")" ST_VIP="$(median "${p[@]}")"
	raw "$tag: iperf3 Mbit/s: shared ${s[*]}, plain VIP ${p[*]}"
	shared_done "$tag"
}

measure_shared() {
	local r f single target
	local -a kill=() cut=() term=() others=() dups=() broken=() moved=()
	# The target is the single-VIP failover time + 20 %, measured in this run.
	[[ -n "${SERIES_MEDIAN[outage-cut]:-}" ]] ||
		outage_series outage-cut cut "Holder death (link cut), defaults (the shared address's reference)" 800
	single="${SERIES_MEDIAN[outage-cut]}"
	target="$(awk -v s="$single" 'BEGIN { if (s == "inf") print ""; else printf "%d", s * 1.2 }')"
	say "shared: $RUNS runs each of kill -9, link cut and SIGTERM of one of $SHARED_HOSTS hosts serving $SHARED_ADDR (--share), 64 client sources every 10 ms"
	for ((r = 1; r <= RUNS; r++)); do
		for f in kill cut term; do
			shared_fault "shared-$f-r$r" "$f"
			case "$f" in
			kill) kill+=("$SF_OF") ;;
			cut) cut+=("$SF_OF") ;;
			term) term+=("$SF_OF") ;;
			esac
			others+=("$SF_OTHERS") dups+=("$SF_DUP")
			say "  shared run $r, $f: h2's clients' worst gap $SF_OF ms, the others' $SF_OTHERS ms, duplicates $SF_DUP"
		done
		shared_join "shared-join-r$r"
		broken+=("$SJ_BROKEN") moved+=("$SJ_MOVED")
		say "  shared run $r, join: long connections broken $SJ_BROKEN, sources moved to h3 $SJ_MOVED"
	done
	row_ms "Shared address (--share, 3 hosts): kill -9 of a host, the worst outage of its clients (64 sources, every 10 ms; target: the single-VIP link cut's $single ms + 20 %)" \
		"$(median "${kill[@]}")" "$target" "${kill[*]}" "$(count_of inf "${kill[@]}")"
	row_ms "Shared address: a host's link cut (its death), the worst outage of its clients" \
		"$(median "${cut[@]}")" "$target" "${cut[*]}" "$(count_of inf "${cut[@]}")"
	row_ms "Shared address: SIGTERM of a host, the worst outage of its clients" \
		"$(median "${term[@]}")" 100 "${term[*]}" "$(count_of inf "${term[@]}")"
	row_ms "Shared address: the other hosts' clients during those faults (worst gap; 10 ms is none)" \
		"$(median "${others[@]}")" 30 "${others[*]}" "$(count_of inf "${others[@]}")"
	row "Shared address: duplicate answers during those faults (all runs)" "$(awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; print s }' <<<"${dups[*]//inf/0}")" "${dups[*]}" "0" \
		"$([[ " ${dups[*]} " =~ \ ([1-9]|inf) ]] && echo "**no**" || echo yes)"
	row "Shared address: a host joins, established TCP connections broken (64 long connections)" "$(median "${broken[@]}")" "${broken[*]}" "0" \
		"$([[ " ${broken[*]} " =~ \ ([1-9]|inf) ]] && echo "**no**" || echo yes)"
	row "Shared address: sources whose new connections reached the joining host" "$(median "${moved[@]}")" "${moved[*]}" "> 0" \
		"$([[ " ${moved[*]} " =~ \ 0\  ]] && echo "**no**" || echo yes)"
	say "shared: throughput, iperf3 through the shared address and through a plain VIP"
	shared_throughput shared-tput
	row "Throughput through the shared address / a plain VIP on the same hosts (iperf3, TCP, 5 s, median of 3)" \
		"$ST_SHARED / $ST_VIP Mbit/s ($(awk -v a="$ST_SHARED" -v b="$ST_VIP" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "?" }')×)" "1" "–" "–"
}
