#!/bin/sh
# Adds <codename>-backports as an apt source of the image, from the mirror the
# image's own apt sources use for the release: whoever built the base image
# chose that mirror (their own, or Debian's), and the backports follow it.
# Changes nothing when the image has the backports suite already.
set -eu
. /etc/os-release
suite="${VERSION_CODENAME}-backports"
targets=$(apt-get indextargets --no-release-info --format '$(RELEASE) $(SITE)')
if printf '%s\n' "$targets" | grep -q "^${suite} "; then
    exit 0
fi
mirror=$(printf '%s\n' "$targets" | awk -v suite="$VERSION_CODENAME" '$1 == suite { print $2; exit }')
if [ -z "$mirror" ]; then
    echo "apt-backports: the image has no apt source for ${VERSION_CODENAME} to take the" \
        "mirror from (/etc/apt/sources.list, /etc/apt/sources.list.d/)" >&2
    exit 1
fi
echo "deb ${mirror%/} ${suite} main" >/etc/apt/sources.list.d/backports.list
