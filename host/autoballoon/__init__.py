"""autoballoon: the host device model for automatic virtio-balloon ballooning.

Kept apart, after oVirt MOM: collectors (host pressure sources, guest messages through
libvirt), the pure model and its policies (no I/O, injected clock), and controllers (the
libvirt adapter that applies balloon targets).
"""
