#!/usr/bin/env bash
# Builds the serving image (deploy/image/Containerfile) with no container registry: the base root filesystem
# comes from Debian packages (mmdebstrap, bookworm's python3.11), the image from buildah with chroot isolation
# (no OCI runtime needed, so it builds in this unprivileged-cgroup sandbox too). Output: an OCI archive.
#
#   scripts/image.sh OUT_DIR   ->  OUT_DIR/skyqa-VERSION.oci.tar (ref name skyqa:VERSION)
#
# Everything, the container storage included, lives under OUT_DIR/.build and is removed at the end: the
# machine's own podman/buildah store is left alone, and every run starts from the Debian archive.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(realpath -m "${1:?OUT_DIR}")"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)"
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
work="$out/.build"
store=(--root "$work/storage" --runroot "$work/run")
base="localhost/skyqa-base:bookworm"
image="localhost/skyqa:$version"
archive="$out/skyqa-$version.oci.tar"

cleanup() {
  buildah "${store[@]}" rm --all >/dev/null 2>&1 || true
  buildah "${store[@]}" rmi --all --force >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
rm -rf "$work" "$archive"
mkdir -p "$work"

echo "== base root filesystem: Debian bookworm + python3.11 (mmdebstrap)"
mmdebstrap --quiet --variant=essential --include=python3.11,python3.11-venv,ca-certificates,libstdc++6,libgomp1 \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  bookworm "$work/base.tar" "$mirror"
ctr="$(buildah "${store[@]}" from scratch)"
buildah "${store[@]}" add --quiet "$ctr" "$work/base.tar" /
buildah "${store[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
buildah "${store[@]}" commit --quiet --rm "$ctr" "$base" >/dev/null
rm "$work/base.tar"
echo "   ${SECONDS} s"

echo "== image $image (deploy/image/Containerfile, BASE=$base)"
# The build stage installs from the Python package index: it sees the host's network, trust store and pip
# settings (a site's proxy or mirror) as volumes for the RUN steps only; none of them lands in the image.
mounts=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro)
[[ -f /etc/pip.conf ]] && mounts+=(-v /etc/pip.conf:/etc/pip.conf:ro)
buildah "${store[@]}" bud --quiet --isolation chroot --network host --pull-never --layers=false "${mounts[@]}" --target serving \
  -f deploy/image/Containerfile --build-arg BASE="$base" \
  --build-arg VERSION="$version" --build-arg REVISION="$revision" -t "$image" . >/dev/null
echo "   ${SECONDS} s"
buildah "${store[@]}" push --quiet "$image" "oci-archive:$archive:skyqa:$version"
size="$(buildah "${store[@]}" images --noheading --format '{{.Size}}' "$image")"
echo "== $archive: $(du -m "$archive" | cut -f1) MB (gzip layers); image $size uncompressed; ${SECONDS} s in all"
