#!/bin/sh
# Build a one-layer OCI image tarball from the node's busybox-static, offline:
# no registry is reachable from the lab, and this is what an air-gapped site
# carries in (validate_container_image_archive). Usage: make-oci-image.sh NAME OUT.tar
set -eu
name=$1 out=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/rootfs/bin" "$work/oci/blobs/sha256"
cp /bin/busybox "$work/rootfs/bin/busybox"
for applet in sh ls cat echo; do ln -s busybox "$work/rootfs/bin/$applet"; done

blob() {  # file -> prints the digest after storing the file as a blob
  d=$(sha256sum "$1" | cut -d' ' -f1)
  cp "$1" "$work/oci/blobs/sha256/$d"
  echo "$d"
}
tar -C "$work/rootfs" --owner=0 --group=0 --numeric-owner -cf "$work/layer.tar" .
layer=$(blob "$work/layer.tar")
layer_size=$(stat -c %s "$work/layer.tar")
printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
  "$layer" >"$work/config.json"
config=$(blob "$work/config.json")
config_size=$(stat -c %s "$work/config.json")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
  "$config" "$config_size" "$layer" "$layer_size" >"$work/manifest.json"
manifest=$(blob "$work/manifest.json")
manifest_size=$(stat -c %s "$work/manifest.json")
printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"%s","org.opencontainers.image.ref.name":"%s"}}]}' \
  "$manifest" "$manifest_size" "$name" "${name##*:}" >"$work/oci/index.json"
echo '{"imageLayoutVersion":"1.0.0"}' >"$work/oci/oci-layout"
tar -C "$work/oci" --owner=0 --group=0 --numeric-owner -cf "$out" .
