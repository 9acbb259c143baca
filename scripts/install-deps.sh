#!/usr/bin/env bash
# Install the Debian packages that v6alt's tests, lab and demo need.
#
#   scripts/install-deps.sh              install the default groups (what the test suite needs)
#   scripts/install-deps.sh GROUP...     install the named groups
#   scripts/install-deps.sh --list       show the groups and their packages
#   scripts/install-deps.sh --backports-source   only add the <codename>-backports apt source
#
# Idempotent and quiet: when every package is already installed (at the wanted
# version for backports packages) it changes nothing and needs no root and no
# network. Otherwise it runs apt-get update and apt-get install as root; on
# failure it prints apt's output and exits non-zero.
set -Eeuo pipefail
trap 'echo "install-deps: error: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR

# Packages from the Debian release itself, by group.
declare -A RELEASE_PACKAGES=(
    [base]="python3 python3-venv python3-pip iproute2 git ca-certificates openssl"
    # lua-unbound and lua-event are only Recommends of prosody (left out
    # here), but its DNS (libunbound) and the 0.12 tests need them. lua-check
    # (luacheck) serves tox's lint env too: keep this group in DEFAULT_GROUPS.
    [prosody]="lua-check lua-unbound lua-event"
    [dns]="unbound bind9-dnsutils"
    [bench]="dnsperf"
    [synapse-workers]="postgresql redis-server"
    [capture]="tshark"
    # The container tests (tox env docker): Debian's engine and compose, and
    # debootstrap for the local base image (no registry is needed);
    # systemd for systemd-analyze (the sidecar unit's check).
    [docker]="docker.io docker-compose debootstrap systemd"
    # mod_v6alt's rock (scripts/build-rock.sh) and `prosodyctl install`.
    # The Debian packages (scripts/build-debs.sh): debhelper, pybuild and
    # lintian; python3-yaml for `v6alt config defaults` during the build.
    [packaging]="luarocks liblua5.4-dev debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools python3-yaml lintian devscripts gnupg"
    # tests/clients: headless Chromium, dnsmasq's binary alone (dnsmasq-base: no
    # service that would take port 53), curl. systemd-resolved is not installed
    # (it would take over /etc/resolv.conf): lab/resolvers.py unpacks its package.
    [clients]="chromium dnsmasq-base curl"
)
# Packages taken from <codename>-backports, by group (the release's own versions
# are too old: Prosody 0.12 lacks s2sout-pre-connect, Yggdrasil 0.4 speaks an
# older protocol).
declare -A BACKPORTS_PACKAGES=(
    [prosody]="prosody"
    [mesh]="yggdrasil"
)
# System services these packages ship. The tests start their own instances on
# their own ports, so this script never lets the system's copies start (they
# would hold ports such as 53 or 5269, and yggdrasil would join the public
# mesh); on a systemd host it also disables them when it installed them.
declare -A PACKAGE_SERVICES=(
    [unbound]="unbound.service"
    [prosody]="prosody.service"
    [yggdrasil]="yggdrasil.service"
    [postgresql]="postgresql.service"
    [redis-server]="redis-server.service"
    # The tests start their own dockerd (and stop it again).
    [docker.io]="docker.service docker.socket"
    [containerd]="containerd.service"
)
# What `scripts/test.sh` and a plain run install: the groups the test suite
# needs (dns: the sidecar's dig and unbound tests; mesh: the lab tests). A part
# whose tests need more adds its group here.
DEFAULT_GROUPS=(base dns mesh prosody synapse-workers capture docker packaging bench clients)

# Recommends are left out on purpose: python3-pip alone would pull in a
# compiler tool chain. Name what a test needs explicitly instead.
APT_INSTALL=(apt-get install -y -q --no-install-recommends)
APT_LOG=""

die() {
    echo "install-deps: error: $*" >&2
    exit 1
}

say() {
    echo "install-deps: $*"
}

known_groups() {
    printf '%s\n' "${!RELEASE_PACKAGES[@]}" "${!BACKPORTS_PACKAGES[@]}" | sort -u
}

list_groups() {
    local group
    for group in $(known_groups); do
        printf '%-16s %s' "$group" "${RELEASE_PACKAGES[$group]:-}"
        if [[ -n "${BACKPORTS_PACKAGES[$group]:-}" ]]; then
            printf ' [backports: %s]' "${BACKPORTS_PACKAGES[$group]}"
        fi
        printf '\n'
    done
    echo "default: ${DEFAULT_GROUPS[*]}"
}

debian_codename() {
    local codename
    codename=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
    [[ -n "$codename" ]] || die "cannot tell the Debian release: no VERSION_CODENAME in /etc/os-release"
    echo "$codename"
}

# Suites that apt has configured (from sources.list, .list and deb822 .sources
# files, honouring `Enabled: no`), whether or not their lists were downloaded.
configured_suites() {
    apt-get indextargets --no-release-info --format '$(RELEASE)' | sort -u
}

# The archive URI apt already uses for the release itself, so the backports
# source follows the machine's mirror (this script never names one).
release_archive_uri() {
    local codename=$1
    apt-get indextargets --no-release-info --format '$(RELEASE) $(SITE)' \
        | awk -v suite="$codename" '$1 == suite && uri == "" { uri = $2 } END { print uri }'
}

# Add the <codename>-backports suite as a deb822 source unless apt already has
# it from any file (then it changes nothing). After it adds one, apt-get update
# is needed before the suite's packages can be installed.
ensure_backports_source() {
    local codename suite sources_dir file uri keyring
    codename=$(debian_codename)
    suite="${codename}-backports"
    if configured_suites | grep -qxF "$suite"; then
        return 0
    fi
    eval "$(apt-config shell sources_dir Dir::Etc::sourceparts/d)"
    [[ -n "${sources_dir:-}" ]] || die "apt-config does not name the sources.list.d directory"
    file="${sources_dir%/}/${suite}.sources"
    [[ -e "$file" ]] && die "$file exists but apt does not list $suite from it; fix or remove that file"
    uri=$(release_archive_uri "$codename")
    [[ -n "$uri" ]] || die "apt has no source for $codename to take the mirror of $suite from;" \
        "add your Debian mirror for $codename to /etc/apt/sources.list.d/ first"
    keyring=/usr/share/keyrings/debian-archive-keyring.gpg
    {
        echo "Types: deb"
        echo "URIs: ${uri%/}"
        echo "Suites: $suite"
        echo "Components: main"
        if [[ -r "$keyring" ]]; then
            echo "Signed-By: $keyring"
        fi
    } >"$file"
    configured_suites | grep -qxF "$suite" || die "wrote $file but apt does not list $suite"
    say "added the $suite apt source ($file)"
}

# The installed version of a package; empty (and still success) when it is not
# installed or not known at all.
installed_version() {
    { dpkg-query -W -f='${db:Status-Status} ${Version}\n' "$1" 2>/dev/null || true; } \
        | awk '$1 == "installed" { print $2 }'
}

# The newest version of a package that the suite offers; empty when its lists
# were not downloaded yet.
suite_version() {
    local package=$1 suite=$2
    { apt-cache madison "$package" 2>/dev/null || true; } \
        | awk -F' [|] ' -v suite="$suite" 'index($3, " " suite "/") { print $2; exit }'
}

# apt-get runs with a policy-rc.d that forbids starting services, unless the
# machine already has one (containers often do).
POLICY_RC_D=/usr/sbin/policy-rc.d
OWN_POLICY_RC_D=0

hold_services() {
    [[ -e "$POLICY_RC_D" ]] && return 0
    printf '#!/bin/sh\n# written by v6alt scripts/install-deps.sh while it installs\nexit 101\n' \
        >"$POLICY_RC_D"
    chmod 755 "$POLICY_RC_D"
    OWN_POLICY_RC_D=1
    trap release_services EXIT
}

release_services() {
    if [[ $OWN_POLICY_RC_D -eq 1 ]]; then
        rm -f "$POLICY_RC_D"
    fi
    OWN_POLICY_RC_D=0
}

# Disable (at boot) the services of the packages this run installed.
disable_services() {
    local package units=()
    [[ -d /run/systemd/system ]] || return 0
    for package in "$@"; do
        # shellcheck disable=SC2206
        units+=(${PACKAGE_SERVICES[$package]:-})
    done
    [[ ${#units[@]} -gt 0 ]] || return 0
    systemctl disable --now --quiet "${units[@]}" >>"$APT_LOG" 2>&1 ||
        say "warning: could not disable ${units[*]}"
}

run_apt() {
    if ! DEBIAN_FRONTEND=noninteractive "$@" >>"$APT_LOG" 2>&1; then
        echo "install-deps: error: '$*' failed; its output:" >&2
        tail -n 40 "$APT_LOG" >&2
        exit 1
    fi
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "missing packages ($*); run as root: sudo $0 ${GROUPS_WANTED[*]}"
}

main() {
    if [[ "${1:-}" == "--list" ]]; then
        list_groups
        return 0
    fi
    if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
        sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
        return 0
    fi
    command -v apt-get >/dev/null || die "apt-get not found: this script supports Debian (12, bookworm) only"
    if [[ "${1:-}" == "--backports-source" ]]; then
        [[ $(id -u) -eq 0 ]] || die "adding an apt source needs root"
        ensure_backports_source
        return 0
    fi

    GROUPS_WANTED=("$@")
    [[ ${#GROUPS_WANTED[@]} -gt 0 ]] || GROUPS_WANTED=("${DEFAULT_GROUPS[@]}")

    local group release=() backports=()
    for group in "${GROUPS_WANTED[@]}"; do
        if [[ -z "${RELEASE_PACKAGES[$group]+x}" && -z "${BACKPORTS_PACKAGES[$group]+x}" ]]; then
            die "unknown group '$group' (known: $(known_groups | tr '\n' ' '))"
        fi
        # shellcheck disable=SC2206  # package lists are plain words
        release+=(${RELEASE_PACKAGES[$group]:-})
        # shellcheck disable=SC2206
        backports+=(${BACKPORTS_PACKAGES[$group]:-})
    done

    local package missing_release=() missing_backports=() suite=""
    for package in "${release[@]}"; do
        [[ -n "$(installed_version "$package")" ]] || missing_release+=("$package")
    done
    if [[ ${#backports[@]} -gt 0 ]]; then
        suite="$(debian_codename)-backports"
        if ! configured_suites | grep -qxF "$suite"; then
            need_root "the $suite apt source"
            ensure_backports_source
        fi
        for package in "${backports[@]}"; do
            local have want
            have=$(installed_version "$package")
            want=$(suite_version "$package" "$suite")
            # An empty candidate means the suite's lists were never downloaded:
            # install (after apt-get update) in that case too.
            [[ -n "$have" && "$have" == "$want" ]] || missing_backports+=("$package")
        done
    fi

    if [[ ${#missing_release[@]} -eq 0 && ${#missing_backports[@]} -eq 0 ]]; then
        return 0
    fi
    local missing=("${missing_release[@]}" "${missing_backports[@]}")
    need_root "${missing[*]}"
    APT_LOG=$(mktemp /tmp/v6alt-install-deps.XXXXXX.log)
    say "installing ${missing[*]} (log: $APT_LOG)"
    run_apt apt-get update -q
    hold_services
    [[ ${#missing_release[@]} -eq 0 ]] || run_apt "${APT_INSTALL[@]}" "${missing_release[@]}"
    [[ ${#missing_backports[@]} -eq 0 ]] || run_apt "${APT_INSTALL[@]}" -t "$suite" "${missing_backports[@]}"
    release_services
    disable_services "${missing[@]}"
    rm -f "$APT_LOG"
}

main "$@"
