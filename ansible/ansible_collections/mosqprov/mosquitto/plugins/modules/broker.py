#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: mosqprov maintainers
# MIT License (see LICENSE in the mosqprov repository)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: broker
short_description: Converge a Mosquitto broker to broker.yaml with mosqprov
description:
  - Runs C(mosqprov apply -f SPEC --yes -o json) on the host and reports
    C(changed) from mosqprov's own answer, so a converged broker reports
    C(ok) and nothing on it is written, reloaded or restarted.
  - In check mode it runs C(mosqprov plan -o json) instead, which reads
    everything and writes nothing, and reports what apply would change.
  - In diff mode it returns mosqprov's per-file diffs (password hashes
    masked, private keys never shown, exactly as C(mosqprov plan) prints them).
  - Secrets (the passwords the spec's C(password_env) names) reach mosqprov
    through its environment, never its command line.
version_added: "1.0.0"
options:
  spec:
    description:
      - Path of broker.yaml on the managed host, as mosqprov's C(-f) (a path
        on the host, not under I(root)).
    type: path
    required: true
  content:
    description:
      - broker.yaml's text (for example from a template lookup). When set,
        the module keeps I(spec) holding exactly this text (mode 0644, written
        only when it differs, shown in diff mode), and check mode plans from
        the text even when I(spec) does not exist yet.
    type: str
  root:
    description:
      - mosqprov's C(--root) - C(/) on a real broker; a folder to prepare an
        image's files (no service is touched there).
    type: path
    default: /
  executable:
    description:
      - The mosqprov binary. Default - C(mosqprov) on the PATH, then
        C(/usr/local/bin) and C(/usr/bin).
    type: path
  environment:
    description:
      - Variables set for mosqprov, typically the passwords the spec names
        with C(password_env). Their values are never logged (C(no_log)).
    type: dict
    default: {}
notes:
  - Needs root on the host (C(become=true)) for the broker's private files.
  - Supports check mode and diff mode.
author:
  - mosqprov maintainers
"""

EXAMPLES = r"""
- name: broker.yaml from this host's variables
  ansible.builtin.template:
    src: broker.yaml.j2
    dest: /etc/mosqprov/broker.yaml
    mode: "0644"

- name: The broker matches broker.yaml
  mosqprov.mosquitto.broker:
    spec: /etc/mosqprov/broker.yaml
    environment:
      MQTT_BLINDS_PASSWORD: "{{ vault_mqtt_blinds_password }}"
  become: true
"""

RETURN = r"""
changes:
  description: Each change made (or, in check mode, to make), as mosqprov reports it.
  returned: always
  type: list
  elements: dict
  sample: [{"what": "password file", "path": "/etc/mosquitto/passwd", "action": "update", "detail": "1 added"}]
summary:
  description: mosqprov's summary line counts.
  returned: when mosqprov ran
  type: str
warnings_mosqprov:
  description: mosqprov's warnings (also shown as Ansible warnings).
  returned: always
  type: list
  elements: str
rc:
  description: mosqprov's exit code.
  returned: always
  type: int
"""

import json
import os
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

# A broker.yaml is a few KiB; a larger content is refused before anything runs.
MAX_SPEC = 1 << 20


def find_mosqprov(module):
    exe = module.params["executable"]
    if exe:
        if not os.access(exe, os.X_OK):
            module.fail_json(msg="executable: %s is not an executable file (install mosqprov first: the mosqprov.mosquitto.install role)" % exe)
        return exe
    exe = module.get_bin_path("mosqprov", opt_dirs=["/usr/local/bin", "/usr/bin"])
    if not exe:
        module.fail_json(msg="mosqprov is not installed on this host (the mosqprov.mosquitto.install role installs it; in check mode it must already be there to plan)")
    return exe


def file_diffs(result):
    """Ansible's diff list from mosqprov's per-file diffs ("prepared" text is
    shown as it is, which keeps mosqprov's masking)."""
    diffs = []
    for f in (result or {}).get("files") or []:
        text = f.get("diff") or ""
        if not text:
            note = f.get("note") or f.get("action", "")
            text = "%s: %s\n" % (f.get("path", ""), note)
        elif not text.endswith("\n"):
            text += "\n"
        diffs.append({"prepared": text})
    return diffs


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read(MAX_SPEC + 1).decode("utf-8", "replace")
    except (IOError, OSError):
        return None


def write_spec(module, path, text):
    """Writes broker.yaml atomically (temp file in the same folder, then
    rename), only when its text differs; returns the text it had."""
    before = read_text(path)
    if before == text:
        return before
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        os.makedirs(folder, 0o755)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".broker.yaml.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        module.atomic_move(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return before


def with_scratch_spec(content, shown_as, run):
    """Runs run(path) on a private copy of content; the copy's path in its
    output reads as shown_as, the file the copy stands for."""
    scratch = tempfile.mkdtemp(prefix="mosqprov-spec.")
    try:
        path = os.path.join(scratch, "broker.yaml")
        with open(path, "w") as f:
            f.write(content)
        rc, out, err = run(path)
        return rc, out.replace(path, shown_as), err.replace(path, shown_as)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            spec=dict(type="path", required=True),
            content=dict(type="str"),
            root=dict(type="path", default="/"),
            executable=dict(type="path"),
            environment=dict(type="dict", default={}, no_log=True),
        ),
        supports_check_mode=True,
    )
    exe = find_mosqprov(module)
    env = {}
    for key, value in module.params["environment"].items():
        env[str(key)] = "" if value is None else str(value)

    spec = module.params["spec"]
    content = module.params["content"]
    spec_diff = None
    if content is not None:
        if len(content.encode("utf-8")) > MAX_SPEC:
            module.fail_json(msg="content: broker.yaml is larger than %d bytes" % MAX_SPEC)
        before = read_text(spec)
        if before != content:
            spec_diff = {
                "before_header": spec,
                "after_header": spec,
                "before": before or "",
                "after": content,
            }

    def run(verb, spec_path):
        argv = [exe] + verb + ["-o", "json", "--root", module.params["root"], "-f", spec_path]
        return module.run_command(argv, environ_update=env, check_rc=False)

    if spec_diff is None:
        rc, out, err = run(["plan"] if module.check_mode else ["apply", "--yes"], spec)
    else:
        # A new broker.yaml is planned from a private copy first: in check
        # mode that is the plan, and otherwise a bad one fails here with
        # nothing on the host changed, broker.yaml included.
        rc, out, err = with_scratch_spec(content, spec, lambda path: run(["plan"], path))
        if rc == 0 and not module.check_mode:
            write_spec(module, spec, content)
            rc, out, err = run(["apply", "--yes"], spec)

    try:
        report = json.loads(out)
    except ValueError:
        report = None
    if not isinstance(report, dict):
        lines = [line for line in (err or out or "").splitlines() if line.strip()]
        module.fail_json(msg=lines[-1] if lines else "mosqprov printed no report", rc=rc, stderr=err)

    warnings = list(report.get("warnings") or [])
    for w in warnings:
        module.warn(w)
    changes = [
        {k: c[k] for k in ("what", "path", "action", "detail") if k in c}
        for c in report.get("changes") or []
        if c.get("changed")
    ]
    result = report.get("result") or {}
    outcome = dict(
        changed=bool(report.get("changed")) or spec_diff is not None,
        changes=changes,
        warnings_mosqprov=warnings,
        rc=rc,
    )
    if result.get("summary"):
        outcome["summary"] = result["summary"]
    if module._diff:
        outcome["diff"] = ([spec_diff] if spec_diff else []) + file_diffs(result)
    if rc != 0:
        msg = report.get("error") or (err.strip().splitlines() or ["mosqprov failed"])[-1]
        if report.get("journal"):
            outcome["journal"] = report["journal"]
        module.fail_json(msg=msg, **outcome)
    module.exit_json(**outcome)


if __name__ == "__main__":
    main()
