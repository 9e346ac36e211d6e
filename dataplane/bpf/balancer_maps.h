/* Every map the balancer uses, with what it holds and who writes it. */
#ifndef BALANCER_MAPS_H
#define BALANCER_MAPS_H

#include <bpf/bpf_helpers.h>
#include "balancer_consts.h"
#include "balancer_structs.h"

/* VIP (address, port, protocol) → its id, live ring half and flags. Written by the control
 * plane; a VIP's ring half flips with one element update, so readers see the old or the new
 * table, never a mix. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, MAX_VIPS);
    __type(key, struct vip_key);
    __type(value, struct vip_meta);
} vips SEC(".maps");

/* Maglev lookup tables: for VIP v and half s, entries [(v * RING_SLOTS + s) * RING_SIZE, +RING_SIZE)
 * hold backend ids. The control plane fills the idle half, then flips vip_meta.ring_slot. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, MAX_VIPS * RING_SLOTS * RING_SIZE);
    __type(key, __u32);
    __type(value, __u32);
} rings SEC(".maps");

/* Backend id → address, MAC and state. Written by the control plane (health from the store). */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, MAX_BACKENDS);
    __type(key, __u32);
    __type(value, struct backend);
} backends SEC(".maps");

/* 5-tuple → backend: established flows stay put when the backend set changes. Written by the
 * program on a flow's first packet; the least recently used entries make room. Each CPU keeps
 * its own LRU list (no shared lock on the hot path), as Katran does. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(map_flags, BPF_F_NO_COMMON_LRU);
    __uint(max_entries, MAX_CONNS);
    __type(key, struct flow_key);
    __type(value, struct flow_value);
} conns SEC(".maps");

/* Packets and bytes per VIP id and per backend id, per CPU (summed by the control plane). */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, MAX_VIPS);
    __type(key, __u32);
    __type(value, struct counter);
} vip_stats SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, MAX_BACKENDS);
    __type(key, __u32);
    __type(value, struct counter);
} backend_stats SEC(".maps");

/* Balancer-wide settings (one entry), written by the control plane. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct lb_config);
} config SEC(".maps");

#endif
