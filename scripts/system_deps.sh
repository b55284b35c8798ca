#!/usr/bin/env bash
# Installs the Debian packages skyqa's tests and benchmarks drive for real. Idempotent; no-op when present.
set -euo pipefail
need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v source-extractor >/dev/null || need+=(source-extractor)
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v unzip >/dev/null || need+=(unzip)
# PostgreSQL for the archive's tests and benchmarks (scripts/postgres.sh starts throw-away clusters).
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need+=(postgresql)
if ((${#need[@]})); then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# Triton (scripts/triton.sh): the bundled Python-backend stub links the system libpython3.11; readiness via curl.
need=()
dpkg -s libpython3.11 >/dev/null 2>&1 || need+=(libpython3.11)
command -v curl >/dev/null || need+=(curl)
if ((${#need[@]})); then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# The serving image (scripts/image.sh, tests/test_image.py): Debian base root filesystem, buildah, umoci.
need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v buildah >/dev/null || need+=(buildah)
command -v umoci >/dev/null || need+=(umoci)
if ((${#need[@]})); then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# The web app's browser tests (tests/test_web_browser.py) and `make screenshots`: headless Chromium + its driver.
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
if ((${#need[@]})); then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
