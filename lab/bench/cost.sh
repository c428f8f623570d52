# shellcheck shell=bash
# Cost figures: the steady state by size, the failover of the last of 256
# VIPs, a flood of foreign ARP for the VIP.
# Sourced by lab/bench.sh, which sets the globals these functions use.

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
