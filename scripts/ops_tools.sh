#!/usr/bin/env bash
# Installs what the deploy/ tests drive, into .cache/ (idempotent: no-op when the pinned versions are there):
#   .cache/bin/kustomize   kustomize, built with `go install` (the Go module proxy)
#   .cache/crds/*.yaml     the published CRDs of KEDA and the Prometheus Operator, taken from their Go modules
#                          (`go mod download`), to validate ScaledObject/TriggerAuthentication/ServiceMonitor/
#                          PrometheusRule objects against their real schemas; CloudNativePG's Cluster CRD too.
#                          Strimzi is not a Go module.
# Prints the kustomize path on stdout. Needs Go (>= 1.24); there is no other fallback.
set -euo pipefail
cd "$(dirname "$0")/.."
KUSTOMIZE_VERSION="v5.8.2"      # v5.8.3 needs Go 1.27
KEDA_VERSION="v2.16.1"
PROMETHEUS_OPERATOR_VERSION="v0.79.2"
CNPG_VERSION="v1.25.1"          # CloudNativePG: the archive's PostgreSQL Cluster
BIN="$PWD/.cache/bin"
CRDS="$PWD/.cache/crds"
mkdir -p "$BIN" "$CRDS"
command -v go >/dev/null || { echo "ops_tools.sh: need Go to install kustomize ${KUSTOMIZE_VERSION}" >&2; exit 1; }
# Low parallelism: the build machines are shared.
export GOFLAGS="-buildvcs=false -p=1 -mod=mod"

if ! { [ -x "$BIN/kustomize" ] && "$BIN/kustomize" version 2>/dev/null | grep -qx "${KUSTOMIZE_VERSION}"; }; then
    GOBIN="$BIN" go install -ldflags "-X sigs.k8s.io/kustomize/api/provenance.version=${KUSTOMIZE_VERSION}" \
        "sigs.k8s.io/kustomize/kustomize/v5@${KUSTOMIZE_VERSION}" >&2
fi

stamp="$CRDS/.versions"
want="keda=${KEDA_VERSION} prometheus-operator=${PROMETHEUS_OPERATOR_VERSION} cnpg=${CNPG_VERSION}"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    keda=$(cd "$CRDS" && go mod download -json "github.com/kedacore/keda/v2@${KEDA_VERSION}" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    pop=$(cd "$CRDS" && go mod download -json "github.com/prometheus-operator/prometheus-operator@${PROMETHEUS_OPERATOR_VERSION}" \
        | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    for f in keda.sh_scaledobjects.yaml keda.sh_triggerauthentications.yaml; do
        install -m 0644 "$keda/config/crd/bases/$f" "$CRDS/$f"
    done
    for f in monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml; do
        install -m 0644 "$pop/example/prometheus-operator-crd/$f" "$CRDS/$f"
    done
    cnpg=$(cd "$CRDS" && go mod download -json "github.com/cloudnative-pg/cloudnative-pg@${CNPG_VERSION}" \
        | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    install -m 0644 "$cnpg/config/crd/bases/postgresql.cnpg.io_clusters.yaml" "$CRDS/postgresql.cnpg.io_clusters.yaml"
    echo "$want" > "$stamp"
fi
echo "$BIN/kustomize"
