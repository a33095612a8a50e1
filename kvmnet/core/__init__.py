"""The pure core: values and rules, no libvirt, no subprocess, no host I/O.

MACs (`macs`), input checks (`validate`) and interface/namespace names (`names`), guest
domain XML edits (`domainxml`, `_xmltext`), libvirt networks as values (`network`), a change
as a before/after pair (`change`), progress callbacks (`progress`) and the notebook HTML
builders (`_html`). Modules here import only kvmnet's leaves (`kvmnet.errors`,
`kvmnet.mode`) and each other; tests/unit/test_layers.py keeps it so.
"""
