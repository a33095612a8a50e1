"""Host networking as values: what a host's links and routes are (`state`), what a bridge
request asks for (`request`), the plan that does it (`plan`) and the ``ip`` commands that
rebuild a state (`ipcmd`).

Pure: nothing here reads the host or runs a command; `kvmnet.hostnet.apply` executes a plan.
"""
