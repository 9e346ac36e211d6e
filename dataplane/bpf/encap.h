/* Forwarding: L2 direct server return (rewrite the destination MAC and send back out), or
 * IP-in-IP for IPv4 backends behind a router (the backend decapsulates and answers directly). */
#ifndef ENCAP_H
#define ENCAP_H

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "balancer_structs.h"

static __always_inline int forward_dsr(struct ethhdr *eth, const struct backend *be)
{
    __builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN); /* from us: we received it */
    __builtin_memcpy(eth->h_dest, be->mac, ETH_ALEN);
    return XDP_TX;
}

static __always_inline __u16 csum_fold(__u64 sum)
{
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    return ~sum;
}

static __always_inline int forward_ipip(struct xdp_md *ctx, const struct backend *be, __u32 src)
{
    if (be->family != FAMILY_V4)
        return XDP_DROP; /* IPv6 backends use DSR */
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *old = data;
    if ((void *)(old + 1) > end || old->h_proto != bpf_htons(ETH_P_IP))
        return XDP_DROP;
    struct iphdr *inner = (void *)(old + 1);
    if ((void *)(inner + 1) > end)
        return XDP_DROP;
    __u16 inner_len = bpf_ntohs(inner->tot_len);
    __u8 src_mac[ETH_ALEN];
    __builtin_memcpy(src_mac, old->h_dest, ETH_ALEN);

    if (bpf_xdp_adjust_head(ctx, 0 - (int)sizeof(struct iphdr)))
        return XDP_DROP;
    data = (void *)(long)ctx->data;
    end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    struct iphdr *outer = (void *)(eth + 1);
    if ((void *)(outer + 1) > end)
        return XDP_DROP;
    __builtin_memcpy(eth->h_dest, be->mac, ETH_ALEN);
    __builtin_memcpy(eth->h_source, src_mac, ETH_ALEN);
    eth->h_proto = bpf_htons(ETH_P_IP);
    outer->version = 4;
    outer->ihl = 5;
    outer->tos = 0;
    outer->tot_len = bpf_htons(inner_len + sizeof(struct iphdr));
    outer->id = 0;
    outer->frag_off = bpf_htons(0x4000); /* DF */
    outer->ttl = 64;
    outer->protocol = IPPROTO_IPIP;
    outer->check = 0;
    outer->saddr = src;
    outer->daddr = be->addr[0];
    __u64 sum = 0;
    __u16 *words = (__u16 *)outer;
#pragma unroll
    for (int i = 0; i < (int)(sizeof(struct iphdr) / 2); i++)
        sum += words[i];
    outer->check = csum_fold(sum);
    return XDP_TX;
}

#endif
