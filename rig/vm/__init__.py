"""One VM under libvirt: its domain XML (``domain_xml``, pure), starting, stopping and
reaching it over SSH and the serial console (``domains``), its QMP events through libvirt
(``qmp_events``) and guest-message measurements (``msgvq``). May import the foundation and
``rig.build`` (the guest image it boots); where it runs (partition, domain type) is passed
in, so it never imports ``rig.host``.
"""
