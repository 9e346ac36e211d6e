"""XDP L4 dataplane: Maglev-hashed VIP balancing in eBPF, and its Python control plane."""

import os

BPF_OBJECT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bpf", "balancer.o")
