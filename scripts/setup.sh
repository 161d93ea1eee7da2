#!/usr/bin/env bash
# Installs what wsbridge needs to build and test on Debian 12, then the pinned npm packages.
# chromium is Debian's browser for tests/browser (driven by the pinned npm playwright-core;
# no browser is ever downloaded). clang and libclang-rt-14-dev (the libFuzzer, ASan and UBSan
# runtimes) build the fuzz targets (scripts/fuzz.sh) and the sanitizer builds. squid and nginx
# are the restrictive intermediaries tests/browser starts on loopback ports (their system
# services are not used); squid in its OpenSSL flavour, squid-openssl, whose ssl-bump intercepts
# TLS for the https scenarios (it conflicts with the GnuTLS `squid` package, which apt replaces).
# prometheus provides promtool, which tests/e2e/metrics.test.mjs runs on the admin port's
# /metrics (`promtool check metrics`); its server is not started by the tests.
# dpkg-dev (dpkg-shlibdeps computes the package's Depends) and lintian build and check the
# Debian package in tests/e2e/package.test.mjs.
# As root it runs apt-get; otherwise it prints the exact command to run and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

# `scripts/setup.sh run` (the run command) installs only what building and running the proxy
# with the example backend needs; without an argument (the test command) also the browser, the
# second compiler with the fuzzing and sanitizer runtimes, and the intermediaries for tests.
# libsystemd-dev: sd_notify, the watchdog and socket activation (proxy/core/systemd.cc); the
# test set adds systemd for systemd-analyze, which checks systemd/'s units (no unit is
# installed or started).
packages=(build-essential cmake pkg-config libuv1-dev liburing-dev libssl-dev libyaml-cpp-dev
          libsystemd-dev doctest-dev node-llhttp curl openssl)
if [ "${1:-}" != run ]; then
  packages+=(chromium clang libclang-rt-14-dev squid-openssl nginx prometheus systemd dpkg-dev
             lintian)
fi
command -v node >/dev/null 2>&1 || packages+=(nodejs)
command -v npm >/dev/null 2>&1 || packages+=(npm)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
  else
    echo "setup: missing Debian packages. Run:" >&2
    echo "  sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

# Pinned npm packages (the `ws` backend and test peers): exactly what package-lock.json says.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
