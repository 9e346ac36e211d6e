/*
 * A large plain zone's names and records in one arena (gslb/zone/_bulk.c builds it from the
 * zone file), and the answer for a name below its apex assembled from it with dnspython's
 * compression: the same bytes `resolve.Zones.resolve` + `table.compile_answer` produce (proven
 * by tests/test_bulk_zone.py). Compiled into both extensions that read it: _bulk (the Python
 * type, Python's own answers) and the answer engine (_engine.c, answers without the GIL).
 *
 * Why: a compiled Python entry costs about 1.5 KB and the dnspython model 2.3 KB per name; a
 * million-name zone cannot be served that way. Here a name costs its wire name, its records'
 * rdata and a slot in the index, and nothing is made per name until it is asked.
 *
 * The arena and index are written only while the zone is built, in the supervisor, before any
 * worker forks; afterwards they are read-only, so every worker shares their pages and the
 * engine reads them without taking a lock.
 *
 * Node layout (4-aligned offsets into the arena):
 *   u8 rlen, u8 flags, u8 nsets, u8 0, rlen octets of the owner's lower-cased wire labels
 *   above the origin (no root), then nsets RRsets: u16 type, u32 ttl, u16 count, u32 octets,
 *   and `count` rdata of u16 length + wire rdata (names uncompressed, case as written).
 */
#ifndef GSLB_BULK_STORE_H
#define GSLB_BULK_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define BULK_ENT 1      /* an empty non-terminal: a name with names below it and no data */
#define BULK_APEX 2     /* the origin's node (answered from the Python table, never here) */
#define BULK_MAX_CHAIN 8 /* resolve.MAX_CHAIN */
#define BULK_SET_HEAD 12 /* u16 type, u32 ttl, u16 count, u32 octets */

typedef struct {
    unsigned char *arena;
    size_t used, cap;
    uint32_t *slots;      /* arena offset + 1 of each node, 0 for an empty slot */
    uint32_t *tags;       /* the high half of each slot's node hash: most misses end there */
    size_t mask, count;
    size_t names, rrsets, records;
    unsigned char origin[256]; /* lower-cased wire, root included */
    size_t olen;
    /* the negative answers' SOA (resolve.negative_soa): set by Python from the zone's SOA */
    int has_soa;
    uint32_t soa_ttl;
    unsigned char soa_mname[256], soa_rname[256], soa_fixed[20];
    size_t soa_mlen, soa_rlen;
    /* the other zones we serve (lower-cased wires, each prefixed by its length): a CNAME that
     * leads into one is answered by Python, which knows how that zone answers */
    const unsigned char *others; /* u16 total octets, then the names; replaced, never freed, while
                                  * the store lives (an engine may be reading the old one) */
    /* answers sent from the store by this process, by rcode (0 NOERROR, 1 NXDOMAIN) and type */
    unsigned long long counts[2][256];
    unsigned long long counts_other[2];
} bulk_store;

static inline uint16_t
bulk_u16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t
bulk_u32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t
bulk_hash(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ n;
    while (n >= 8) {
        uint64_t k;
        memcpy(&k, p, 8);
        h = (h ^ k) * 0x100000001b3ULL;
        h ^= h >> 29;
        p += 8;
        n -= 8;
    }
    uint64_t k = 0;
    for (size_t i = 0; i < n; i++)
        k |= (uint64_t)p[i] << (8 * i);
    h = (h ^ k) * 0x9E3779B97F4A7C15ULL;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ULL;
    h ^= h >> 32;
    return h;
}

/* The node of a relative lower-cased wire name (rlen octets, no root), or NULL. */
static inline const unsigned char *
bulk_find(const bulk_store *st, const unsigned char *rel, size_t rlen)
{
    if (!st->slots)
        return NULL;
    uint64_t h = bulk_hash(rel, rlen);
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = (size_t)h & st->mask;; i = (i + 1) & st->mask) {
        uint32_t off = st->slots[i];
        if (!off)
            return NULL;
        if (st->tags[i] == tag) {
            const unsigned char *node = st->arena + off - 1;
            if (node[0] == rlen && memcmp(node + 4, rel, rlen) == 0)
                return node;
        }
    }
}

/* The RRset of `type` in a node (its head), or NULL. */
static inline const unsigned char *
bulk_rrset(const unsigned char *node, unsigned type)
{
    const unsigned char *p = node + 4 + node[0];
    for (unsigned i = 0; i < node[2]; i++) {
        if (bulk_u16(p) == type)
            return p;
        p += BULK_SET_HEAD + bulk_u32(p + 8);
    }
    return NULL;
}

/* ---- a response being written, with dnspython's name compression (encode.Writer) ---------- */

#define BULK_MAX_COMP 128

typedef struct {
    unsigned char *buf;
    size_t len, cap;
    uint16_t comp[BULK_MAX_COMP]; /* offsets of the suffixes recorded, each a distinct name */
    int ncomp;
    int overflow;
} bulk_writer;

static inline unsigned char
bulk_lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

/* A wire name of `len` octets lower-cased into `out` (labels' octets only, not their lengths). */
static inline void
bulk_lower_name(unsigned char *out, const unsigned char *name, size_t len)
{
    for (size_t i = 0; i < len; i += (size_t)name[i] + 1) {
        out[i] = name[i];
        for (size_t j = 1; j <= name[i] && i + j < len; j++)
            out[i + j] = bulk_lower(name[i + j]);
    }
}

/* Whether the name at buf[off] (pointers followed) equals the wire name `s`, ignoring case. */
static int
bulk_name_at(const bulk_writer *w, size_t off, const unsigned char *s)
{
    int hops = 0;
    for (;;) {
        if (off >= w->len)
            return 0;
        unsigned c = w->buf[off];
        if (c >= 0xC0) {
            if (off + 1 >= w->len || ++hops > 64)
                return 0;
            off = ((size_t)(c & 0x3F) << 8) | w->buf[off + 1];
            continue;
        }
        if (c != *s)
            return 0;
        if (c == 0)
            return 1;
        for (unsigned i = 1; i <= c; i++)
            if (bulk_lower(w->buf[off + i]) != bulk_lower(s[i]))
                return 0;
        off += c + 1;
        s += c + 1;
    }
}

static inline int
bulk_put(bulk_writer *w, const void *p, size_t n)
{
    if (w->len + n > w->cap) {
        w->overflow = 1;
        return 0;
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
    return 1;
}

/* `encode.Writer.name`: each suffix, longest first, found (a pointer ends the name) or
 * recorded (when its offset fits 14 bits) and its label written. */
static void
bulk_name(bulk_writer *w, const unsigned char *name)
{
    const unsigned char *s = name;
    while (*s) {
        for (int i = 0; i < w->ncomp; i++)
            if (bulk_name_at(w, w->comp[i], s)) {
                unsigned char ptr[2] = {(unsigned char)(0xC0 | w->comp[i] >> 8), (unsigned char)w->comp[i]};
                bulk_put(w, ptr, 2);
                return;
            }
        if (w->len <= 0x3FFF && w->ncomp < BULK_MAX_COMP)
            w->comp[w->ncomp++] = (uint16_t)w->len;
        else if (w->len <= 0x3FFF)
            w->overflow = 1; /* not expected for one answer: let Python write it */
        bulk_put(w, s, (size_t)*s + 1);
        s += *s + 1;
    }
    bulk_put(w, "", 1);
}

/* One RRset (its head in the node) owned by `owner`: `encode.Writer.rrset`. */
static unsigned
bulk_write_rrset(bulk_writer *w, const unsigned char *set, const unsigned char *owner)
{
    unsigned type = bulk_u16(set), count = bulk_u16(set + 6);
    const unsigned char *rd = set + BULK_SET_HEAD;
    for (unsigned i = 0; i < count; i++) {
        size_t rdlen = bulk_u16(rd);
        const unsigned char *data = rd + 2;
        bulk_name(w, owner);
        unsigned char fixed[10] = {(unsigned char)(type >> 8), (unsigned char)type, 0, 1,
                                   set[2], set[3], set[4], set[5], 0, 0};
        bulk_put(w, fixed, 10);
        size_t start = w->len;
        switch (type) {
        case 2: case 5: case 12: /* NS, CNAME, PTR: a name, compressed */
            bulk_name(w, data);
            break;
        case 15: /* MX */
            bulk_put(w, data, 2);
            bulk_name(w, data + 2);
            break;
        default:
            bulk_put(w, data, rdlen);
        }
        if (w->overflow)
            return 0;
        size_t n = w->len - start;
        w->buf[start - 2] = (unsigned char)(n >> 8);
        w->buf[start - 1] = (unsigned char)n;
        rd += 2 + rdlen;
    }
    return count;
}

static void
bulk_write_soa(bulk_writer *w, const bulk_store *st)
{
    bulk_name(w, st->origin);
    unsigned char fixed[10] = {0, 6, 0, 1, (unsigned char)(st->soa_ttl >> 24), (unsigned char)(st->soa_ttl >> 16),
                               (unsigned char)(st->soa_ttl >> 8), (unsigned char)st->soa_ttl, 0, 0};
    bulk_put(w, fixed, 10);
    size_t start = w->len;
    bulk_name(w, st->soa_mname);
    bulk_name(w, st->soa_rname);
    bulk_put(w, st->soa_fixed, 20);
    if (w->overflow)
        return;
    size_t n = w->len - start;
    w->buf[start - 2] = (unsigned char)(n >> 8);
    w->buf[start - 1] = (unsigned char)n;
}

/* Whether the lower-cased wire name `name` (nlen octets with the root) is at or below `zone`. */
static int
bulk_below(const unsigned char *name, size_t nlen, const unsigned char *zone, size_t zlen)
{
    if (zlen > nlen)
        return 0;
    size_t pos = 0;
    while (nlen - pos > zlen)
        pos += (size_t)name[pos] + 1;
    return nlen - pos == zlen && memcmp(name + pos, zone, zlen) == 0;
}

static size_t
bulk_wire_len(const unsigned char *name)
{
    size_t n = 0;
    while (name[n])
        n += (size_t)name[n] + 1;
    return n + 1;
}

/* Whether `name` is in another zone we serve (with `inner`: only zones below this one, the
 * ones that take names away from it). */
static int
bulk_in_others(const bulk_store *st, const unsigned char *name, size_t nlen, int inner)
{
    const unsigned char *o = st->others;
    if (!o)
        return 0;
    size_t total = bulk_u16(o);
    for (size_t pos = 2; pos < total + 2; pos += (size_t)o[pos] + 1)
        if (bulk_below(name, nlen, o + pos + 1, o[pos])
            && (!inner || bulk_below(o + pos + 1, o[pos], st->origin, st->olen)))
            return 1;
    return 0;
}

/* The node answering `cur` (a lower-cased wire name at or below the origin): its own, or the
 * wildcard of its closest encloser (RFC 4592); NULL: NXDOMAIN. *apex: the name is the origin. */
static const unsigned char *
bulk_node_for(const bulk_store *st, const unsigned char *cur, size_t clen, int *apex)
{
    size_t rlen = clen - st->olen;
    *apex = rlen == 0;
    if (rlen == 0)
        return NULL;
    const unsigned char *node = bulk_find(st, cur, rlen);
    if (node)
        return node;
    size_t pos = (size_t)cur[0] + 1; /* the closest encloser: the first ancestor that exists */
    while (pos < rlen && !bulk_find(st, cur + pos, rlen - pos))
        pos += (size_t)cur[pos] + 1;
    unsigned char wild[256];
    wild[0] = 1;
    wild[1] = '*';
    memcpy(wild + 2, cur + pos, rlen - pos);
    node = bulk_find(st, wild, 2 + rlen - pos);
    return node && !(node[1] & BULK_ENT) ? node : NULL; /* `*` with names below it only: NXDOMAIN */
}

/*
 * The answer to (key: lower-cased qname wire of nlen octets, qtype, IN) for a name strictly
 * below the origin, written after the question into w (which holds the header's 12 octets and
 * the question as dnspython registered it). Returns 1 and sets *rcode, *an, *ns; 0 when Python
 * must answer (the apex, ANY and meta types, a chain into another zone of ours or back to the
 * apex, anything that does not fit).
 */
static int
bulk_answer(const bulk_store *st, const unsigned char *key, size_t nlen, unsigned qtype, bulk_writer *w,
            int *rcode, unsigned *an, unsigned *ns)
{
    if (qtype == 41 || (qtype >= 128 && qtype <= 255) || !st->has_soa /* meta types: dnspython.is_metatype */
        || bulk_in_others(st, key, nlen, 1))
        return 0;
    const unsigned char *seen[BULK_MAX_CHAIN];
    int nseen = 0;
    const unsigned char *cur = key; /* the name being looked up: the question, then targets */
    size_t clen = nlen;
    unsigned char target[BULK_MAX_CHAIN][256];
    *rcode = 0;
    *an = *ns = 0;
    for (;;) {
        seen[nseen++] = cur;
        int apex;
        const unsigned char *node = bulk_node_for(st, cur, clen, &apex);
        if (apex)
            return 0;
        if (!node) {
            *rcode = 3;
            bulk_write_soa(w, st);
            *ns = 1;
            break;
        }
        const unsigned char *owner = cur;
        const unsigned char *cname = (node[1] & BULK_ENT) ? NULL : bulk_rrset(node, 5);
        if (cname && qtype != 5) {
            *an += bulk_write_rrset(w, cname, owner);
            const unsigned char *t = cname + BULK_SET_HEAD + 2;
            size_t tlen = bulk_wire_len(t);
            if (tlen > 255)
                return 0;
            if (nseen >= BULK_MAX_CHAIN)
                break;
            unsigned char *low = target[nseen];
            bulk_lower_name(low, t, tlen);
            int again = 0;
            for (int i = 0; i < nseen; i++)
                if (bulk_wire_len(seen[i]) == tlen && memcmp(seen[i], low, tlen) == 0)
                    again = 1;
            if (again)
                break;
            int here = bulk_below(low, tlen, st->origin, st->olen);
            if (bulk_in_others(st, low, tlen, here))
                return 0; /* another zone of ours: Python knows how it answers */
            if (!here)
                break; /* a name no zone of ours holds: the CNAME is the answer */
            cur = low;
            clen = tlen;
            continue;
        }
        const unsigned char *set = (node[1] & BULK_ENT) ? NULL : bulk_rrset(node, qtype);
        if (set) {
            *an += bulk_write_rrset(w, set, owner);
        } else {
            bulk_write_soa(w, st); /* NODATA */
            *ns = 1;
        }
        break;
    }
    return !w->overflow;
}

/* The writer's start for a question: header room and the lower-cased question, every suffix
 * of its name recorded (`encode.Writer.question`). */
static void
bulk_question(bulk_writer *w, const unsigned char *key, size_t klen)
{
    memset(w->buf, 0, 12);
    w->len = 12;
    w->ncomp = 0;
    w->overflow = 0;
    for (size_t p = 0; key[p] && w->ncomp < BULK_MAX_COMP; p += (size_t)key[p] + 1)
        w->comp[w->ncomp++] = (uint16_t)(12 + p);
    bulk_put(w, key, klen);
}

static inline void
bulk_count(bulk_store *st, int rcode, unsigned qtype)
{
    int r = rcode == 3;
    if (qtype < 256)
        st->counts[r][qtype]++;
    else
        st->counts_other[r]++;
}

#endif
