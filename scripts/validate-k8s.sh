#!/bin/sh
# Checks deploy/k8s/*.yaml against the Kubernetes object schemas, without a
# cluster: kubernetes-validate (from PyPI, schemas bundled) in a virtualenv
# under target/, strict (unknown fields are errors).
set -eu
cd "$(dirname "$0")/.."
venv=target/k8s-validate-venv
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet kubernetes-validate
fi
"$venv/bin/kubernetes-validate" --strict deploy/k8s/*.yaml
