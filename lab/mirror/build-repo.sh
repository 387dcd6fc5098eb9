#!/usr/bin/env bash
# Runs inside the mirror image's rootfs at build time (chroot): builds the test-double
# packages of NVIDIA's container toolkit and signs two apt trees of them, each with a
# key made here. The secret keys stay in this run's GNUPGHOME, which the build removes.
#   build-repo.sh SRC OUT VERSION...
set -euo pipefail
SRC=$1 OUT=$2
shift 2
ARCH=amd64
LIBDIR=/usr/lib/x86_64-linux-gnu
WORK=$(mktemp -d)
MAINTAINER="gpunode lab <lab@gpunode.invalid>"
DOUBLE="This is a gpunode lab test double, not NVIDIA's package: the same name, version,
 dependencies and file paths, with stand-in programs that answer --version and fail
 the way the real ones fail without a driver."

# A minimal ELF64 shared object that names its SONAME, so ldconfig takes it as a
# library (a text file there makes every ldconfig run warn); it cannot be loaded.
stand_in_library() {  # path soname
  python3 - "$1" "$2" <<'PY'
import struct, sys
path, soname = sys.argv[1], sys.argv[2].encode()
strtab = b"\0" + soname + b"\0"
dyn_off = 64 + 2 * 56
str_off = dyn_off + 4 * 16
size = str_off + len(strtab)
ehdr = struct.pack("<16sHHIQQQIHHHHHH", b"\x7fELF\x02\x01\x01" + bytes(9), 3, 62, 1, 0, 64, 0, 0, 64, 56, 2, 64, 0, 0)
load = struct.pack("<IIQQQQQQ", 1, 4, 0, 0, 0, size, size, 0x1000)
dynamic = struct.pack("<IIQQQQQQ", 2, 4, dyn_off, dyn_off, dyn_off, 64, 64, 8)
dyn = struct.pack("<qQqQqQqQ", 14, 1, 5, str_off, 10, len(strtab), 0, 0)
with open(path, "wb") as out:
    out.write(ehdr + load + dynamic + dyn + strtab)
PY
}

stand_in() {  # template version dest [name title]
  sed -e "s/@VERSION@/$2/g" -e "s/@NAME@/${4:-}/g" -e "s/@TITLE@/${5:-}/g" "$SRC/bin/$1" >"$3"
  chmod 755 "$3"
}

# package version depends summary: DEBIAN/control for the tree in $WORK/$package.
control() {
  local pkg=$1 version=$2 depends=$3 summary=$4 root=$WORK/$1 extra=${5:-}
  mkdir -p "$root/DEBIAN"
  for script in postinst prerm postrm; do
    if [ -f "$SRC/debian/$pkg.$script" ]; then
      install -m 755 "$SRC/debian/$pkg.$script" "$root/DEBIAN/$script"
    fi
  done
  # As debhelper does for a shared library: ldconfig runs once dpkg is done.
  [ "$pkg" != libnvidia-container1 ] || echo "activate-noawait ldconfig" >"$root/DEBIAN/triggers"
  if [ -d "$root/etc" ]; then
    (cd "$root" && find etc -type f -printf '/%p\n' | sort) >"$root/DEBIAN/conffiles"
  fi
  (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
    xargs -0 -r md5sum) >"$root/DEBIAN/md5sums"
  {
    echo "Package: $pkg"
    echo "Version: $version-1"
    echo "Architecture: $ARCH"
    echo "Maintainer: $MAINTAINER"
    echo "Installed-Size: $(du -sk --exclude=DEBIAN "$root" | cut -f1)"
    [ -z "$depends" ] || echo "Depends: $depends"
    [ -z "$extra" ] || printf '%s\n' "$extra"
    echo "Homepage: https://github.com/NVIDIA/nvidia-container-toolkit"
    echo "Description: $summary (gpunode lab test double)"
    echo " $DOUBLE"
  } >"$root/DEBIAN/control"
}

build_version() {  # version -> four .debs in $WORK/debs
  local v=$1 r
  rm -rf "${WORK:?}"/{libnvidia-container1,libnvidia-container-tools,nvidia-container-toolkit-base,nvidia-container-toolkit}

  r=$WORK/libnvidia-container1
  mkdir -p "$r$LIBDIR"
  stand_in_library "$r$LIBDIR/libnvidia-container.so.$v" libnvidia-container.so.1
  stand_in_library "$r$LIBDIR/libnvidia-container-go.so.$v" libnvidia-container-go.so.1
  ln -s "libnvidia-container.so.$v" "$r$LIBDIR/libnvidia-container.so.1"
  ln -s "libnvidia-container-go.so.$v" "$r$LIBDIR/libnvidia-container-go.so.1"
  control libnvidia-container1 "$v" "libc6 (>= 2.17), libcap2 (>= 1:2.10)" \
    "NVIDIA container runtime library" "Section: libs
Multi-Arch: same
Source: libnvidia-container"

  r=$WORK/libnvidia-container-tools
  mkdir -p "$r/usr/bin"
  stand_in nvidia-container-cli "$v" "$r/usr/bin/nvidia-container-cli"
  control libnvidia-container-tools "$v" "libnvidia-container1 (>= $v-1), libc6 (>= 2.17)" \
    "NVIDIA container runtime library (command-line tools)" "Section: utils
Source: libnvidia-container"

  r=$WORK/nvidia-container-toolkit-base
  mkdir -p "$r/usr/bin" "$r/usr/lib/systemd/system" "$r/usr/lib/systemd/system-preset" \
    "$r/etc/nvidia-container-toolkit"
  stand_in nvidia-ctk "$v" "$r/usr/bin/nvidia-ctk"
  stand_in nvidia-container-runtime "$v" "$r/usr/bin/nvidia-container-runtime"
  # The real .cdi and .legacy binaries are the runtime pinned to one mode: here the same shim.
  stand_in nvidia-container-runtime "$v" "$r/usr/bin/nvidia-container-runtime.cdi"
  stand_in nvidia-container-runtime "$v" "$r/usr/bin/nvidia-container-runtime.legacy"
  stand_in version-only "$v" "$r/usr/bin/nvidia-cdi-hook" nvidia-cdi-hook "NVIDIA CDI Hook"
  install -m 644 "$SRC"/units/nvidia-cdi-refresh.{service,path} "$r/usr/lib/systemd/system/"
  install -m 644 "$SRC/units/90-nvidia-container-toolkit.preset" "$r/usr/lib/systemd/system-preset/"
  install -m 644 "$SRC/units/nvidia-cdi-refresh.env" "$r/etc/nvidia-container-toolkit/"
  control nvidia-container-toolkit-base "$v" "" "NVIDIA Container Toolkit Base" "Section: utils
Source: nvidia-container-toolkit
Breaks: nvidia-container-toolkit (<= 1.10.0-1)
Replaces: nvidia-container-toolkit (<= 1.10.0-1)"

  r=$WORK/nvidia-container-toolkit
  mkdir -p "$r/usr/bin"
  stand_in version-only "$v" "$r/usr/bin/nvidia-container-runtime-hook" nvidia-container-runtime-hook \
    "NVIDIA Container Runtime Hook"
  control nvidia-container-toolkit "$v" "nvidia-container-toolkit-base (= $v-1), libnvidia-container-tools (>= $v-1), libnvidia-container-tools (<< 2.0.0)" \
    "NVIDIA Container toolkit" "Section: utils
Breaks: nvidia-container-runtime (<= 3.5.0-1), nvidia-container-runtime-hook
Replaces: nvidia-container-runtime (<= 3.5.0-1), nvidia-container-runtime-hook"

  for pkg in libnvidia-container1 libnvidia-container-tools nvidia-container-toolkit-base nvidia-container-toolkit; do
    dpkg-deb --root-owner-group -Zxz --build "$WORK/$pkg" "$WORK/debs/${pkg}_$v-1_$ARCH.deb" >/dev/null
  done
}

new_key() {  # gnupghome uid -> fingerprint
  mkdir -m 700 "$1"
  gpg --homedir "$1" --batch --quiet --pinentry-mode loopback --passphrase '' \
    --quick-gen-key "$2" rsa3072 sign never 2>/dev/null
  gpg --homedir "$1" --with-colons --list-secret-keys 2>/dev/null | awk -F: '$1 == "fpr" {print $10; exit}'
}

sign_tree() {  # gnupghome dir: a flat repository laid out like NVIDIA's (deb/<arch>/ + gpgkey)
  local home=$1 base=$2 repo=$2/stable/deb/$ARCH
  mkdir -p "$repo"
  cp "$WORK"/debs/*.deb "$repo/"
  (
    cd "$repo"
    apt-ftparchive packages . >Packages
    gzip -9nk Packages
    apt-ftparchive -o APT::FTPArchive::Release::Origin="gpunode lab mirror" \
      -o APT::FTPArchive::Release::Label="gpunode lab test doubles of libnvidia-container" \
      -o APT::FTPArchive::Release::Architectures="$ARCH" release . >../Release.tmp
    mv ../Release.tmp Release
    gpg --homedir "$home" --batch --yes --pinentry-mode loopback --passphrase '' --clearsign -o InRelease Release
    gpg --homedir "$home" --batch --yes --pinentry-mode loopback --passphrase '' -abs -o Release.gpg Release
  )
  gpg --homedir "$home" --armor --export >"$base/gpgkey"
}

mkdir -p "$WORK/debs"
for version in "$@"; do build_version "$version"; done
good=$(new_key "$WORK/gnupg-good" "gpunode lab mirror (test double of NVIDIA's repository key)")
other=$(new_key "$WORK/gnupg-other" "gpunode lab mirror, other key (for the refused-signature test)")
sign_tree "$WORK/gnupg-good" "$OUT/libnvidia-container"
sign_tree "$WORK/gnupg-other" "$OUT/other-key/libnvidia-container"
echo "$good" >"$OUT/libnvidia-container/gpgkey.fingerprint"
echo "$other" >"$OUT/other-key/libnvidia-container/gpgkey.fingerprint"
gpgconf --homedir "$WORK/gnupg-good" --kill all 2>/dev/null || true
gpgconf --homedir "$WORK/gnupg-other" --kill all 2>/dev/null || true
rm -rf "$WORK"
echo "$good"
