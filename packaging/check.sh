#!/usr/bin/env bash
# check.sh - CI's check of the release build and the packages (run by
# .ci/run; about 3 minutes). It installs the Debian tools it needs, then:
#   - the scripts parse (bash -n, sh -n) and pass shellcheck (with the lab's, which share lab/tools.sh);
#   - the root module does not see packaging/ (nfpm stays out of go.mod);
#   - lab/release.sh builds every artefact, twice with the same bytes (the
#     second time with an empty Go build cache, so everything is compiled
#     again), with the version stamped and the right architectures;
#   - the tarballs, the .deb and the .rpm hold exactly the expected files;
#   - lintian passes on the .debs with the one override;
#   - systemd-analyze verify of the installed unit prints nothing;
#   - under a scratch root (dpkg --root): install, an edited conffile kept
#     across an upgrade, the service never enabled by the package, an
#     operator's enabling kept, and nothing left after purge.
# Everything it makes is under one mktemp -d directory, removed on exit.
set -euo pipefail
export LC_ALL=C

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
V1=0.1.0 # the version checked; V2 is "the next release" for the upgrade
V2=0.1.1

die() {
	echo "check.sh: $*" >&2
	exit 1
}

say() { printf '\n==> %s\n' "$*"; }

# find_go, need_go and install_packages.
# shellcheck source=lab/tools.sh
source "$REPO/lab/tools.sh"

# deps: the Debian packages of the tools used here (as lab.sh deps does).
# man-db: systemd-analyze verify looks up the unit's Documentation= page.
deps() {
	local -a pkgs=()
	command -v lintian >/dev/null 2>&1 || pkgs+=(lintian)
	command -v help2man >/dev/null 2>&1 || pkgs+=(help2man)
	command -v rpm >/dev/null 2>&1 || pkgs+=(rpm)
	command -v readelf >/dev/null 2>&1 || pkgs+=(binutils)
	command -v systemd-analyze >/dev/null 2>&1 || pkgs+=(systemd)
	command -v man >/dev/null 2>&1 || pkgs+=(man-db)
	command -v shellcheck >/dev/null 2>&1 || pkgs+=(shellcheck)
	command -v deb-systemd-helper >/dev/null 2>&1 || pkgs+=(init-system-helpers)
	install_packages check.sh "${pkgs[@]}"
	need_go
	[[ $EUID -eq 0 ]] || die "must run as root (dpkg --root installs files owned by root)"
}

# same_lines WHAT EXPECTED ACTUAL: fail, showing the difference, unless the
# two newline-separated lists are equal.
same_lines() {
	if [[ "$2" != "$3" ]]; then
		echo "check.sh: $1 differs from what is expected (- expected, + actual):" >&2
		diff <(echo "$2") <(echo "$3") >&2 || true
		exit 1
	fi
}

check_scripts() {
	local f
	say "Scripts: bash -n, sh -n, shellcheck"
	for f in lab/release.sh packaging/check.sh lab/tools.sh lab/lab.sh lab/demo.sh lab/bench.sh lab/bench/*.sh; do bash -n "$f"; done
	for f in packaging/deb/* packaging/rpm/*; do sh -n "$f"; done
	shellcheck -x lab/release.sh packaging/check.sh lab/tools.sh lab/lab.sh lab/demo.sh lab/bench.sh packaging/deb/* packaging/rpm/*
}

# The nfpm tool module is nested: the root module neither lists its
# directory nor requires anything of it.
check_modules() {
	say "Modules: packaging/ is a module of its own"
	[[ "$(go list -m)" == floatip ]] || die "the root module is not 'floatip'"
	if go list ./... | grep -q '^floatip/packaging'; then
		die "go list ./... descends into packaging/"
	fi
	if grep -q 'goreleaser/nfpm' go.mod go.sum; then
		die "nfpm is in the root go.mod/go.sum: it belongs in packaging/go.mod"
	fi
	grep -q '^tool github.com/goreleaser/nfpm/v2/cmd/nfpm$' packaging/go.mod ||
		die "packaging/go.mod does not pin nfpm as a tool"
}

# release VERSION DIR [ENV...]: lab/release.sh, timed. A tree with changes
# not yet committed (a run before a commit) is built as it is.
release() {
	local version="$1" dir="$2" start
	shift 2
	start=$SECONDS
	env FLOATIP_RELEASE_DIRTY=1 "$@" bash lab/release.sh "$version" "$dir" >"$dir.log" 2>&1 ||
		{ cat "$dir.log" >&2; die "lab/release.sh $version failed"; }
	echo "lab/release.sh $version: $((SECONDS - start)) s"
}

check_release() {
	local src f
	say "Release: build, rebuild with an empty build cache, compare"
	release "$V1" "$tmp/a"
	release "$V1" "$tmp/b" GOCACHE="$tmp/gocache"
	cmp -s "$tmp/a/SHA256SUMS" "$tmp/b/SHA256SUMS" || {
		diff "$tmp/a/SHA256SUMS" "$tmp/b/SHA256SUMS" >&2 || true
		die "two builds of $V1 differ"
	}
	rm -rf -- "$tmp/b" "$tmp/gocache"
	(cd "$tmp/a" && sha256sum --quiet -c SHA256SUMS) || die "SHA256SUMS does not match the artefacts"
	same_lines "the artefacts" "$(
		cat <<EOF
SHA256SUMS
floatip-$V1-1.aarch64.rpm
floatip-$V1-1.x86_64.rpm
floatip-$V1-linux-amd64.tar.gz
floatip-$V1-linux-arm64.tar.gz
floatip_${V1}_amd64.deb
floatip_${V1}_arm64.deb
EOF
	)" "$(ls "$tmp/a")"
	same_lines "SHA256SUMS' list" "$(cd "$tmp/a" && find . -type f ! -name SHA256SUMS -printf '%P\n' | sort)" \
		"$(awk '{print $2}' "$tmp/a/SHA256SUMS")"

	# The upgrade's "next release": this tree (also what is not committed
	# yet) as a commit of its own in a scratch repository, with a changed
	# /etc/default/floatip, so that dpkg has a conffile conflict to resolve.
	src="$tmp/src"
	mkdir "$src"
	git ls-files -z --cached --others --exclude-standard |
		while IFS= read -r -d '' f; do [[ ! -e "$f" ]] || printf '%s\0' "$f"; done |
		tar --null -T - -cf - | tar -xf - -C "$src"
	echo "# (a line added by packaging/check.sh for the upgrade test)" >>"$src/contrib/floatip.default"
	git -C "$src" init -q
	git -C "$src" add -A
	git -C "$src" -c user.name=check.sh -c user.email=check@localhost -c commit.gpgsign=false \
		commit -q -m "the next release"
	(cd "$src" && release "$V2" "$tmp/next")
	rm -rf -- "$src"
}

check_tarballs() {
	local arch name
	say "Tarballs: contents, the stamped version, the architecture"
	for arch in amd64 arm64; do
		name="floatip-$V1-linux-$arch"
		same_lines "$name.tar.gz" "$(
			printf '%s\n' "$name/" "$name/COPYRIGHT" "$name/LICENSE" "$name/README.md" \
				"$name/floatip" "$name/floatip.default" "$name/floatip.service"
		)" "$(tar -tzf "$tmp/a/$name.tar.gz")"
		if tar -tvzf "$tmp/a/$name.tar.gz" | awk '{print $2}' | grep -vqx '0/0'; then
			die "$name.tar.gz has entries not owned by 0/0"
		fi
		tar -xzf "$tmp/a/$name.tar.gz" -C "$tmp"
		if readelf -l "$tmp/$name/floatip" | grep -q INTERP; then
			die "the $arch binary is not static (it asks for an interpreter)"
		fi
		cmp -s contrib/floatip.service "$tmp/$name/floatip.service" || die "$name.tar.gz's floatip.service is not contrib's"
		cmp -s contrib/floatip.default "$tmp/$name/floatip.default" || die "$name.tar.gz's floatip.default is not contrib's"
	done
	[[ "$("$tmp/floatip-$V1-linux-amd64/floatip" --version)" == "floatip $V1" ]] ||
		die "the amd64 binary does not print 'floatip $V1' for --version"
	readelf -h "$tmp/floatip-$V1-linux-amd64/floatip" | grep -qE 'Machine:[[:space:]]+Advanced Micro Devices X86-64' ||
		die "the amd64 binary is not x86-64"
	readelf -h "$tmp/floatip-$V1-linux-arm64/floatip" | grep -qE 'Machine:[[:space:]]+AArch64' ||
		die "the arm64 binary is not AArch64"
}

check_debs() {
	local arch deb x
	say "Debian packages: contents, control, lintian"
	for arch in amd64 arm64; do
		deb="$tmp/a/floatip_${V1}_$arch.deb"
		same_lines "floatip_${V1}_$arch.deb's files" "$(
			cat <<EOF
./etc/default/floatip
./usr/lib/systemd/system/floatip.service
./usr/sbin/floatip
./usr/share/doc/floatip/changelog.gz
./usr/share/doc/floatip/copyright
./usr/share/lintian/overrides/floatip
./usr/share/man/man8/floatip.8.gz
EOF
		)" "$(dpkg-deb --fsys-tarfile "$deb" | tar -t | grep -v '/$' | sort)"
		same_lines "its conffiles" "/etc/default/floatip" "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)"
		[[ "$(dpkg-deb -f "$deb" Version Architecture)" == "Version: $V1"$'\n'"Architecture: $arch" ]] ||
			die "floatip_${V1}_$arch.deb: wrong Version or Architecture"
		# One binary per architecture: the package's is the tarball's.
		x="$tmp/x-$arch"
		dpkg-deb -x "$deb" "$x"
		cmp -s "$x/usr/sbin/floatip" "$tmp/floatip-$V1-linux-$arch/floatip" ||
			die "floatip_${V1}_$arch.deb's binary is not the tarball's"
	done
	x="$tmp/x-amd64"
	zcat "$x/usr/share/man/man8/floatip.8.gz" | grep -q "^\.TH FLOATIP \"8\" .*\"floatip $V1\"" ||
		die "floatip.8 is not the man page of floatip $V1"
	zcat "$x/usr/share/doc/floatip/changelog.gz" | head -1 | grep -qF "floatip ($V1) " ||
		die "changelog.gz does not begin with $V1's entry"
	grep -qxF "ExecStart=/usr/sbin/floatip \$FLOATIP_VIPS" "$x/usr/lib/systemd/system/floatip.service" ||
		die "the packaged unit does not start /usr/sbin/floatip"
	if grep -q '^FLOATIP_' "$x/etc/default/floatip"; then
		die "the packaged /etc/default/floatip sets something: $(grep '^FLOATIP_' "$x/etc/default/floatip" | head -1)"
	fi
	# Exactly one override, and lintian uses it.
	same_lines "the lintian overrides" "floatip: statically-linked-binary [usr/sbin/floatip]" \
		"$(grep -v '^#' "$x/usr/share/lintian/overrides/floatip")"
	for arch in amd64 arm64; do
		# lintian warns when run as root; what matters is its verdict.
		lintian --fail-on error,warning --display-info "$tmp/a/floatip_${V1}_$arch.deb" 2> >(grep -v 'running with root privileges' >&2) ||
			die "lintian fails floatip_${V1}_$arch.deb"
	done
	lintian --show-overrides --display-info "$tmp/a/floatip_${V1}_amd64.deb" 2>/dev/null >"$tmp/lintian.txt" || true
	grep -qx 'O: floatip: statically-linked-binary \[usr/sbin/floatip\]' "$tmp/lintian.txt" ||
		die "lintian did not apply the statically-linked-binary override"
	if grep -E 'unused-override|mismatched-override' "$tmp/lintian.txt" >&2; then
		die "lintian finds an override that does not apply"
	fi
}

check_rpms() {
	local arch rarch rpmf
	say "RPM packages: files, config, licences, scripts"
	for arch in x86_64 aarch64; do
		rpmf="$tmp/a/floatip-$V1-1.$arch.rpm"
		same_lines "floatip-$V1-1.$arch.rpm's files" "$(
			cat <<EOF
/etc/default/floatip
/usr/lib/systemd/system/floatip.service
/usr/sbin/floatip
/usr/share/licenses/floatip/COPYRIGHT
/usr/share/licenses/floatip/LICENSE
/usr/share/man/man8/floatip.8.gz
EOF
		)" "$(rpm -qlp "$rpmf" 2>/dev/null)"
		# %config(noreplace): flags c and n.
		same_lines "its config files" "/etc/default/floatip cn" \
			"$(rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' "$rpmf" 2>/dev/null | awk '$2 ~ /c/')"
		rarch="$(rpm -qp --qf '%{ARCH} %{VERSION}-%{RELEASE}' "$rpmf" 2>/dev/null)"
		[[ "$rarch" == "$arch $V1-1" ]] || die "floatip-$V1-1.$arch.rpm says it is $rarch"
		rpm -qp --scripts "$rpmf" 2>/dev/null | grep -q 'try-reload-or-restart floatip.service' ||
			die "floatip-$V1-1.$arch.rpm does not reload floatip on upgrade"
	done
}

# make_root DIR: a scratch system for dpkg --root: an empty dpkg database
# that knows procps (the one dependency; its /usr/bin/kill is the unit's
# ExecReload), usr-merged like Debian 12, with the systemd directories and
# targets every systemd system has (systemd-analyze needs the targets the
# unit refers to, and sysinit.target etc. that every service implies).
make_root() {
	local r="$1"
	mkdir -p "$r"/var/lib/dpkg/{info,updates,triggers} "$r"/usr/bin \
		"$r"/usr/lib/systemd/system "$r"/etc/systemd/system "$r"/var/lib/systemd
	ln -s usr/bin "$r/bin"
	ln -s usr/sbin "$r/sbin"
	ln -s usr/lib "$r/lib"
	cp /usr/lib/systemd/system/*.target "$r/usr/lib/systemd/system/"
	cp /usr/bin/kill "$r/usr/bin/kill"
	touch "$r/var/lib/dpkg/available"
	echo /usr/bin/kill >"$r/var/lib/dpkg/info/procps.list"
	cat >"$r/var/lib/dpkg/status" <<EOF
Package: procps
Status: install ok installed
Priority: important
Architecture: $(dpkg --print-architecture)
Version: 2:4.0.2-3
Maintainer: stand-in <root@localhost>
Description: stand-in for the real procps in check.sh's scratch root

EOF
	(cd "$r" && find . | sort) >"$r.before"
}

# dpkg_root DIR ARGS...: dpkg on the scratch root, maintainer scripts run
# from the host (deb-systemd-helper honours DPKG_ROOT, which dpkg sets).
dpkg_root() {
	local r="$1"
	shift
	dpkg --root="$r" --force-script-chrootless "$@" >"$r.dpkg.log" 2>&1 ||
		{ cat "$r.dpkg.log" >&2; die "dpkg --root $* failed"; }
}

no_enable_links() {
	local links
	links="$(find "$1/etc/systemd/system" -path '*.wants/*' -o -path '*.requires/*')"
	[[ -z "$links" ]] || die "$2: the package enabled the service: $links"
}

# nothing_left DIR: after purge, the root is as before the install, but for
# dpkg's own bookkeeping (locks, status-old, triggers).
nothing_left() {
	local r="$1" left
	left="$(comm -13 "$r.before" <(cd "$r" && find . | sort) |
		grep -vE '^\./var/lib/dpkg/(info/format|lock|lock-frontend|status-old|available-old|triggers/(Lock|Unincorp))$' || true)"
	[[ -z "$left" ]] || die "$2: left behind: $(echo "$left" | tr '\n' ' ')"
	left="$(comm -23 "$r.before" <(cd "$r" && find . | sort))"
	[[ -z "$left" ]] || die "$2: removed what was there before: $(echo "$left" | tr '\n' ' ')"
}

# verify DIR: systemd-analyze verify of the installed unit. It exits 0 on
# unknown keys and bad values, so any output is a failure; MANPATH lets it
# find Documentation=man:floatip(8) in the root.
verify() {
	local r="$1" out
	out="$(MANPATH="$r/usr/share/man" systemd-analyze verify --root="$r" floatip.service 2>&1)" ||
		die "systemd-analyze verify failed: $out"
	[[ -z "$out" ]] || die "systemd-analyze verify of the installed unit says: $out"
	# The control: a bad key in a copy must be reported, or the check above
	# proved nothing.
	sed 's/^\[Service\]$/&\nNoSuchKey=1/' "$r/usr/lib/systemd/system/floatip.service" \
		>"$r/etc/systemd/system/floatip-control.service"
	out="$(MANPATH="$r/usr/share/man" systemd-analyze verify --root="$r" floatip-control.service 2>&1 || true)"
	rm -f -- "$r/etc/systemd/system/floatip-control.service"
	grep -q NoSuchKey <<<"$out" || die "systemd-analyze verify does not report a bad key here: is it working? ($out)"
}

check_lifecycle() {
	local r="$tmp/root" deb1 deb2 conf
	deb1="$tmp/a/floatip_${V1}_$(dpkg --print-architecture).deb"
	deb2="$tmp/next/floatip_${V2}_$(dpkg --print-architecture).deb"
	[[ -f "$deb1" && -f "$deb2" ]] || die "no .deb for this machine's architecture ($(dpkg --print-architecture))"
	conf="$r/etc/default/floatip"

	say "Lifecycle (dpkg --root): install, verify, edit, upgrade, purge"
	make_root "$r"
	dpkg_root "$r" -i "$deb1"
	[[ "$("$r/usr/sbin/floatip" --version)" == "floatip $V1" ]] || die "install: no floatip $V1 in /usr/sbin"
	no_enable_links "$r" "install"
	verify "$r"
	sed -i 's/^#FLOATIP_INTERFACE=.*/FLOATIP_INTERFACE=eth1/' "$conf"
	dpkg_root "$r" --force-confold -i "$deb2"
	[[ "$("$r/usr/sbin/floatip" --version)" == "floatip $V2" ]] || die "upgrade: no floatip $V2 in /usr/sbin"
	grep -qx 'FLOATIP_INTERFACE=eth1' "$conf" || die "upgrade: the edit of /etc/default/floatip was lost"
	[[ -f "$conf.dpkg-dist" ]] || die "upgrade: no /etc/default/floatip.dpkg-dist (was the conffile conflict exercised?)"
	no_enable_links "$r" "upgrade"
	dpkg_root "$r" --purge floatip
	nothing_left "$r" "purge"

	say "Lifecycle (dpkg --root): enabled by the operator, upgrade, remove, purge"
	rm -rf -- "$r" "$r.before"
	make_root "$r"
	dpkg_root "$r" -i "$deb1"
	systemctl --root="$r" --quiet enable floatip.service
	[[ -L "$r/etc/systemd/system/multi-user.target.wants/floatip.service" ]] || die "systemctl --root enable made no link"
	dpkg_root "$r" -i "$deb2"
	[[ -L "$r/etc/systemd/system/multi-user.target.wants/floatip.service" ]] || die "upgrade: the operator's enable link is gone"
	dpkg_root "$r" -r floatip
	[[ ! -e "$r/usr/sbin/floatip" && -f "$conf" ]] || die "remove: the binary should go, /etc/default/floatip stay"
	dpkg_root "$r" --purge floatip
	nothing_left "$r" "purge of an enabled service"
}

main() {
	local start=$SECONDS
	(($# == 0)) || die "usage: packaging/check.sh (no arguments)"
	cd "$REPO"
	deps
	tmp="$(mktemp -d)"
	trap 'rm -rf -- "$tmp"' EXIT
	# The tools' own temporary files too (lintian leaves some in /tmp).
	export TMPDIR="$tmp"
	check_scripts
	check_modules
	check_release
	check_tarballs
	check_debs
	check_rpms
	check_lifecycle
	say "packaging checks passed ($((SECONDS - start)) s)"
}

main "$@"
