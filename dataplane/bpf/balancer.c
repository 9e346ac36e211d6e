/* XDP L4 balancer: VIP traffic is spread over backends by Maglev hashing, established flows stay
 * on their backend through the connection table, everything else passes to the kernel.
 *
 *   parse (parse.h) → lookup: VIP, connection table, Maglev ring (here) → forward (encap.h)
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "balancer_consts.h"
#include "balancer_structs.h"
#include "balancer_maps.h"
#include "parse.h"
#include "encap.h"

char LICENSE[] SEC("license") = "GPL";

/* The flow hash; dataplane/maglev.py computes the same to predict every decision. */
static __always_inline __u32 mix32(__u32 h)
{
    h ^= h >> 16;
    h *= 0x85ebca6b;
    h ^= h >> 13;
    h *= 0xc2b2ae35;
    h ^= h >> 16;
    return h;
}

static __always_inline __u32 flow_hash(const struct flow_key *f)
{
    __u32 h = FLOW_HASH_SEED;
#pragma unroll
    for (int i = 0; i < 4; i++)
        h = mix32(h ^ f->src[i]);
#pragma unroll
    for (int i = 0; i < 4; i++)
        h = mix32(h ^ f->dst[i]);
    h = mix32(h ^ (((__u32)f->sport << 16) | f->dport));
    return mix32(h ^ f->proto);
}

static __always_inline void count(void *map, __u32 id, __u32 len)
{
    struct counter *c = bpf_map_lookup_elem(map, &id);
    if (c) {
        c->packets++;
        c->bytes += len;
    }
}

static __always_inline struct backend *pick_backend(struct flow_key *flow, struct vip_meta *meta, __u32 *id)
{
    int track = !(meta->flags & VIP_F_NO_CONNTRACK);
    if (track) {
        struct flow_value *known = bpf_map_lookup_elem(&conns, flow);
        if (known && known->vip_id == meta->vip_id) {
            struct backend *be = bpf_map_lookup_elem(&backends, &known->backend_id);
            if (be && (be->flags & BACKEND_F_UP)) {
                *id = known->backend_id;
                return be;
            }
        }
    }
    if (meta->backend_count == 0 || meta->vip_id >= MAX_VIPS || meta->ring_slot >= RING_SLOTS)
        return 0;
    __u32 slot = (meta->vip_id * RING_SLOTS + meta->ring_slot) * RING_SIZE + flow_hash(flow) % RING_SIZE;
    __u32 *ring_id = bpf_map_lookup_elem(&rings, &slot);
    if (!ring_id)
        return 0;
    struct backend *be = bpf_map_lookup_elem(&backends, ring_id);
    if (!be)
        return 0;
    if (track) {
        struct flow_value value = {.backend_id = *ring_id, .vip_id = meta->vip_id};
        bpf_map_update_elem(&conns, flow, &value, BPF_ANY);
    }
    *id = *ring_id;
    return be;
}

SEC("xdp")
int balancer(struct xdp_md *ctx)
{
    struct packet pkt = {};
    if (parse_packet(ctx, &pkt) < 0)
        return XDP_PASS;

    struct vip_key key = {.port = pkt.flow.dport, .proto = pkt.flow.proto, .family = pkt.flow.family};
    __builtin_memcpy(key.addr, pkt.flow.dst, sizeof(key.addr));
    struct vip_meta *meta = bpf_map_lookup_elem(&vips, &key);
    if (!meta)
        return XDP_PASS; /* not ours: the kernel handles it */
    count(&vip_stats, meta->vip_id, pkt.len);

    __u32 id = 0;
    struct backend *be = pick_backend(&pkt.flow, meta, &id);
    if (!be)
        return XDP_DROP; /* a VIP with no backend able to take it */
    count(&backend_stats, id, pkt.len);

    if (meta->flags & VIP_F_IPIP) {
        __u32 zero = 0;
        struct lb_config *cfg = bpf_map_lookup_elem(&config, &zero);
        if (!cfg)
            return XDP_DROP;
        return forward_ipip(ctx, be, cfg->ipip_src_v4);
    }
    return forward_dsr(pkt.eth, be);
}

/* A do-nothing program for the far end of a veth, so XDP_TX frames are accepted there. */
SEC("xdp")
int pass(struct xdp_md *ctx)
{
    return XDP_PASS;
}
