#!/bin/sh
# Writes the seed corpora of fuzz/corpus/: layer tars, image documents and references from the
# tests' crafted inputs (tests/tests/fuzz_seeds.rs), disk images with qemu-img and qemu-io
# (qemu-utils; the VHDX seeds, packed by page, come from fuzz_seeds.rs). Each seed is small:
# the whole corpus stays well under 1 MB. Run from anywhere;
# commit what it writes.
set -eu
fuzz=$(cd "$(dirname "$0")" && pwd)
cd "$fuzz/.."
cargo test -p d2l-testkit --test fuzz_seeds -- --ignored

out="$fuzz/corpus/disk_readers"
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A disk seed is a mode byte (0: the image as it is) and the image.
seed() {
    { printf '\000'; cat "$tmp/$1"; } > "$out/$1"
}
data() {
    qemu-io -f "$2" -c "write -P 0xab 0 4k" -c "write -P 0xcd 512k 4k" "$tmp/$1" > /dev/null
}
qemu-img create -q -f qcow2 -o cluster_size=4k "$tmp/v3.qcow2" 1M && data v3.qcow2 qcow2 && seed v3.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4k,compat=0.10 "$tmp/v2.qcow2" 1M && data v2.qcow2 qcow2 && seed v2.qcow2
qemu-img convert -q -c -f qcow2 -O qcow2 -o cluster_size=4k "$tmp/v3.qcow2" "$tmp/compressed.qcow2" && seed compressed.qcow2
qemu-img create -q -f vdi "$tmp/dynamic.vdi" 1M && seed dynamic.vdi
qemu-img create -q -f vmdk "$tmp/sparse.vmdk" 1M && seed sparse.vmdk
# streamOptimized takes whole grains in order: convert a raw disk holding data.
qemu-img create -q -f raw "$tmp/data.img" 1M && data data.img raw
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$tmp/data.img" "$tmp/stream.vmdk" && seed stream.vmdk
qemu-img create -q -f vpc "$tmp/dynamic.vhd" 1M && seed dynamic.vhd
qemu-img create -q -f vpc -o subformat=fixed "$tmp/fixed.vhd" 16k && seed fixed.vhd
# A raw disk: an MBR signature in 4 KiB.
head -c 4096 /dev/zero > "$tmp/raw.img" && printf '\125\252' | dd of="$tmp/raw.img" bs=1 seek=510 conv=notrunc 2> /dev/null && seed raw.img
du -sh "$fuzz/corpus"/*
