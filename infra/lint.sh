#!/usr/bin/env bash
# Lints infra/template.yaml with every checker the project uses, and fails on any finding:
#
#   1. cfn-lint                         CloudFormation schemas, intrinsic functions, SAM transform
#   2. cfn-lint -a cfn_lint_serverless.rules
#                                       serverless best practices (tracing, log retention, DLQs,
#                                       API logging and throttling, on-failure destinations)
#   3. sam validate --lint              SAM CLI's own validation (offline)
#   4. checkov (cloudformation)         security misconfigurations
#
# Run by scripts/test.sh and `make validate`. cfn-lint, cfn-lint-serverless and SAM CLI come
# from the test virtualenv (scripts/requirements-test.txt); checkov pins a boto3 that SAM CLI
# cannot share, so it gets its own virtualenv ($LARDER_CHECKOV_VENV, default
# ~/.cache/larder/checkov-venv, from infra/requirements-checkov.txt), made here when missing.
# A suppression is written beside the resource it concerns in the template, with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."

template=infra/template.yaml
venv="${LARDER_VENV:-$HOME/.cache/larder/venv}"
checkov_venv="${LARDER_CHECKOV_VENV:-$HOME/.cache/larder/checkov-venv}"

log() { printf '\n--> %s\n' "$*"; }

if [ -x "$venv/bin/cfn-lint" ]; then export PATH="$venv/bin:$PATH"; fi
for tool in cfn-lint sam; do
  if ! command -v "$tool" >/dev/null; then
    echo "error: $tool not found; run scripts/test.sh once (it installs scripts/requirements-test.txt into $venv)" >&2
    exit 1
  fi
done

stamp="$checkov_venv/.larder-requirements"
if ! [ -x "$checkov_venv/bin/checkov" ] || ! cmp -s infra/requirements-checkov.txt "$stamp"; then
  log "preparing checkov's virtualenv in $checkov_venv"
  python3 -m venv "$checkov_venv"
  "$checkov_venv/bin/pip" install -q --upgrade pip
  "$checkov_venv/bin/pip" install -q -r infra/requirements-checkov.txt
  cp infra/requirements-checkov.txt "$stamp"
fi

log "cfn-lint $template"
cfn-lint "$template"

log "cfn-lint $template -a cfn_lint_serverless.rules"
cfn-lint "$template" -a cfn_lint_serverless.rules   # -a takes several modules: the template goes first

log "sam validate --lint"
# Offline; the region only selects which resource types cfn-lint expects to exist.
SAM_CLI_TELEMETRY=0 sam validate --lint --template-file "$template" --region "${AWS_REGION:-us-east-1}"

log "checkov --framework cloudformation"
# --skip-download: no call to Prisma Cloud for guideline links (there is no network in CI).
"$checkov_venv/bin/checkov" --file "$template" --framework cloudformation --skip-download --compact --quiet

log "template linters: clean"
