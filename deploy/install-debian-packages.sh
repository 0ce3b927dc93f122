#!/usr/bin/env bash
# Install the Debian packages the console and its tests need, if any are missing.
#   pcscd, vsmartcard-vpcd     PC/SC daemon and the virtual-reader driver the tests use
#   swig, libpcsclite-dev, gcc, python3-dev   to build pyscard where no wheel fits
#   python3, python3-venv      the interpreter and venv (Debian splits venv out)
#   chromium, fonts-wqy-microhei   the real headless browser the page tests drive (Playwright, system browser),
#                              and a font for the pages' Chinese labels in its screenshots
#   wrk                        the HTTP load generator of `make bench`
#   libnss3-tools              certutil, with which `nhi-console cert --install` adds the CA to browsers' NSS databases
#   systemd                    systemd-analyze, which the tests run on the service unit (no systemd needs to run)
# As root it installs them; otherwise it prints the command to run and fails.
set -euo pipefail

packages=(pcscd vsmartcard-vpcd swig libpcsclite-dev gcc python3 python3-dev python3-venv ca-certificates chromium fonts-wqy-microhei wrk libnss3-tools systemd)
missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "Missing Debian packages: ${missing[*]}" >&2
  echo "Install them first:  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "Installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
