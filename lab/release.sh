#!/usr/bin/env bash
# release.sh - build floatip's release artefacts from the current commit:
#
#   floatip-VERSION-linux-{amd64,arm64}.tar.gz   the static binary, LICENSE,
#                                                 COPYRIGHT, README.md and the
#                                                 contrib unit and environment file
#   floatip_VERSION_{amd64,arm64}.deb            Debian/Ubuntu packages
#   floatip-VERSION-1.{x86_64,aarch64}.rpm        Fedora/RHEL/SUSE packages
#   SHA256SUMS                                    of all of the above
#
# usage: lab/release.sh VERSION [OUTDIR]     (OUTDIR defaults to dist/ in the repo)
#
# Reproducible: every timestamp is the last commit's (SOURCE_DATE_EPOCH), the
# archives are sorted and owned by 0:0, gzip stores no name or time, so two
# runs on the same commit with the same Go give the same bytes. The packages
# are made by nfpm, pinned in packaging/go.mod (a module of its own, so that
# its dependencies stay out of the daemon's go.mod).
#
# Needs: go, git, GNU tar, gzip, sed, sha256sum, help2man (Debian: help2man).
# A tree with uncommitted changes is refused (the artefacts would not be the
# commit's); FLOATIP_RELEASE_DIRTY=1 builds it anyway, for trying changes.
set -euo pipefail
umask 022
export LC_ALL=C TZ=UTC

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ARCHES=(amd64 arm64)
# Placeholder until the project has a contact address; dpkg and lintian
# require a name with an e-mail address here.
MAINTAINER="${FLOATIP_MAINTAINER:-The floatip authors <floatip@example.org>}"

die() {
	echo "release.sh: $*" >&2
	exit 1
}

usage() {
	echo "usage: lab/release.sh VERSION [OUTDIR]   (VERSION: 1.2.3 or 1.2.3~rc1; OUTDIR: default dist/)" >&2
	exit 2
}

# find_go, need_go and install_packages.
# shellcheck source=lab/tools.sh
source "$REPO/lab/tools.sh"

check_tools() {
	local t
	need_go
	for t in git gzip sed sha256sum help2man; do
		command -v "$t" >/dev/null 2>&1 || die "'$t' not found (Debian: apt-get install $t)"
	done
	# --sort=name appeared in GNU tar 1.28; other tars lack the options used here.
	tar --version 2>/dev/null | grep -q 'GNU tar' || die "GNU tar is required"
}

# build ARCH DEST: the static binary, stamped with the version. GOAMD64 and
# GOARM64 are pinned so that a builder's environment cannot change the bytes
# (v1 and v8.0 run on every CPU of the architecture).
build() {
	CGO_ENABLED=0 GOOS=linux GOARCH="$1" GOAMD64=v1 GOARM64=v8.0 \
		go build -trimpath -ldflags "-s -w -X main.version=$VERSION" -o "$2" .
}

# licence_name FILE: the SPDX name of a licence text, or nothing.
licence_name() {
	if grep -q 'Permission is hereby granted, free of charge' "$1"; then
		echo MIT
	elif grep -q 'Apache License' "$1" && grep -q 'Version 2.0' "$1"; then
		echo Apache-2.0
	elif grep -q 'Redistribution and use in source and binary forms' "$1"; then
		if grep -q 'Neither the name' "$1"; then echo BSD-3-clause; else echo BSD-2-clause; fi
	fi
}

# dep5_text FILE: a licence text as a DEP-5 field continuation (one leading
# space, "." for an empty line, no trailing blanks).
dep5_text() {
	sed -e 's/[[:space:]]*$//' -e 's/^$/./' -e 's/^/ /' "$1"
}

# linked_modules: "PATH VERSION DIR" of each piece of code linked into the
# binary of either architecture: the Go standard library, then every module.
linked_modules() {
	local arch list=""
	echo "std $(go env GOVERSION) $(go env GOROOT)"
	for arch in "${ARCHES[@]}"; do
		list+="$(GOOS=linux GOARCH="$arch" CGO_ENABLED=0 go list -deps \
			-f '{{with .Module}}{{if not .Main}}{{.Path}} {{.Version}} {{.Dir}}{{end}}{{end}}' .)" ||
			die "go list failed for linux/$arch"
		list+=$'\n'
	done
	sort -u <<<"$list" | sed '/^$/d'
}

# copyright deb|full: packaging/copyright (floatip's own), then one
# paragraph for each piece of code linked into the binary, with its licence:
# MIT and BSD licences ask for their notice to go with binary copies too.
# The Apache licence's text, the same for every module under it, is given
# once at the end: in full, or ("deb") as Debian policy wants, as a pointer
# to the copy every Debian system has in /usr/share/common-licenses.
copyright() {
	local mode="$1" modules path ver dir f lic holders what apache=""
	modules="$(linked_modules)"
	[[ "$(licence_name LICENSE)" == MIT ]] || die "LICENSE is no longer MIT: update packaging/copyright"
	cat packaging/copyright
	# LICENSE without its title and copyright line (they are fields above).
	sed -n '/^Permission is hereby granted/,$p' LICENSE >"$work/LICENSE.text"
	dep5_text "$work/LICENSE.text"
	while read -r path ver dir; do
		f=""
		for f in "$dir"/LICENSE "$dir"/LICENSE.md "$dir"/LICENSE.txt "$dir"/COPYING; do
			[[ -f "$f" ]] && break
		done
		[[ -f "$f" ]] || die "no licence file in $dir ($path $ver)"
		lic="$(licence_name "$f")"
		[[ -n "$lic" ]] || die "cannot tell the licence of $path ($f): teach licence_name in lab/release.sh"
		holders="$(grep -E '^[[:space:]]*Copyright (\([cC]\) |© )?[0-9]' "$f" | sed -e 's/^[[:space:]]*//' -e '2,$s/^/ /')" ||
			holders="the authors of $path"
		what="$path $ver"
		[[ "$path" != std ]] || what="The Go standard library and runtime ($ver)"
		printf '\nFiles: %s/*\nCopyright: %s\nComment: %s, statically linked into floatip.\nLicense: %s\n' \
			"$path" "$holders" "$what" "$lic"
		if [[ "$lic" == Apache-2.0 ]]; then
			apache="$f"
		else
			dep5_text "$f"
		fi
	done <<<"$modules"
	if [[ -n "$apache" ]]; then
		printf '\nLicense: Apache-2.0\n'
		if [[ "$mode" == deb ]]; then
			echo ' On Debian systems, the complete text of the Apache License, Version 2.0'
			echo ' can be found in "/usr/share/common-licenses/Apache-2.0".'
		else
			dep5_text "$apache"
		fi
	fi
}

# changelog: a Debian changelog with one entry, for this version; what
# changed is in the git history and the README.
changelog() {
	cat <<EOF
floatip ($VERSION) unstable; urgency=medium

  * Release $VERSION, built from commit $COMMIT.

 -- $MAINTAINER  $(date -u -R -d "@$SOURCE_DATE_EPOCH")
EOF
}

# The packages' unit: contrib's, with the binary in /usr/sbin, a pointer to
# the man page, and the header's manual install steps replaced by what is
# left to do. The checks after the sed catch a contrib file that no longer
# matches it.
packaged_unit() {
	# shellcheck disable=SC2016 # $FLOATIP_VIPS is for systemd to expand
	local out="$1" exec_start='ExecStart=/usr/sbin/floatip $FLOATIP_VIPS'
	sed -e 's|^ExecStart=/usr/local/bin/floatip |ExecStart=/usr/sbin/floatip |' \
		-e '/^Description=/a\
Documentation=man:floatip(8)' \
		-e '/^# Install:$/,/^#   systemctl daemon-reload/c\
# Installed by the floatip package, neither enabled nor started: set\
# FLOATIP_INTERFACE and FLOATIP_VIPS in /etc/default/floatip, then\
#   systemctl enable --now floatip' \
		contrib/floatip.service >"$out"
	if ! grep -qxF "$exec_start" "$out" || ! grep -qxF 'EnvironmentFile=-/etc/default/floatip' "$out" ||
		! grep -qxF 'Documentation=man:floatip(8)' "$out" || grep -q '/usr/local' "$out"; then
		die "contrib/floatip.service changed shape: update packaged_unit in lab/release.sh"
	fi
}

# The packages' /etc/default/floatip: contrib's, with the interface and the
# VIPs commented out, so that an installed package holds nothing until the
# operator says what.
packaged_default() {
	local out="$1"
	sed -E -e 's/^(FLOATIP_(INTERFACE|VIPS)=)/#\1/' \
		-e '0,/^$/s//# Installed by the floatip package with nothing set: fill in\n# FLOATIP_INTERFACE and FLOATIP_VIPS, then: systemctl enable --now floatip\n/' \
		contrib/floatip.default >"$out"
	if ! grep -qx '#FLOATIP_INTERFACE=.*' "$out" || ! grep -qx '#FLOATIP_VIPS=.*' "$out" ||
		grep -q '^FLOATIP_' "$out"; then
		die "contrib/floatip.default changed shape: update packaged_default in lab/release.sh"
	fi
}

# The man page, from the binary's own --help (COLUMNS fixes kong's wrapping;
# help2man dates it from SOURCE_DATE_EPOCH).
manpage() {
	COLUMNS=80 help2man --no-info --section=8 --include=packaging/floatip.h2m \
		--name='hold floating IP addresses over ARP and neighbour discovery' "$1" | gzip -9n
}

# tarball ARCH: floatip-VERSION-linux-ARCH/ with the binary and its companions.
tarball() {
	local arch="$1" name="floatip-$VERSION-linux-$1"
	local dir="$work/tar/$name"
	install -d -m 0755 "$dir"
	install -m 0755 "$work/$arch/floatip" "$dir/floatip"
	install -m 0644 LICENSE README.md contrib/floatip.service contrib/floatip.default "$dir/"
	install -m 0644 "$work/COPYRIGHT" "$dir/COPYRIGHT"
	tar --format=gnu --sort=name --mtime="@$SOURCE_DATE_EPOCH" \
		--owner=0 --group=0 --numeric-owner -C "$work/tar" -cf - "$name" |
		gzip -9n >"$OUT/$name.tar.gz"
}

# nfpm ARCH FORMAT: one package; packaging/nfpm.yaml reads FLOATIP_* below.
nfpm() {
	FLOATIP_ARCH="$1" FLOATIP_STAGE="$work/$1" \
		go tool -modfile=packaging/go.mod nfpm package --config packaging/nfpm.yaml \
		--packager "$2" --target "$OUT/" >/dev/null
}

main() {
	local arch others
	(($# >= 1 && $# <= 2)) || usage
	VERSION="$1"
	[[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+(~[0-9A-Za-z.]+)?$ ]] ||
		die "VERSION '$VERSION' must look like 1.2.3 or 1.2.3~rc1 (no leading v)"
	check_tools
	OUT="${2:-$REPO/dist}"
	mkdir -p -- "$OUT" || die "cannot create $OUT"
	OUT="$(cd -- "$OUT" && pwd)"

	cd "$REPO"
	git rev-parse --git-dir >/dev/null 2>&1 || die "$REPO is not a git checkout (the build is dated by its last commit)"
	if [[ -n "$(git status --porcelain)" && "${FLOATIP_RELEASE_DIRTY:-}" != 1 ]]; then
		die "the tree has uncommitted changes (git status); commit them, or set FLOATIP_RELEASE_DIRTY=1 to build anyway"
	fi
	# OUT keeps nothing of an earlier run, so that SHA256SUMS covers exactly
	# this run's artefacts; only files named as ours are removed, and a
	# directory holding anything else is refused.
	others="$(find "$OUT" -mindepth 1 -maxdepth 1 ! \( -type f \( -name 'floatip[-_]*' -o -name SHA256SUMS \) \))"
	[[ -z "$others" ]] || die "$OUT holds files other than release artefacts: use an empty OUTDIR"
	find "$OUT" -mindepth 1 -maxdepth 1 -type f -delete
	COMMIT="$(git rev-parse --short=12 HEAD)"
	SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)"
	export SOURCE_DATE_EPOCH FLOATIP_VERSION="$VERSION" FLOATIP_MAINTAINER="$MAINTAINER"
	work="$(mktemp -d)"
	# A failed run leaves OUT empty rather than half filled.
	trap 'rc=$?; rm -rf -- "$work"; if ((rc != 0)); then find "$OUT" -mindepth 1 -maxdepth 1 -type f -delete; fi' EXIT
	# The tools' temporary files go there too, and go with it.
	export TMPDIR="$work"

	# Files shared by every package (the man page needs a binary this host
	# can run: one built for the host, from the same source and flags).
	build "$(go env GOHOSTARCH)" "$work/host-floatip"
	[[ "$("$work/host-floatip" --version)" == "floatip $VERSION" ]] ||
		die "the binary does not print 'floatip $VERSION' for --version"
	manpage "$work/host-floatip" >"$work/floatip.8.gz"
	copyright full >"$work/COPYRIGHT"
	copyright deb >"$work/copyright.deb"
	changelog | gzip -9n >"$work/changelog.gz"
	packaged_unit "$work/floatip.service"
	packaged_default "$work/floatip.default"

	for arch in "${ARCHES[@]}"; do
		mkdir "$work/$arch"
		build "$arch" "$work/$arch/floatip"
		cp "$work/floatip.8.gz" "$work/COPYRIGHT" "$work/copyright.deb" "$work/changelog.gz" \
			"$work/floatip.service" "$work/floatip.default" "$work/$arch/"
		tarball "$arch"
		nfpm "$arch" deb
		nfpm "$arch" rpm
	done

	local -a artefacts
	mapfile -t artefacts < <(cd "$OUT" && find . -maxdepth 1 -type f -printf '%P\n' | sort)
	(cd "$OUT" && sha256sum -- "${artefacts[@]}" >SHA256SUMS)
	echo "release $VERSION (commit $COMMIT, SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH) in $OUT:"
	(cd "$OUT" && ls -l)
}

main "$@"
