# shellcheck shell=bash
# The tools the lab, the release build and the package checks need, and
# how they get them: Go from PATH or /usr/local/go, Debian's packages
# installed when missing (as root on Debian). Sourced by lab/lab.sh,
# lab/release.sh and packaging/check.sh, each of which defines die().

# find_go puts Go on PATH if it is in /usr/local/go; false when there is none.
find_go() {
	if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
		PATH="$PATH:/usr/local/go/bin"
	fi
	command -v go >/dev/null 2>&1
}

# need_go dies, saying what to do, when there is no Go.
need_go() {
	find_go || die "'go' not found: install Go (the version go.mod asks for) into /usr/local/go"
}

# install_packages WHO PKG...: installs Debian packages (as root on Debian,
# refreshing the package lists once if the first try fails), or dies with
# the list to install; WHO names the script in its message.
install_packages() {
	local who="$1"
	shift
	(($# > 0)) || return 0
	if [[ $EUID -eq 0 && -f /etc/debian_version ]] && command -v apt-get >/dev/null 2>&1; then
		echo "$who: installing $*" >&2
		export DEBIAN_FRONTEND=noninteractive
		if ! apt-get install -y --no-install-recommends "$@"; then
			apt-get update
			apt-get install -y --no-install-recommends "$@"
		fi
	else
		die "missing tools; install these packages (as root): $*"
	fi
}
