#!/usr/bin/env python3
"""Sums the instructions GPGPU-Sim simulated per kernel in a simulator log
(build/sim/logs/*.gpgpusim.log): where the simulator's time goes.

    python3 tests/gpusim/kernels.py build/sim/logs/sam_nn_gpu.gpgpusim.log
"""
import collections
import re
import sys

insts, launches = collections.Counter(), collections.Counter()
kernel = None
for path in sys.argv[1:]:
    done = 0  # the simulator reports a running total per process
    for line in open(path, errors="replace"):
        m = re.search(r"executing kernel (\S+?)\.\.\.", line)
        if m:
            kernel = re.sub(r"_ZN\d+_GLOBAL__N__\w+?_cu_[0-9a-f]+", "", m.group(1))
            continue
        m = re.search(r"Done functional simulation \((\d+) instructions", line)
        if m and kernel:
            n = int(m.group(1))
            if n < done:  # a new process appended to the same log
                done = 0
            insts[kernel] += n - done
            done = n
            launches[kernel] += 1
total = sum(insts.values()) or 1
print(f"{'instructions':>14} {'share':>6} {'launches':>8}  kernel")
for k, v in insts.most_common(20):
    print(f"{v:14d} {100 * v / total:5.1f}% {launches[k]:8d}  {k[:100]}")
print(f"{total:14d} in all")
