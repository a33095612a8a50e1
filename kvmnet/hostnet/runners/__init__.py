"""How kvmnet reaches a machine: the `Runner` protocol and its local, namespace and recording
runners (`runner`), which machine a libvirt URI names (`machine`) and the SSH runner for a
remote one (`sshrunner`).

The only place, with `kvmnet.virt._libvirt`, that talks to the outside world: every command
and every host file read or written goes through a runner.
"""
