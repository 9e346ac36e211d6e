/* Constants shared by the XDP balancer and its Python control plane (dataplane/structs.py). */
#ifndef BALANCER_CONSTS_H
#define BALANCER_CONSTS_H

#define MAX_VIPS 32            /* VIPs per balancer */
#define MAX_BACKENDS 4096      /* backend ids 0..MAX_BACKENDS-1 across all VIPs */
#define RING_SIZE 65537        /* Maglev lookup table size per VIP: a prime */
#define RING_SLOTS 2           /* double buffer: the control plane fills one, then flips */
#define MAX_CONNS 262144       /* LRU connection table entries */

#define VIP_F_IPIP 1           /* encapsulate in IP-in-IP instead of L2 direct server return */
#define VIP_F_NO_CONNTRACK 2   /* stateless: every packet by Maglev alone (UDP services like DNS) */
#define BACKEND_F_UP 1         /* the backend may receive new flows */

#define FAMILY_V4 4
#define FAMILY_V6 6

#define FLOW_HASH_SEED 0x9747b28c

#endif
