# Shared shell helpers for the scripts in this folder. Source it; do not run it.

step() { printf '==> %s\n' "$*" >&2; }
ok()   { printf ' ok %s\n' "$*" >&2; }
note() { printf ' .. %s\n' "$*" >&2; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

# Which toolchain builds wasm32-wasip1 here: prints "rustup" or "debian", or fails.
# rustup: the active rustup toolchain has the wasm32-wasip1 standard library.
# debian: Debian's rustc-web (/usr/bin/rustc) with its std source and wasi-libc, built with -Zbuild-std.
wasm_toolchain_kind() {
  if [ "${WASM_TOOLCHAIN:-}" != debian ] && command -v rustc >/dev/null; then
    local sysroot
    sysroot="$(rustc --print sysroot 2>/dev/null || true)"
    if [ -n "$sysroot" ] && [ -d "$sysroot/lib/rustlib/wasm32-wasip1/lib" ]; then
      echo rustup; return 0
    fi
  fi
  if [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] && [ -d /usr/lib/rustlib/src/rust/library ] \
     && [ -f /usr/lib/wasm32-wasi/libc.a ]; then
    echo debian; return 0
  fi
  return 1
}
