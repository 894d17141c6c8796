# -*- coding: utf-8 -*-
# Copyright: mosqprov maintainers
# MIT License (see LICENSE in the mosqprov repository)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: release_arch
short_description: Which mosqprov release build runs on a host
description:
  - Maps a host's C(dpkg --print-architecture), C(uname -m) and
    C(/proc/cpuinfo) to the name in mosqprov's release files - C(amd64),
    C(arm64), C(armv7) or C(armv6) - by the table in mosqprov's README.
  - Goes by dpkg, not the kernel - 32-bit Raspberry Pi OS boots a 64-bit
    kernel on a Pi 4 or 5 (C(uname -m) says C(aarch64)) but apt takes only
    C(armhf) packages there. Among C(armhf) hosts, an ARMv6 CPU (Pi Zero,
    Pi Zero W, Pi 1) needs the armv6 build; the armv7 one dies there with
    C(Illegal instruction).
options:
  _input:
    description: The output of C(dpkg --print-architecture).
    type: str
    required: true
  machine:
    description: The output of C(uname -m).
    type: str
    default: ""
  cpuinfo:
    description: The content of C(/proc/cpuinfo).
    type: str
    default: ""
"""

EXAMPLES = r"""
release: "{{ dpkg_arch.stdout | mosqprov.mosquitto.release_arch(uname.stdout, cpuinfo.stdout) }}"
"""

RETURN = r"""
_value:
  description: C(amd64), C(arm64), C(armv7) or C(armv6).
  type: str
"""

import re

from ansible.errors import AnsibleFilterError


def release_arch(dpkg_arch, machine="", cpuinfo=""):
    arch = (dpkg_arch or "").strip()
    if arch in ("amd64", "arm64"):
        return arch
    if arch == "armhf":
        # The ARM1176 of the Pi Zero and Pi 1 reports "CPU architecture: 7"
        # in /proc/cpuinfo (its CPUID scheme), so that line can't tell it from
        # an ARMv7; its model name and uname -m can.
        if (machine or "").strip().startswith("armv6"):
            return "armv6"
        if re.search(r"(?mi)^model name\s*:.*\bARMv6\b", cpuinfo or "") or re.search(r"(?mi)^Processor\s*:.*\bARMv6\b", cpuinfo or ""):
            return "armv6"
        return "armv7"
    raise AnsibleFilterError(
        "release_arch: mosqprov is released for amd64, arm64 and armhf (armv6, armv7); this host's dpkg says %r" % arch
    )


class FilterModule(object):
    def filters(self):
        return {"release_arch": release_arch}
