#!/usr/bin/env bash
# kubeconform and the Kubernetes JSON schemas it validates against, offline: kubeconform downloads
# its schemas from GitHub (github.com/yannh/kubernetes-json-schema), which is not reachable here.
# Both come from the Go module proxy instead, pinned and checked against sum.golang.org:
# - kubeconform: `go install github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION`
#   into .tools/bin (like loadtest/install-k6.sh), with the Go infra/scripts/ensure-go.sh gives;
# - the schemas: api/openapi-spec/swagger.json of the module k8s.io/kubernetes@$KUBERNETES_VERSION
#   (the OpenAPI document the API server of that release serves), turned into one stand-alone,
#   strict JSON schema per kind by infra/scripts/k8s-json-schemas.ts (what openapi2jsonschema
#   does for kubeconform's default schemas) in .tools/kubeconform-schemas/v<version>-standalone-strict/.
# Quiet on stderr when both are there. Prints on stdout, one per line, what to run kubeconform with:
#   bin=<path>  kubernetes-version=<x.y.z>  schema-location=<template>
# i.e.  <bin> -strict -summary -kubernetes-version <x.y.z> -schema-location '<template>' infra/k8s/*.yaml
# (test/deploy/deploy-files.test.ts does that).
set -euo pipefail
cd "$(dirname "$0")/../.."
KUBECONFORM_VERSION=${KUBECONFORM_VERSION:-v0.8.0}
# The oldest Kubernetes minor still supported upstream (1.35, 1.36, 1.37 as of December 2026): the
# manifests must not use fields a supported cluster does not know.
KUBERNETES_VERSION=${KUBERNETES_VERSION:-v1.35.4}
BIN=.tools/bin/kubeconform
SCHEMAS=.tools/kubeconform-schemas
OUT=$SCHEMAS/$KUBERNETES_VERSION-standalone-strict
GENERATOR=infra/scripts/k8s-json-schemas.ts

# Go >= 1.21 (kubeconform's go.mod needs it; Debian 12 has 1.19): infra/scripts/ensure-go.sh prints
# one, fetching the toolchain module from the Go module proxy when the system's Go is older.
go=$(bash infra/scripts/ensure-go.sh) || { echo "install-kubeconform: no Go to build kubeconform with (see above)" >&2; exit 1; }

# `go version -m` names the module version a binary was built from.
if ! { [[ -x $BIN ]] && "$go" version -m "$BIN" 2>/dev/null | grep -q "^[[:space:]]mod[[:space:]]github.com/yannh/kubeconform[[:space:]]$KUBECONFORM_VERSION[[:space:]]"; }; then
  echo "install-kubeconform: building kubeconform $KUBECONFORM_VERSION (about 30 s the first time)" >&2
  (cd / && GOBIN="$OLDPWD/.tools/bin" GOFLAGS=-buildvcs=false GOTOOLCHAIN=auto "$go" install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION") >&2
fi

# The schemas, again when the generator changed (its hash is the stamp).
stamp="$(sha256sum "$GENERATOR" | cut -d' ' -f1)"
if [[ "$(cat "$OUT/.stamp" 2>/dev/null)" != "$stamp" ]]; then
  echo "install-kubeconform: generating the Kubernetes $KUBERNETES_VERSION schemas" >&2
  # `go mod download -json` prints where the (checksum-verified) module is unpacked.
  dir="$(cd / && "$go" mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  [[ -f $dir/api/openapi-spec/swagger.json ]] || { echo "install-kubeconform: no api/openapi-spec/swagger.json in k8s.io/kubernetes@$KUBERNETES_VERSION ($dir)" >&2; exit 1; }
  mkdir -p "$SCHEMAS"
  tmp="$(mktemp -d "$SCHEMAS/.new.XXXXXX")"
  node --import tsx "$GENERATOR" "$dir/api/openapi-spec/swagger.json" "$tmp"
  echo "$stamp" >"$tmp/.stamp" && chmod 755 "$tmp"
  rm -rf "$OUT" && mv "$tmp" "$OUT"
fi

echo "bin=$(pwd)/$BIN"
echo "kubernetes-version=${KUBERNETES_VERSION#v}"
echo "schema-location=$(pwd)/$SCHEMAS/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json"
