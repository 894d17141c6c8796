#!/usr/bin/env bash
# pkg/plan's TestAnsibleExample runs examples/ansible/playbook.yml for real
# with Debian's ansible-core (about 30 s to install on a fresh machine), and
# pkg/spec's schema tests validate with python-jsonschema, not with our own
# reading of JSON Schema.
set -euo pipefail
need=()
command -v ansible-playbook >/dev/null || need+=(ansible-core)
python3 -c 'import jsonschema' 2>/dev/null || /usr/bin/python3 -c 'import jsonschema' 2>/dev/null || need+=(python3-jsonschema)
if [ ${#need[@]} -gt 0 ]; then
  echo "ci: installing ${need[*]}"
  apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null; }
fi
