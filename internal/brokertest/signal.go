package brokertest

import "syscall"

var hangup = syscall.SIGHUP
