/* Map keys and values. Every field is naturally aligned so the Python mirror (ctypes) needs no
 * packing rules; tests check the sizes match. Addresses are kept in network byte order. */
#ifndef BALANCER_STRUCTS_H
#define BALANCER_STRUCTS_H

#include <linux/types.h>

struct vip_key {
    __u32 addr[4];   /* IPv4 in addr[0], the rest zero */
    __u16 port;      /* network byte order */
    __u8 proto;      /* IPPROTO_TCP or IPPROTO_UDP */
    __u8 family;     /* FAMILY_V4 or FAMILY_V6 */
};

struct vip_meta {
    __u32 vip_id;        /* index into the rings and the VIP counters */
    __u32 ring_slot;     /* which half of the double-buffered ring is live */
    __u32 flags;         /* VIP_F_* */
    __u32 backend_count; /* 0: no backend can take traffic: drop */
};

struct backend {
    __u32 addr[4];   /* the backend's own address (IPIP outer destination) */
    __u8 mac[6];     /* next hop MAC on the balancer's segment */
    __u8 family;
    __u8 flags;      /* BACKEND_F_* */
};

struct flow_key {
    __u32 src[4];
    __u32 dst[4];
    __u16 sport;     /* network byte order */
    __u16 dport;
    __u8 proto;
    __u8 family;
    __u16 pad;
};

struct flow_value {
    __u32 backend_id;
    __u32 vip_id;
};

struct counter {
    __u64 packets;
    __u64 bytes;
};

struct lb_config {
    __u32 ipip_src_v4;   /* outer source address for IP-in-IP */
    __u32 pad;
};

#endif
