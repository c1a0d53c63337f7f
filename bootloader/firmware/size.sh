#!/usr/bin/env bash
# Code size of the firmware, in bytes: the QEMU demo (default features: full text output)
# and the minimal probe (--no-default-features), each at opt-level "z" and "s".
# Flash = vector table + .text + .rodata + .data; RAM = .data + .bss (the stack is extra).
# Needs arm-none-eabi-size (Debian: binutils-arm-none-eabi), llvm-size or rust-size.
# Exits 1 if the probe at opt-level "z" is over the 32 KiB budget.
set -euo pipefail
cd "$(dirname "$0")"
# Measured with the DEMO ONLY key, which a release build refuses without this opt-in.
export OTTER_DEMO_KEY=1

size_tool=$(command -v arm-none-eabi-size || command -v llvm-size || command -v rust-size || true)
if [[ -z "$size_tool" ]]; then
    echo "no size tool: apt-get install binutils-arm-none-eabi (or llvm)" >&2
    exit 2
fi
elf=target/thumbv7em-none-eabihf/release/otter-boot-firmware
budget=32768
over=0

printf '%-6s %-3s %7s %7s %6s %6s %7s\n' variant opt text rodata data bss flash
for variant in demo probe; do
    flags=()
    [[ $variant == probe ]] && flags=(--no-default-features)
    for opt in z s; do
        CARGO_PROFILE_RELEASE_OPT_LEVEL=$opt cargo build --release --quiet "${flags[@]}"
        read -r text rodata data bss < <("$size_tool" -A "$elf" | awk '
            $1 == ".vector_table" || $1 == ".text" || $1 == ".gnu.sgstubs" { t += $2 }
            $1 == ".rodata" { r += $2 }
            $1 == ".data" { d += $2 }
            $1 == ".bss" || $1 == ".uninit" { b += $2 }
            END { print t + 0, r + 0, d + 0, b + 0 }')
        flash=$((text + rodata + data))
        printf '%-6s %-3s %7d %7d %6d %6d %7d\n' "$variant" "$opt" "$text" "$rodata" "$data" "$bss" "$flash"
        if [[ $variant == probe && $opt == z && $flash -gt $budget ]]; then over=1; fi
    done
done
# Leave the default build (the one the QEMU test boots) in place.
cargo build --release --quiet
if ((over)); then
    echo "probe (opt-level z) is over the $budget-byte budget" >&2
    exit 1
fi
