/* Packet parsing: Ethernet → IPv4/IPv6 → TCP/UDP into a flow key. Anything else (ARP, ICMP,
 * fragments, IPv6 extension headers) is left to the kernel: returns -1 and the caller passes. */
#ifndef PARSE_H
#define PARSE_H

#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include "balancer_structs.h"

struct packet {
    struct ethhdr *eth;
    struct flow_key flow;
    __u32 len;
};

static __always_inline int parse_ports(void *l4, void *end, __u8 proto, struct flow_key *flow)
{
    if (proto == IPPROTO_TCP) {
        struct tcphdr *tcp = l4;
        if ((void *)(tcp + 1) > end)
            return -1;
        flow->sport = tcp->source;
        flow->dport = tcp->dest;
        return 0;
    }
    if (proto == IPPROTO_UDP) {
        struct udphdr *udp = l4;
        if ((void *)(udp + 1) > end)
            return -1;
        flow->sport = udp->source;
        flow->dport = udp->dest;
        return 0;
    }
    return -1;
}

static __always_inline int parse_packet(struct xdp_md *ctx, struct packet *pkt)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;

    if ((void *)(eth + 1) > end)
        return -1;
    pkt->eth = eth;
    pkt->len = end - data;
    if (eth->h_proto == bpf_htons(ETH_P_IP)) {
        struct iphdr *ip = (void *)(eth + 1);
        if ((void *)(ip + 1) > end || ip->ihl < 5)
            return -1;
        /* Fragments go to the kernel: only the first carries ports, so no fragment can be
         * balanced consistently (documented in docs: pass, do not guess). */
        if (ip->frag_off & bpf_htons(0x3fff))
            return -1;
        pkt->flow.family = FAMILY_V4;
        pkt->flow.proto = ip->protocol;
        pkt->flow.src[0] = ip->saddr;
        pkt->flow.dst[0] = ip->daddr;
        return parse_ports((void *)ip + ip->ihl * 4, end, ip->protocol, &pkt->flow);
    }
    if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
        struct ipv6hdr *ip6 = (void *)(eth + 1);
        if ((void *)(ip6 + 1) > end)
            return -1;
        pkt->flow.family = FAMILY_V6;
        pkt->flow.proto = ip6->nexthdr; /* extension headers (fragments too) → not TCP/UDP → pass */
        __builtin_memcpy(pkt->flow.src, &ip6->saddr, 16);
        __builtin_memcpy(pkt->flow.dst, &ip6->daddr, 16);
        return parse_ports(ip6 + 1, end, ip6->nexthdr, &pkt->flow);
    }
    return -1;
}

#endif
