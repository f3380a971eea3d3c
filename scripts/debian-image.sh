#!/usr/bin/env bash
# Prints the tag of a local Debian 12 (bookworm) base image, making it when missing. There is
# no registry to pull from: the root is a `debootstrap --variant=minbase` from the Debian
# mirror this machine's apt uses, kept as a tarball under /var/cache/nodeagent/debian/ and
# loaded with `docker import`. The key is the ISO week: a cold debootstrap takes minutes, and
# a week-old base still gets current packages from `apt-get update` in the images built on it.
# Used by deploy/build-image.sh (both stages of deploy/Containerfile) and the package test.
#   scripts/debian-image.sh            -> nodeagent/debian:12-2026-w49
set -euo pipefail
cache="${NODEAGENT_CACHE:-/var/cache/nodeagent}/debian"
key="$(date -u +%G-w%V)"
tag="nodeagent/debian:12-$key"
if docker image inspect "$tag" >/dev/null 2>&1; then echo "$tag"; exit 0; fi
command -v debootstrap >/dev/null || { echo "debian-image.sh: debootstrap is not installed (scripts/packages/deploy.txt)" >&2; exit 1; }

# The mirrors apt uses here (deb822 .sources or one-line lists); Debian's own as fallback.
uris="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
        sed 's/#.*//' | grep -oE 'https?://[^ ]+/debian(-security)?/?' | sed 's,/$,,' | sort -u || true)"
mirror="$(grep -E '/debian$' <<<"$uris" | head -1)"; mirror="${mirror:-http://deb.debian.org/debian}"
security="$(grep -E '/debian-security$' <<<"$uris" | head -1)"; security="${security:-http://deb.debian.org/debian-security}"

mkdir -p "$cache"
tarball="$cache/bookworm-minbase-$key.tar"
exec 9>"$cache/.lock"
flock 9  # one debootstrap at a time; a second caller finds the tarball
if [ ! -s "$tarball" ]; then
  root="$(mktemp -d "$cache/root.XXXXXX")"
  trap 'rm -rf "$root"' EXIT
  echo "debian-image.sh: debootstrap bookworm from $mirror (a few minutes, once a week)" >&2
  debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 ||
    { tail -20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
  rm -f "$root.log"
  cat > "$root/etc/apt/sources.list" <<LIST
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
LIST
  # Images run `apt-get update` themselves; no lists or .debs in the base.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  find "$cache" -maxdepth 1 -name 'bookworm-minbase-*.tar' ! -name "${tarball##*/}" -delete
fi
docker import -c 'CMD ["/bin/bash"]' \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' "$tarball" "$tag" >/dev/null
echo "$tag"
