#!/usr/bin/env bash
# Lints template.yaml with cfn-lint (installed from PyPI into
# .local/tools-venv on first use) and checks its routes against the
# functions' published contracts (scripts/check_template.py).
set -euo pipefail
cd "$(dirname "$0")/.."

cfn_lint_version=1.58.0
venv=.local/tools-venv
if ! "$venv/bin/pip" show cfn-lint 2>/dev/null | grep -x "Version: ${cfn_lint_version}" >/dev/null; then
    echo "lint: installing cfn-lint ${cfn_lint_version} into ${venv}"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "cfn-lint==${cfn_lint_version}" pyyaml
fi
"$venv/bin/cfn-lint" template.yaml
echo "lint: cfn-lint found nothing in template.yaml"
"$venv/bin/python" scripts/check_template.py
