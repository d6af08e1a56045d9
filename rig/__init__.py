"""The autoballoon test rig: builds the stack, emulates a memory-limited host, boots VMs."""
