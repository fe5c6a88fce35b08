#!/usr/bin/env bash
# Builds IMAGE, a STAND-IN for public.ecr.aws/lambda/provided:al2023 where that
# image cannot be pulled, from Debian packages of this machine's architecture:
#   libc6, libgcc-s1   the glibc the functions (x86_64-unknown-linux-gnu, glibc
#                      2.36 here; Amazon Linux 2023 has 2.34) link against
#   busybox-static     /bin/sh, mv, chmod, cp, rm for the RUN step of the image
#                      `sam local` builds on top (it adds the Runtime Interface
#                      Emulator that the SAM CLI wheel ships)
# and the directories of the Lambda layout (/var/task, /var/runtime, /opt, /tmp).
# It is not Amazon Linux: no dnf, no system CA bundle (the functions carry their
# own roots), and glibc is Debian's. It runs the same bootstrap under the same
# emulator, which is what `make invoke` checks. See docs/local-lambda.md.
# Usage: infra/standin-image.sh IMAGE   (needs a running Docker daemon)
set -euo pipefail

image="${1:?usage: $0 IMAGE}"
log() { printf 'standin-image.sh: %s\n' "$*" >&2; }

packages=(libc6 libgcc-s1 busybox-static)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

rootfs="$(mktemp -d)"
trap 'rm -rf "$rootfs"' EXIT
# Debian 12 merges /bin, /lib, /lib64 and /sbin into /usr: the same layout.
mkdir -p "$rootfs/usr/bin" "$rootfs/usr/lib" "$rootfs/usr/lib64" "$rootfs/usr/sbin"
for dir in bin lib lib64 sbin; do ln -s "usr/$dir" "$rootfs/$dir"; done
# Every file and link of the packages (dpkg -L), as installed; no directories.
for p in "${packages[@]}"; do
  dpkg -L "$p" | while IFS= read -r path; do
    [[ ! -d $path ]] && [[ -f $path || -L $path ]] || continue
    case "$path" in /usr/share/*) continue ;; esac
    mkdir -p "$rootfs$(dirname "$path")"
    cp -a "$path" "$rootfs$path"
  done
done
mkdir -p "$rootfs/usr/bin" "$rootfs/var/task" "$rootfs/var/runtime" "$rootfs/opt" "$rootfs/tmp" "$rootfs/etc"
chmod 1777 "$rootfs/tmp"
for applet in sh mv chmod cp rm mkdir ls cat sleep; do
  ln -sf busybox "$rootfs/usr/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"

tar -C "$rootfs" -c . | docker import \
  -c 'ENV PATH=/usr/bin:/bin LANG=C.UTF-8 LAMBDA_TASK_ROOT=/var/task LAMBDA_RUNTIME_DIR=/var/runtime' \
  -c 'WORKDIR /var/task' \
  -m "stand-in for public.ecr.aws/lambda/provided:al2023 (Debian libc6, libgcc-s1, busybox-static)" \
  - "$image" >/dev/null
log "built $image"
