"""hwzswap serving the kernel's real swap: FUSE file -> loop device -> swapon (issue 14).

:mod:`.fuse` speaks the FUSE protocol over ``/dev/fuse``; :mod:`.server` maps the file's reads,
writes and punch-holes onto the swap system; :mod:`.chain` sets the chain up and tears it down
(``hwzswap swap on|off|status``); :mod:`.run` runs a program in a fresh memory cgroup against it
(``hwzswap run``); :mod:`.cgroup` creates and checks memory cgroups; :mod:`.kernelzswap`
reads, saves and restores the kernel's own zswap parameters (``run --compare kernel-<comp>``).
"""
