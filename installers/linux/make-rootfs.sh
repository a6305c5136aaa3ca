#!/usr/bin/env bash
# Make a clean Debian root filesystem for the package install tests, once, cached outside the
# repository: debootstrap --variant=minbase plus systemd (a Debian PC has it; with it the
# maintainer scripts take the same path as on a PC, and `systemd-analyze verify` inside the
# root checks the installed units against that release's own systemd).
#
#   installers/linux/make-rootfs.sh SUITE [CACHE]     SUITE: bookworm | trixie
#
# Writes CACHE/rootfs/SUITE.tar (default CACHE: $DEVPOSTURE_CI_CACHE or /var/cache/devposture-ci)
# and leaves an existing one alone: delete it to make it anew. The tests unpack a copy per run,
# so they never change the cached one. Needs root and debootstrap (Debian package
# `debootstrap`); reaches http://deb.debian.org/debian (or $DEBIAN_MIRROR).
set -euo pipefail

suite=${1:?usage: make-rootfs.sh bookworm|trixie [CACHE]}
cache=${2:-${DEVPOSTURE_CI_CACHE:-/var/cache/devposture-ci}}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
case "$suite" in
  bookworm|trixie) ;;
  *) echo "make-rootfs.sh: unknown suite '$suite' (bookworm or trixie)" >&2; exit 2 ;;
esac
out="$cache/rootfs/$suite.tar"
if [ -s "$out" ]; then
  echo "rootfs $suite: $out exists"
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "make-rootfs.sh: debootstrap needs root" >&2; exit 1; }
command -v debootstrap >/dev/null || {
  echo "make-rootfs.sh: debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }

mkdir -p "$cache/rootfs"
work=$(mktemp -d "$cache/rootfs/.$suite.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "rootfs $suite: debootstrap --variant=minbase from $mirror"
debootstrap --variant=minbase --include=systemd "$suite" "$work/root" "$mirror" \
  > "$work/debootstrap.log" 2>&1 || { tail -30 "$work/debootstrap.log" >&2; exit 1; }
# Nothing downloaded stays in the image: the tests install only our own packages.
rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
tar --numeric-owner -C "$work/root" -cf "$work/$suite.tar" .
mv "$work/$suite.tar" "$out"
echo "rootfs $suite: $(du -h "$out" | cut -f1) in $out"
