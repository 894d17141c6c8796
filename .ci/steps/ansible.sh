#!/usr/bin/env bash
# pkg/plan's TestAnsibleExample runs examples/ansible/playbook.yml for real
# with Debian's ansible-core (about 30 s to install on a fresh machine).
set -euo pipefail
if ! command -v ansible-playbook >/dev/null; then
  echo "ci: installing ansible-core"
  apt-get install -y -qq ansible-core >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq ansible-core >/dev/null; }
fi
