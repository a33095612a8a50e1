"""The libvirt shell: connections and translated errors (`_libvirt`), a guest and its
interface edits (`domain`), guests' addresses (`addresses`, `neighbours`), and LAN-unique MACs
(`macalloc`, `macledger`).

`_libvirt` is the only module that imports libvirt. `kvmnet.host.Host` ties this layer to the
host side for users.
"""
