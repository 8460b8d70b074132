#!/usr/bin/env bash
# Build (once) the Debian image with Python that the Python-environment tests run their one-off
# sync containers and the fake ComfyUI in. No registry is reachable, so it is made from Debian's
# packages with debootstrap and `docker import` (about 3 minutes, ~220 MB), then kept: later runs
# find the tag and return at once.
#   scripts/python-image.sh [TAG]      (default: comfyprov-test/python:bookworm)
set -euo pipefail
tag="${1:-comfyprov-test/python:bookworm}"
if docker image inspect "$tag" >/dev/null 2>&1; then
    echo "$tag: present"
    exit 0
fi
if ! command -v debootstrap >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
fi
mirror="$(cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
    | sed -n 's/^URIs: *//p; s/^deb \(\[[^]]*\] \)\?\([^ ]*\) .*/\2/p' | grep -v security | head -n 1 || true)"
mirror="${mirror:-http://deb.debian.org/debian}"
root="$(mktemp -d /tmp/comfyprov-rootfs.XXXXXX)"
trap 'rm -rf "$root"' EXIT
echo "building $tag from $mirror (debootstrap, a few minutes)"
debootstrap --variant=minbase --include=python3,ca-certificates bookworm "$root" "$mirror" >/tmp/comfyprov-debootstrap.log 2>&1 \
    || { tail -n 30 /tmp/comfyprov-debootstrap.log; exit 1; }
# Never pack a rootfs while /proc is mounted in it.
if mountpoint -q "$root/proc"; then umount "$root/proc"; fi
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" --one-file-system -c . | docker import -c 'LABEL comfyprov.test.base=1' - "$tag" >/dev/null
echo "$tag: built"
