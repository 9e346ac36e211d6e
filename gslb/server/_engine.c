/*
 * The native answer engine: receive a batch (recvmmsg), answer what is known ahead from C hash
 * tables, hand everything else to the Python responder, send the batch (sendmmsg).
 *
 * What is native (the same bytes `Responder.answer` in fastpath.py produces, proven by the
 * differential tests): one question, no OPT or a version-0 OPT with no options or exactly one
 * valid Client Subnet option; the (lower-cased qname wire, qtype, qclass) key found in the
 * static table (loaded from the Python table on every swap) or the miss table (entries Python
 * compiled on first use: odd types at existing names, DNAME, signed zones' DO answers); for
 * names in neither, the template of the first stop name above (a name of a zone, or one an
 * answer writes), keyed by that name, qtype and qclass: wildcard synthesis, NXDOMAIN, referrals,
 * REFUSED, with the compression pointers past the question moved (table.Template), or for a GSLB
 * wildcard the picker Python compiled for the query name's prefix length; for GSLB
 * names, the decision cache (question entry x client address, or x raw ECS option when its
 * source prefix is not 0) filled by Python on a miss. DO queries get the signed twin
 * (Entry.signed, mirrored beside the entry at load/insert time; a GSLB entry's DO answer is its
 * decision target's twin), truncated exactly like the unsigned answers. A signature refresh is
 * a reload: the new table's entries (and twins) come in through `load`.
 *
 * Everything else, and every first query of a key, is answered by `responder.answer(data,
 * client)` unchanged: Python stays the complete reference.
 *
 * Concurrency: the serve loop runs without the GIL. The tables are guarded by one mutex: the
 * loop holds it (and only it) while it answers a batch natively; Python-side mutations (load,
 * insert, flush, harvest) take it while holding the GIL. The order is always GIL, then mutex, and
 * nothing waits for the GIL while holding the mutex (the GSLB picker is called with the mutex
 * released), so there is no deadlock. Packets the native pass cannot answer take a second pass
 * with the GIL: the picker (a decision-cache miss), else `responder.answer`. An entry used across
 * the picker call is pinned by a reference count; a decision made while the decision generation
 * moved (health changed meanwhile) is not cached. Entries are freed (Python objects released)
 * only with the GIL held.
 *
 * What the native pass reads (statics, misses, stops, templates, decisions, and the entries in
 * them) changes only under the mutex; what it never reads (the ids and outcomes tables,
 * reference counts) is the GIL's. So a table being replaced or emptied is swapped out under the mutex in O(1)
 * (ht_take) and freed after it is released: a reload, a full miss cache or a health change never
 * holds the native pass up for the time it takes to free (or, for `load`, build) a table.
 */
#define _GNU_SOURCE
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../zone/bulk_store.h" /* large plain zones' names, answered from their store */
#include "rrl.h" /* RRL and query limits: rrl.py in C, hooked in serve() */
#include "udp_common.h"

#define BATCH 64
#define BUFSIZE 4096
#define MAXKEY (255 + 4)
#define HARVEST_CHUNK 4096 /* slots walked per hold of the mutex */

/* ---------------------------------------------------------------------------------------- */
/* An open-addressing hash table with byte keys (linear probing, at most half full).           */
/* A slot (two to a cache line) holds the hash, the key's length, the value and a short key    */
/* itself (a decision key for an IPv4 client or a /24 Client Subnet; longer keys live in their */
/* own allocation): a hit on a short key reads one line, where the chained table it replaced   */
/* read the bucket, every node of the chain, then the key.                                     */

#define INLINE_KEY 16

typedef struct {
    uint64_t tag;  /* hash << 16 | key length; 0: an empty slot (no key is empty) */
    void *val;
    unsigned char key[INLINE_KEY]; /* the key, or when longer a pointer to a copy */
} slot;

_Static_assert(sizeof(slot) == 32, "two slots to a cache line");

#define SLOT_TAG(h, klen) ((uint64_t)(h) << 16 | (uint64_t)(klen))
#define SLOT_KLEN(s) ((size_t)((s)->tag & 0xFFFF))
#define SLOT_HOME(s, mask) (((s)->tag >> 16) & (mask)) /* = hash & mask: masks stay below 2^48 */

typedef struct {
    slot *s;
    size_t mask; /* slots - 1 */
    size_t count;
} htab;

static uint64_t seed = 0x9E3779B97F4A7C15ULL;

/* The last 1-7 octets of a key as one word: from the word that ends the key when the key has 8
 * or more (the octets mixed in already shifted out), else in pieces of 4, 2 and 1; no loop over
 * octets (it was a visible part of the engine's user time per query). */
static inline uint64_t
hash_tail(const unsigned char *p, size_t rest, size_t n)
{
    uint64_t k = 0;
    if (n >= 8) {
        memcpy(&k, p + rest - 8, 8);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        return k >> (8 * (8 - rest));
#else
        return k & ((1ULL << (8 * rest)) - 1);
#endif
    }
    size_t i = 0;
    if (rest & 4) {
        uint32_t w;
        memcpy(&w, p, 4);
        k = w;
        i = 4;
    }
    if (rest & 2) {
        uint16_t w;
        memcpy(&w, p + i, 2);
        k |= (uint64_t)w << (8 * i);
        i += 2;
    }
    if (rest & 1)
        k |= (uint64_t)p[i] << (8 * i);
    return k;
}

static uint64_t
hash_bytes(const unsigned char *p, size_t n)
{
    size_t len = n;
    uint64_t h = seed ^ (n * 0xff51afd7ed558ccdULL);
    while (n >= 8) {
        uint64_t k;
        memcpy(&k, p, 8);
        h ^= k * 0x87c37b91114253d5ULL;
        h = (h << 31 | h >> 33) * 0x4cf5ad432745937fULL;
        p += 8;
        n -= 8;
    }
    uint64_t k = n ? hash_tail(p, n, len) : 0;
    h ^= k * 0x87c37b91114253d5ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static slot *
slots_alloc(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n * sizeof(slot)) != 0)
        return NULL;
    memset(p, 0, n * sizeof(slot));
    return p;
}

static int
ht_init(htab *t, size_t slots)
{
    t->s = slots_alloc(slots);
    if (!t->s)
        return -1;
    t->mask = slots - 1;
    t->count = 0;
    return 0;
}

static const unsigned char *
slot_key(const slot *s)
{
    if (SLOT_KLEN(s) <= INLINE_KEY)
        return s->key;
    const unsigned char *p;
    memcpy(&p, s->key, sizeof(p));
    return p;
}

/* Free what a slot owns besides its value (a long key's copy) and mark it empty. */
static void
slot_clear(slot *s)
{
    if (SLOT_KLEN(s) > INLINE_KEY)
        free((void *)slot_key(s));
    s->tag = 0;
}

/* Equal keys of n <= INLINE_KEY octets: two overlapping word compares instead of a memcmp call
 * (the compare of a decision key was a tenth of the engine's user time). */
static inline int
short_key_eq(const unsigned char *a, const unsigned char *b, size_t n)
{
    if (n >= 8) {
        uint64_t x0, y0, x1, y1;
        memcpy(&x0, a, 8);
        memcpy(&y0, b, 8);
        memcpy(&x1, a + n - 8, 8);
        memcpy(&y1, b + n - 8, 8);
        return x0 == y0 && x1 == y1;
    }
    if (n >= 4) {
        uint32_t x0, y0, x1, y1;
        memcpy(&x0, a, 4);
        memcpy(&y0, b, 4);
        memcpy(&x1, a + n - 4, 4);
        memcpy(&y1, b + n - 4, 4);
        return x0 == y0 && x1 == y1;
    }
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static slot *
ht_find(const htab *t, const unsigned char *key, size_t klen, uint64_t h)
{
    uint64_t tag = SLOT_TAG(h, klen);
    for (size_t i = h & t->mask;; i = (i + 1) & t->mask) {
        slot *s = &t->s[i];
        if (!s->tag)
            return NULL;
        if (s->tag == tag
            && (klen <= INLINE_KEY ? short_key_eq(s->key, key, klen) : memcmp(slot_key(s), key, klen) == 0))
            return s;
    }
}

static void *
ht_get(htab *t, const unsigned char *key, size_t klen, uint64_t h)
{
    slot *s = ht_find(t, key, klen, h);
    return s ? s->val : NULL;
}

/* The empty slot a key whose home is `i` goes to. */
static slot *
ht_free_slot(slot *s, size_t mask, size_t i)
{
    while (s[i].tag)
        i = (i + 1) & mask;
    return &s[i];
}

static void
ht_grow(htab *t)
{
    size_t nb = (t->mask + 1) * 2;
    slot *s = slots_alloc(nb);
    if (!s)
        return; /* stay fuller (a full table is never reached: ht_put refuses the last slot) */
    for (size_t i = 0; i <= t->mask; i++)
        if (t->s[i].tag)
            *ht_free_slot(s, nb - 1, SLOT_HOME(&t->s[i], nb - 1)) = t->s[i];
    free(t->s);
    t->s = s;
    t->mask = nb - 1;
}

/* Insert or replace; returns the replaced value (or NULL), sets *err on allocation failure. */
static void *
ht_put(htab *t, const unsigned char *key, size_t klen, uint64_t h, void *val, int *err)
{
    slot *s = ht_find(t, key, klen, h);
    if (s) {
        void *old = s->val;
        s->val = val;
        return old;
    }
    if (2 * (t->count + 1) > t->mask + 1) {
        ht_grow(t);
        if (t->count + 2 > t->mask + 1) { /* could not grow and one empty slot must stay */
            *err = 1;
            return NULL;
        }
    }
    s = ht_free_slot(t->s, t->mask, h & t->mask);
    if (klen > INLINE_KEY) {
        unsigned char *copy = malloc(klen);
        if (!copy) {
            *err = 1;
            return NULL;
        }
        memcpy(copy, key, klen);
        memcpy(s->key, &copy, sizeof(copy));
    } else {
        memcpy(s->key, key, klen);
    }
    s->tag = SLOT_TAG(h, klen);
    s->val = val;
    t->count++;
    return NULL;
}

static void *
ht_del(htab *t, const unsigned char *key, size_t klen, uint64_t h)
{
    slot *s = ht_find(t, key, klen, h);
    if (!s)
        return NULL;
    void *val = s->val;
    slot_clear(s);
    t->count--;
    /* backward shift: move up every slot of the run after it that may live in the hole */
    size_t hole = (size_t)(s - t->s);
    for (size_t j = (hole + 1) & t->mask; t->s[j].tag; j = (j + 1) & t->mask) {
        size_t home = SLOT_HOME(&t->s[j], t->mask);
        int stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (stays)
            continue;
        t->s[hole] = t->s[j];
        t->s[j].tag = 0; /* moved, not freed */
        hole = j;
    }
    return val;
}

/* Empty every slot of an array, calling fn on each value first. */
static void
slots_free(slot *s, size_t n, void (*fn)(void *ctx, void *val), void *ctx)
{
    for (size_t i = 0; i < n; i++)
        if (s[i].tag) {
            if (fn)
                fn(ctx, s[i].val);
            slot_clear(&s[i]);
        }
}

/* Remove every entry, calling fn on each value. Safe against fn touching *other* tables. */
static void
ht_clear(htab *t, void (*fn)(void *ctx, void *val), void *ctx)
{
    size_t nb = t->mask + 1;
    slot *old = t->s;
    if (ht_init(t, 64) < 0) { /* cannot allocate: reuse the old array, emptied */
        t->s = old;
        t->mask = nb - 1;
        t->count = 0;
        slots_free(old, nb, fn, ctx);
        return;
    }
    slots_free(old, nb, fn, ctx);
    free(old);
}

/* Free every entry of a table taken out of service (ht_take) and its slot array. */
static void
ht_free(htab *t, void (*fn)(void *ctx, void *val), void *ctx)
{
    slots_free(t->s, t->mask + 1, fn, ctx);
    free(t->s);
    t->s = NULL;
}

/* With the mutex held: move the live table's contents to `old` and leave it empty, in O(1), so
 * that `old` can be freed once the mutex is released. -1 when no bucket array can be had. */
static int
ht_take(htab *live, htab *old)
{
    htab fresh;
    if (ht_init(&fresh, 64) < 0)
        return -1;
    *old = *live;
    *live = fresh;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Compiled entries, mirrored from Python `Entry` objects (gslb/server/table.py).              */

typedef struct centry {
    /* what every answer reads first, then the headers, then the tail */
    unsigned char *tail;          /* tail_data */
    Py_ssize_t tail_len;
    unsigned long long hits;
    int pick;                     /* a GSLB entry: answered through the decision cache */
    int is_signed;                /* has a DNSSEC twin (Entry.signed): DO queries get it */
    struct centry *twin;          /* that twin mirrored (holding a reference); NULL for a GSLB
                                   * entry, whose DO answers are its decision target's twin */
    unsigned char hdr[8][10];     /* flags..arcount, indexed like Entry.hdr */
    unsigned char thdr[8][10];    /* the truncated() variant: TC set, no records */
    PyObject *entry;              /* the Python Entry: its hits get ours at harvest */
    long refs;                    /* tables and pins holding it */
    unsigned char tail_data[];    /* the records after the question (Entry.tail) */
} centry;

typedef struct {
    centry *target;
    int scope;
    PyObject *label;     /* "NAME TYPE|decision" */
    PyObject *counters;  /* the Answers.decisions dict it counts into */
    unsigned long long hits;
    /* `pick: random`: every answer draws one of `ndraw` entries by weight (0: always `target`) */
    size_t ndraw;
    centry **draw;
    uint64_t *cum;       /* cumulative weights, cum[ndraw - 1] > 0 */
    long refs;           /* decision-cache keys holding it (share_decision) */
    int shared;          /* registered in Engine.outcomes */
} decision;

/* An answer for every name below a stop name (table.Template): the sample's tail, with the
 * compression pointers past the question moved by the prefix length's difference. */
typedef struct {
    centry *c;          /* the sample's Entry: headers, tail, counters */
    size_t plen0;       /* octets of the sample's prefix above the stop name */
    size_t npts;
    uint16_t *pts;      /* offsets in c->tail of the pointers to move */
    centry **by_plen;   /* a GSLB wildcard's (table.dynamic_template): the picker compiled for each
                         * prefix length, nothing relocated; NULL where Python has not made it */
} tmpl;

typedef struct {
    PyObject_HEAD
    htab statics;   /* key -> centry* : the snapshot's table (and CHAOS names) */
    htab misses;    /* key -> centry* : what Python compiled on first use */
    htab stops;     /* lower-cased name wire -> (non-NULL): where a template walk stops */
    htab templates; /* stop name wire + qtype + qclass -> tmpl* */
    htab decisions; /* entry pointer + client key -> decision* */
    htab ids;       /* Entry object pointer -> centry* (one centry per Entry) */
    htab outcomes;  /* target + counters + scope + label -> the decision* every such key shares */
    int udp_size;
    unsigned char opt_head[2][9]; /* the response OPT record without RDLENGTH, without/with DO */
    size_t miss_cap, decision_cap;
    unsigned long long generation; /* bumped on every decision flush */
    uint64_t rng;                  /* xorshift64* state for `pick: random` draws (under mu) */
    int flush_pending;             /* the decision cache is full: flush once the mutex is free */
    unsigned long long native, fallback, truncated, picks;
    PyObject *s_hits, *s_answer, *s_pick;
    pthread_mutex_t mu;
    rrl_state *limits; /* RRL + query limits (rrl.h), NULL until set_limits */
    PyObject *bulk_list;  /* the gslb.zone._bulk.Store objects (a tuple) the pointers below are in */
    bulk_store **bulk;    /* their stores, read-only once built: read under mu like the tables */
    size_t nbulk;
} Engine;

#define LOCK(e) pthread_mutex_lock(&(e)->mu)
#define UNLOCK(e) pthread_mutex_unlock(&(e)->mu)

static void centry_release(Engine *e, centry *c);

static void
centry_free(Engine *e, centry *c)
{
    uint64_t h = hash_bytes((unsigned char *)&c->entry, sizeof(c->entry));
    ht_del(&e->ids, (unsigned char *)&c->entry, sizeof(c->entry), h);
    if (c->hits) { /* fold what we counted into the Entry before letting it go */
        PyObject *old = PyObject_GetAttr(c->entry, e->s_hits);
        if (old) {
            PyObject *add = PyLong_FromUnsignedLongLong(c->hits);
            PyObject *sum = add ? PyNumber_Add(old, add) : NULL;
            if (sum)
                PyObject_SetAttr(c->entry, e->s_hits, sum);
            Py_XDECREF(sum);
            Py_XDECREF(add);
            Py_DECREF(old);
        }
        PyErr_Clear();
    }
    Py_DECREF(c->entry);
    if (c->twin)
        centry_release(e, c->twin);
    free(c);
}

static void
centry_release(Engine *e, centry *c)
{
    if (--c->refs <= 0)
        centry_free(e, c);
}

static centry *centry_of(Engine *e, PyObject *entry);

/*
 * Mirror the signed twin of `c` (Entry.signed) so DO queries are answered natively. A GSLB entry's
 * twin is not mirrored: Python's twin picks as the entry does and sends the target's twin
 * (dnssec.serve.twin_for_pick), so the engine decides with the entry and takes the target's twin.
 * A twin that cannot be mirrored (or that picks by itself) leaves `twin` NULL: DO goes to Python.
 */
static void
mirror_twin(Engine *e, centry *c, PyObject *signed_twin)
{
    c->is_signed = signed_twin != NULL && signed_twin != Py_None;
    if (!c->is_signed || c->pick)
        return;
    centry *t = centry_of(e, signed_twin);
    if (!t) {
        PyErr_Clear();
        return;
    }
    if (t->pick) {
        if (t->refs <= 0)
            centry_free(e, t);
        return;
    }
    t->refs++;
    c->twin = t;
}

/* The centry for a Python Entry (made on first sight); NULL with an exception on a bad object. */
static centry *
centry_of(Engine *e, PyObject *entry)
{
    uint64_t h = hash_bytes((unsigned char *)&entry, sizeof(entry));
    centry *c = ht_get(&e->ids, (unsigned char *)&entry, sizeof(entry), h);
    if (c)
        return c;
    PyObject *hdr = PyObject_GetAttrString(entry, "hdr");
    PyObject *tail = PyObject_GetAttrString(entry, "tail");
    PyObject *pick = PyObject_GetAttrString(entry, "pick");
    PyObject *signed_twin = PyObject_GetAttrString(entry, "signed");
    if (!signed_twin)
        PyErr_Clear(); /* an Entry without the slot: unsigned */
    c = NULL;
    if (!hdr || !tail || !pick)
        goto done;
    if (!PyTuple_Check(hdr) || PyTuple_GET_SIZE(hdr) != 8 || !PyBytes_Check(tail)) {
        PyErr_SetString(PyExc_TypeError, "not an Entry");
        goto done;
    }
    /* the tail right behind the headers, in the same allocation: one cache miss fewer per answer */
    c = calloc(1, sizeof(centry) + (size_t)PyBytes_GET_SIZE(tail));
    if (!c) {
        PyErr_NoMemory();
        goto done;
    }
    for (int i = 0; i < 8; i++) {
        PyObject *b = PyTuple_GET_ITEM(hdr, i);
        if (!PyBytes_Check(b) || PyBytes_GET_SIZE(b) != 10) {
            PyErr_SetString(PyExc_TypeError, "Entry.hdr items must be 10 bytes");
            free(c);
            c = NULL;
            goto done;
        }
        memcpy(c->hdr[i], PyBytes_AS_STRING(b), 10);
        memcpy(c->thdr[i], c->hdr[i], 10);
        c->thdr[i][0] |= 0x02;               /* TC */
        memset(c->thdr[i] + 4, 0, 6);        /* ANCOUNT, NSCOUNT, ARCOUNT = 0 ... */
        c->thdr[i][9] = i >= 4 ? 1 : 0;      /* ... but the OPT record */
    }
    c->tail_len = PyBytes_GET_SIZE(tail);
    c->tail = c->tail_data;
    memcpy(c->tail, PyBytes_AS_STRING(tail), (size_t)c->tail_len);
    c->pick = pick != Py_None;
    c->entry = entry;
    Py_INCREF(entry);
    int err = 0;
    ht_put(&e->ids, (unsigned char *)&entry, sizeof(entry), h, c, &err);
    if (err) {
        Py_DECREF(entry);
        free(c);
        c = NULL;
        PyErr_NoMemory();
    } else {
        mirror_twin(e, c, signed_twin);
    }
done:
    Py_XDECREF(hdr);
    Py_XDECREF(tail);
    Py_XDECREF(pick);
    Py_XDECREF(signed_twin);
    return c;
}

static void
release_cb(void *ctx, void *val)
{
    centry_release((Engine *)ctx, (centry *)val);
}

static void
tmpl_free_cb(void *ctx, void *val)
{
    tmpl *t = val;
    centry_release((Engine *)ctx, t->c);
    if (t->by_plen) {
        for (int i = 0; i < 256; i++)
            if (t->by_plen[i])
                centry_release((Engine *)ctx, t->by_plen[i]);
        free(t->by_plen);
    }
    free(t->pts);
    free(t);
}

static void
fold_decision(decision *d)
{
    if (d->hits && d->counters && PyDict_Check(d->counters)) {
        PyObject *old = PyDict_GetItemWithError(d->counters, d->label);
        long long n = old ? PyLong_AsLongLong(old) : 0;
        PyObject *sum = PyLong_FromLongLong(n + (long long)d->hits);
        if (sum) {
            PyDict_SetItem(d->counters, d->label, sum);
            Py_DECREF(sum);
        }
        PyErr_Clear();
    }
    d->hits = 0;
}

static void
decision_destroy(Engine *e, decision *d)
{
    fold_decision(d);
    Py_XDECREF(d->label);
    Py_XDECREF(d->counters);
    centry_release(e, d->target);
    for (size_t i = 0; i < d->ndraw; i++)
        centry_release(e, d->draw[i]);
    free(d->draw);
    free(d->cum);
    free(d);
}

/* What makes two decisions interchangeable (target, counters, scope, label text) as a key of
 * Engine.outcomes; 0 when the label is not text (the decision is then not shared). */
static size_t
outcome_key(unsigned char *out, size_t cap, const decision *d)
{
    Py_ssize_t n = 0;
    const char *text = PyUnicode_Check(d->label) ? PyUnicode_AsUTF8AndSize(d->label, &n) : NULL;
    size_t head = 2 * sizeof(void *) + 1;
    if (!text || head + (size_t)n > cap) {
        PyErr_Clear();
        return 0;
    }
    memcpy(out, &d->target, sizeof(void *));
    memcpy(out + sizeof(void *), &d->counters, sizeof(void *));
    out[2 * sizeof(void *)] = (unsigned char)d->scope;
    memcpy(out + head, text, (size_t)n);
    return head + (size_t)n;
}

/* One decision struct for every client key with the same outcome: the native pass then reads a
 * few hot structs, not one per client prefix (a cache miss on most GSLB answers). Returns `d`,
 * now shared, or the equal one already shared (`d` destroyed). Counts stay per label: a shared
 * struct's hits go to the same counter the separate ones did. With the GIL held. */
static decision *
share_decision(Engine *e, decision *d)
{
    unsigned char k[2 * sizeof(void *) + 1 + 256];
    size_t kl = d->ndraw ? 0 : outcome_key(k, sizeof(k), d); /* draws: each its own weights */
    if (!kl)
        return d;
    uint64_t h = hash_bytes(k, kl);
    decision *same = ht_get(&e->outcomes, k, kl, h);
    if (same) {
        same->refs++;
        decision_destroy(e, d);
        return same;
    }
    int err = 0;
    ht_put(&e->outcomes, k, kl, h, d, &err);
    d->shared = !err;
    return d;
}

/* A decision-cache key lets its decision go (the last one frees it). With the GIL held; the
 * mutex need not be: a struct no key holds is out of the native pass's reach. */
static void
decision_free_cb(void *ctx, void *val)
{
    Engine *e = ctx;
    decision *d = val;
    if (--d->refs > 0)
        return;
    if (d->shared) {
        unsigned char k[2 * sizeof(void *) + 1 + 256];
        size_t kl = outcome_key(k, sizeof(k), d);
        if (kl)
            ht_del(&e->outcomes, k, kl, hash_bytes(k, kl));
    }
    decision_destroy(e, d);
}

/* One weighted draw among a decision's candidates: the same distribution as Python's
 * select.weighted_draw for one answer (a value is drawn with probability weight / total). */
static centry *
draw_one(Engine *e, const decision *d)
{
    uint64_t x = e->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    e->rng = x;
    uint64_t r = (x * 0x2545F4914F6CDD1DULL) % d->cum[d->ndraw - 1];
    size_t i = 0;
    while (r >= d->cum[i])
        i++;
    return d->draw[i];
}

/* The candidates Python gave for a `pick: random` decision: ((Entry, weight), ...) mirrored.
 * Returns 0 when there are none to draw from natively (the decision is then not cached). */
static int
set_draws(Engine *e, decision *d, PyObject *draws)
{
    d->ndraw = 0;
    d->draw = NULL;
    d->cum = NULL;
    if (!PyTuple_Check(draws) || PyTuple_GET_SIZE(draws) == 0)
        return 0;
    size_t n = (size_t)PyTuple_GET_SIZE(draws);
    centry **draw = calloc(n, sizeof(centry *));
    uint64_t *cum = calloc(n, sizeof(uint64_t));
    uint64_t total = 0;
    size_t i = 0;
    for (; draw && cum && i < n; i++) {
        PyObject *pair = PyTuple_GET_ITEM(draws, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2)
            break;
        long long w = PyLong_AsLongLong(PyTuple_GET_ITEM(pair, 1));
        centry *c = w >= 0 && w < (1LL << 32) ? centry_of(e, PyTuple_GET_ITEM(pair, 0)) : NULL;
        if (!c || c->pick)
            break;
        c->refs++;
        draw[i] = c;
        total += (uint64_t)w;
        cum[i] = total;
    }
    if (i < n || total == 0) {
        PyErr_Clear();
        for (size_t j = 0; draw && j < i; j++)
            centry_release(e, draw[j]);
        free(draw);
        free(cum);
        return 0;
    }
    d->ndraw = n;
    d->draw = draw;
    d->cum = cum;
    return 1;
}

/* Decision keys: the picking entry's pointer, then the client address or the raw ECS option,
 * then which of the two it is (an option's octets can equal an address's). */
static size_t
decision_key(unsigned char *out, const centry *src, const unsigned char *k, size_t klen, int is_ecs)
{
    memcpy(out, &src, sizeof(src));
    memcpy(out + sizeof(src), k, klen);
    out[sizeof(src) + klen] = (unsigned char)is_ecs;
    return sizeof(src) + klen + 1;
}

/* Free a decision table taken out of service. Its keys hold the source centry pointer, which
 * they pin with a reference. */
static void
drop_decisions(Engine *e, htab *t)
{
    for (size_t i = 0; i <= t->mask; i++) {
        slot *s = &t->s[i];
        if (!s->tag)
            continue;
        centry *src;
        memcpy(&src, slot_key(s), sizeof(src));
        decision_free_cb(e, s->val);
        centry_release(e, src);
        slot_clear(s);
    }
    t->count = 0;
}

/* A table swapped out under the mutex (ht_take), to be freed once the mutex is released. */
typedef struct {
    htab t;
    int taken;    /* 0: no bucket array could be had, the live table was emptied in place */
    int decisions; /* the decision table: its keys pin their source entries (drop_decisions) */
    void (*fn)(void *ctx, void *val);
} retired;

/* With the mutex held: take `live`'s contents into `r` (out of memory: empty it in place). */
static void
retire_locked(Engine *e, htab *live, void (*fn)(void *ctx, void *val), retired *r)
{
    r->fn = fn;
    r->decisions = live == &e->decisions;
    r->taken = ht_take(live, &r->t) == 0;
    if (!r->taken) {
        if (r->decisions)
            drop_decisions(e, live);
        else
            ht_clear(live, fn, e);
    }
}

/* Without the mutex (the GIL held): free what `retire_locked` took. */
static void
retired_free(Engine *e, retired *r)
{
    if (!r->taken)
        return;
    if (r->decisions) {
        drop_decisions(e, &r->t);
        free(r->t.s);
    } else {
        ht_free(&r->t, r->fn, e);
    }
}

/* Forget every decision: the generation moves (a decision being made meanwhile is not cached),
 * the table is swapped out under the mutex and freed after it. Called with the GIL held. */
static void
flush_decisions(Engine *e)
{
    retired r;
    LOCK(e);
    e->generation++;
    e->flush_pending = 0;
    retire_locked(e, &e->decisions, NULL, &r);
    UNLOCK(e);
    retired_free(e, &r);
}

/* ---------------------------------------------------------------------------------------- */
/* Answering one packet.                                                                       */

enum { ANSWERED = 1, FALLBACK = 0, DROP = -1 };

static int
valid_ecs(const unsigned char *p, size_t n)
{
    if (n < 4)
        return 0;
    int family = (p[0] << 8) | p[1], source = p[2], scope = p[3];
    if (family != 1 && family != 2)
        return 0;
    if (source > (family == 1 ? 32 : 128))
        return 0;
    if (scope != 0)
        return 0;
    if (n - 4 != (size_t)((source + 7) / 8))
        return 0;
    if (source % 8 && (p[n - 1] & (0xFF >> (source % 8))))
        return 0;
    return 1;
}

/*
 * The template for a lower-cased key (name of `nlen` octets, then qtype and qclass) that is in
 * no table: walk up from the name to the first stop name K; K's template answers it, `*plen`
 * being the octets above K. NULL when the name itself is a stop (compiled for itself), or K's
 * template is not built yet (Python builds it: fastpath.Responder._from_template).
 */
static tmpl *
template_for(Engine *e, const unsigned char *key, size_t nlen, size_t klen, size_t *plen)
{
    if (nlen < 2 || e->templates.count == 0)
        return NULL;
    unsigned qtype = (unsigned)key[nlen] << 8 | key[nlen + 1];
    if (qtype == 251 || qtype == 252)
        return NULL; /* IXFR, AXFR: the careful path */
    if (ht_get(&e->stops, key, nlen, hash_bytes(key, nlen)))
        return NULL;
    size_t pos = (size_t)key[0] + 1;
    while (pos < nlen - 1 && !ht_get(&e->stops, key + pos, nlen - pos, hash_bytes(key + pos, nlen - pos)))
        pos += (size_t)key[pos] + 1;
    tmpl *t = ht_get(&e->templates, key + pos, klen - pos, hash_bytes(key + pos, klen - pos));
    *plen = pos;
    return t;
}

/* The question into the reply, in words: a plain memcpy of this unknown length became a `rep
 * movsq` whose start-up cost was the largest single part of answer_native. */
static inline void
copy_question(unsigned char *d, const unsigned char *s, size_t n)
{
    if (n < 8) { /* the root or a one-octet name: a question is at least 5 */
        for (size_t i = 0; i < n; i++)
            d[i] = s[i];
        return;
    }
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        memcpy(d + i, s + i, 8);
    if (i < n)
        memcpy(d + n - 8, s + n - 8, 8);
}

/*
 * A name strictly below a bulk zone's apex (gslb/zone/bulk.py): its answer assembled from the
 * zone's store into `buf`, with header `idx`, as a centry on the caller's stack (`bc`). NULL with
 * *mine set when the store declines (Python answers: it never uses a template there), NULL with
 * *mine clear when no bulk zone holds the name.
 */
static centry *
bulk_entry(Engine *e, const unsigned char *key, size_t nlen, size_t klen, int idx, centry *bc, unsigned char *buf,
           bulk_store **which, int *rcode, int *mine)
{
    *mine = 0;
    for (size_t i = 0; i < e->nbulk; i++) {
        bulk_store *st = e->bulk[i];
        if (nlen <= st->olen || !bulk_below(key, nlen, st->origin, st->olen))
            continue;
        *mine = 1;
        if (key[klen - 2] != 0 || key[klen - 1] != 1)
            return NULL; /* not IN */
        bulk_writer w;
        w.buf = buf;
        w.cap = BUFSIZE;
        bulk_question(&w, key, klen);
        unsigned an, ns;
        if (!bulk_answer(st, key, nlen, (unsigned)key[nlen] << 8 | key[nlen + 1], &w, rcode, &an, &ns))
            return NULL;
        memset(bc, 0, sizeof(*bc));
        bc->tail = buf + 12 + klen;
        bc->tail_len = (Py_ssize_t)(w.len - 12 - klen);
        /* only the header this query is sent with (and its truncated form): the index the
         * caller computes from the query's RD, CD and OPT */
        unsigned f = 0x8400u | (unsigned)*rcode | ((idx & 1) ? 0x0100u : 0) | ((idx & 2) ? 0x0010u : 0);
        unsigned ar = idx >= 4;
        unsigned char h[10] = {(unsigned char)(f >> 8), (unsigned char)f, 0, 1, (unsigned char)(an >> 8),
                               (unsigned char)an, (unsigned char)(ns >> 8), (unsigned char)ns, 0, (unsigned char)ar};
        memcpy(bc->hdr[idx], h, 10);
        f |= 0x0200u; /* TC, no records */
        unsigned char t[10] = {(unsigned char)(f >> 8), (unsigned char)f, 0, 1, 0, 0, 0, 0, 0, (unsigned char)ar};
        memcpy(bc->thdr[idx], t, 10);
        *which = st;
        return bc;
    }
    return NULL;
}

/*
 * Try to answer `q` natively into `out` (BUFSIZE bytes). Returns the reply length, or 0 to
 * let Python answer. `responder` is used for GSLB decisions the cache does not hold.
 */
static size_t
answer_native(Engine *e, PyObject *responder, const unsigned char *q, size_t n, const unsigned char *client,
              size_t clen, unsigned char *out)
{
    if (n < 17 || (q[2] & 0xF8))
        return 0;
    static const unsigned char one_q[7] = {0, 1, 0, 0, 0, 0, 0};
    if (memcmp(q + 4, one_q, 7) != 0 || q[11] > 1)
        return 0;
    int has_opt = q[11];
    size_t pos = 12;
    unsigned char key[MAXKEY];
    for (;;) {
        unsigned len = q[pos];
        if (len == 0)
            break;
        if (len > 63)
            return 0;
        if (pos - 12 + len + 1 > 254)
            return 0; /* longer than a name can be: Python says FORMERR */
        key[pos - 12] = (unsigned char)len;
        if (pos + len + 1 >= n)
            return 0;
        for (unsigned i = 1; i <= len; i++) {
            unsigned char ch = q[pos + i];
            key[pos - 12 + i] = (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch;
        }
        pos += len + 1;
    }
    size_t qend = pos + 5;
    if (qend > n)
        return 0;
    size_t klen = qend - 12;
    key[pos - 12] = 0;
    memcpy(key + pos - 12 + 1, q + pos + 1, 4);
    uint64_t h = hash_bytes(key, klen);
    centry *c = ht_get(&e->statics, key, klen, h);
    if (!c)
        c = ht_get(&e->misses, key, klen, h);
    size_t plen = 0;
    tmpl *tm = NULL;
    centry bc;
    unsigned char btail[BUFSIZE];
    bulk_store *bstore = NULL;
    int brcode = 0;
    if (!c && e->nbulk) {
        int mine;
        int idx = (has_opt ? 4 : 0) + ((q[2] & 1) | ((q[3] >> 3) & 2)); /* as below */
        c = bulk_entry(e, key, pos - 12 + 1, klen, idx, &bc, btail, &bstore, &brcode, &mine);
        if (!c && mine)
            return 0;
    }
    if (!c) {
        tm = template_for(e, key, pos - 12 + 1, klen, &plen);
        if (!tm)
            return 0;
        c = tm->c;
        if (tm->by_plen) { /* a GSLB wildcard: this prefix length's own picker */
            c = plen < 256 ? tm->by_plen[plen] : NULL;
            if (!c)
                return 0;
            tm = NULL;
        }
    }
    size_t limit = 512;
    const unsigned char *ecs = NULL;
    size_t ecs_len = 0;
    int opt_do = 0;
    if (has_opt) {
        if (qend + 11 > n)
            return 0;
        const unsigned char *o = q + qend;
        if (o[0] != 0 || o[1] != 0 || o[2] != 41 || o[6] != 0)
            return 0;
        size_t rdlen = ((size_t)o[9] << 8) | o[10];
        if (qend + 11 + rdlen != n)
            return 0;
        if (rdlen) {
            if (rdlen < 4 || o[11] != 0 || o[12] != 8 || (((size_t)o[13] << 8) | o[14]) + 4 != rdlen)
                return 0;
            ecs = o + 15;
            ecs_len = rdlen - 4;
            if (!valid_ecs(ecs, ecs_len))
                return 0;
        }
        opt_do = (o[7] & 0x80) != 0;
        if (opt_do && c->is_signed && !c->pick) {
            if (!c->twin || tm)
                return 0; /* not mirrored, or a signed zone's template (its DO answer names the
                             query name: made per name by Python, then in the miss table) */
            c = c->twin; /* DO: the signed twin, as fastpath's `entry = entry.signed` */
        }
        size_t payload = ((size_t)o[3] << 8) | o[4];
        size_t lim = payload > 512 ? payload : 512;
        if ((size_t)e->udp_size < lim)
            lim = (size_t)e->udp_size;
        if (lim > limit)
            limit = lim;
    } else if (qend != n) {
        return 0;
    }
    int scope = 0;
    centry *pinned = NULL;
    int want_twin = c->is_signed; /* a GSLB entry with a signed twin */
    if (c->pick) {
        const unsigned char *ck = (ecs && ecs[2]) ? ecs : client;
        size_t cklen = (ecs && ecs[2]) ? ecs_len : clen;
        unsigned char dk[sizeof(void *) + 65];
        if (cklen > 64)
            return 0;
        size_t dklen = decision_key(dk, c, ck, cklen, ck == ecs);
        uint64_t dh = hash_bytes(dk, dklen);
        decision *d = ht_get(&e->decisions, dk, dklen, dh);
        if (d) {
            d->hits++;
            scope = d->scope;
            c = d->ndraw ? draw_one(e, d) : d->target;
        } else if (!responder) {
            return 0; /* the native pass (no GIL): decided in the second pass */
        } else {
            /* Ask Python: responder._native_pick(entry, client, ecs)
             *   -> (entry, scope, sticky, label, counters, draws) */
            unsigned long long gen = e->generation;
            c->refs++; /* pinned across the call: other threads may flush tables meanwhile */
            UNLOCK(e);
            PyObject *pc = PyBytes_FromStringAndSize((const char *)client, (Py_ssize_t)clen);
            PyObject *pe = ecs ? PyBytes_FromStringAndSize((const char *)ecs, (Py_ssize_t)ecs_len) : Py_None;
            if (!ecs)
                Py_INCREF(Py_None);
            PyObject *r = (pc && pe) ? PyObject_CallMethodObjArgs(responder, e->s_pick, c->entry, pc, pe, NULL)
                                     : NULL;
            Py_XDECREF(pc);
            Py_XDECREF(pe);
            LOCK(e);
            centry *src = c;
            if (!r || !PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 6) {
                PyErr_Clear();
                Py_XDECREF(r);
                centry_release(e, src);
                return 0;
            }
            centry *t = centry_of(e, PyTuple_GET_ITEM(r, 0));
            long sc = PyLong_AsLong(PyTuple_GET_ITEM(r, 1));
            int sticky = PyObject_IsTrue(PyTuple_GET_ITEM(r, 2));
            if (!t || sc < 0 || sc > 128 || sticky < 0) {
                PyErr_Clear();
                Py_DECREF(r);
                centry_release(e, src);
                return 0;
            }
            e->picks++;
            scope = (int)sc;
            t->refs++; /* pinned until the answer is built */
            PyObject *draws = PyTuple_GET_ITEM(r, 5);
            int drawn = sticky == 0 && PyTuple_Check(draws) && PyTuple_GET_SIZE(draws) > 0;
            if (e->decisions.count >= e->decision_cap)
                e->flush_pending = 1; /* bounded: start over (after the mutex), as Answers does */
            else if ((sticky == 1 || drawn) && gen == e->generation) {
                d = malloc(sizeof(decision));
                if (d && drawn && !set_draws(e, d, draws)) {
                    free(d);
                    d = NULL;
                } else if (d && !drawn) {
                    d->ndraw = 0;
                    d->draw = NULL;
                    d->cum = NULL;
                }
                if (d) {
                    d->target = t;
                    t->refs++;
                    d->scope = scope;
                    d->label = PyTuple_GET_ITEM(r, 3);
                    d->counters = PyTuple_GET_ITEM(r, 4);
                    Py_INCREF(d->label);
                    Py_INCREF(d->counters);
                    d->hits = 0;
                    d->refs = 1;
                    d->shared = 0;
                    d = share_decision(e, d);
                    int err = 0;
                    decision *old = ht_put(&e->decisions, dk, dklen, dh, d, &err);
                    if (err)
                        decision_free_cb(e, d); /* the draws' references go with it */
                    else if (old) /* another thread decided meanwhile: its key pin carries over */
                        decision_free_cb(e, old);
                    else
                        src->refs++; /* the key pins its source entry */
                }
            }
            Py_DECREF(r);
            centry_release(e, src);
            c = pinned = t; /* released once the answer is built */
        }
        if (opt_do && want_twin) { /* the target's twin (serve.twin_for_pick: `chosen.signed or chosen`) */
            if (c->twin)
                c = c->twin; /* held by the target, which the decision or the pin holds */
            else if (c->is_signed) {
                if (pinned)
                    centry_release(e, pinned);
                return 0;
            }
        }
    }
    int rdcd = (q[2] & 1) | ((q[3] >> 3) & 2);
    int idx = (has_opt ? 4 : 0) + rdcd;
    size_t qlen = qend - 12;
    size_t optlen = has_opt ? 11 + (ecs ? 4 + ecs_len : 0) : 0;
    size_t full = 12 + qlen + (size_t)c->tail_len + optlen;
    int trunc = full > limit;
    if (!trunc && full > BUFSIZE) {
        if (pinned)
            centry_release(e, pinned);
        return 0;
    }
    memcpy(out, q, 2);
    memcpy(out + 2, trunc ? c->thdr[idx] : c->hdr[idx], 10);
    copy_question(out + 12, q + 12, qlen);
    size_t len = 12 + qlen;
    if (!trunc) {
        memcpy(out + len, c->tail, (size_t)c->tail_len);
        if (tm)
            for (size_t i = 0; i < tm->npts; i++) {
                unsigned char *p = out + len + tm->pts[i];
                size_t v = ((size_t)(p[0] & 0x3F) << 8 | p[1]) + plen - tm->plen0;
                p[0] = (unsigned char)(0xC0 | v >> 8);
                p[1] = (unsigned char)v;
            }
        len += (size_t)c->tail_len;
    }
    if (has_opt) {
        memcpy(out + len, e->opt_head[opt_do], 9);
        len += 9;
        size_t ol = ecs ? 4 + ecs_len : 0;
        out[len++] = (unsigned char)(ol >> 8);
        out[len++] = (unsigned char)ol;
        if (ecs) {
            memcpy(out + len, q + qend + 11, 4);
            memcpy(out + len + 4, ecs, 3);
            out[len + 7] = (unsigned char)scope;
            memcpy(out + len + 8, ecs + 4, ecs_len - 4);
            len += 4 + ecs_len;
        }
    }
    c->hits++;
    if (bstore)
        bulk_count(bstore, brcode, (unsigned)key[pos - 12 + 1] << 8 | key[pos - 12 + 2]);
    if (trunc)
        e->truncated++;
    if (pinned)
        centry_release(e, pinned);
    return len;
}

/* ---------------------------------------------------------------------------------------- */
/* The Python type.                                                                            */

static int
Engine_init(Engine *e, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"udp_size", "opt_head", "opt_head_do", "miss_cap", "decision_cap", NULL};
    const char *h0, *h1;
    Py_ssize_t l0, l1;
    Py_ssize_t miss_cap = 200000, decision_cap = 1000000;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "iy#y#|nn", kwlist, &e->udp_size, &h0, &l0, &h1, &l1, &miss_cap,
                                     &decision_cap))
        return -1;
    if (l0 != 9 || l1 != 9) {
        PyErr_SetString(PyExc_ValueError, "opt heads are 9 bytes (an OPT record without RDLENGTH)");
        return -1;
    }
    if (e->statics.s) {
        PyErr_SetString(PyExc_RuntimeError, "already initialised");
        return -1;
    }
    pthread_mutex_init(&e->mu, NULL);
    memcpy(e->opt_head[0], h0, 9);
    memcpy(e->opt_head[1], h1, 9);
    e->miss_cap = (size_t)(miss_cap > 0 ? miss_cap : 1);
    e->decision_cap = (size_t)(decision_cap > 0 ? decision_cap : 1);
    if (ht_init(&e->statics, 1024) < 0 || ht_init(&e->misses, 1024) < 0 || ht_init(&e->decisions, 1024) < 0
        || ht_init(&e->ids, 1024) < 0 || ht_init(&e->stops, 1024) < 0 || ht_init(&e->templates, 1024) < 0
        || ht_init(&e->outcomes, 64) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    e->s_hits = PyUnicode_InternFromString("hits");
    e->s_answer = PyUnicode_InternFromString("answer");
    e->s_pick = PyUnicode_InternFromString("_native_pick");
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    e->rng = (hash_bytes((unsigned char *)&e, sizeof(e)) ^ (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 40) | 1;
    if (!e->s_hits || !e->s_answer || !e->s_pick)
        return -1;
    return 0;
}

static void
Engine_dealloc(Engine *e)
{
    if (e->statics.s) {
        flush_decisions(e);
        ht_clear(&e->statics, release_cb, e);
        ht_clear(&e->misses, release_cb, e);
        ht_clear(&e->templates, tmpl_free_cb, e);
        ht_clear(&e->stops, NULL, NULL);
        ht_clear(&e->ids, NULL, NULL);
        free(e->statics.s);
        free(e->misses.s);
        free(e->templates.s);
        free(e->stops.s);
        free(e->decisions.s);
        free(e->ids.s);
        free(e->outcomes.s); /* empty: every decision went with the flush */
        pthread_mutex_destroy(&e->mu);
    }
    rrl_free(e->limits);
    free(e->bulk);
    Py_XDECREF(e->bulk_list);
    Py_XDECREF(e->s_hits);
    Py_XDECREF(e->s_answer);
    Py_XDECREF(e->s_pick);
    Py_TYPE(e)->tp_free((PyObject *)e);
}

static int
put_entry(Engine *e, htab *t, PyObject *k, PyObject *v)
{
    if (!PyBytes_Check(k)) {
        PyErr_SetString(PyExc_TypeError, "keys are bytes");
        return -1;
    }
    Py_ssize_t klen = PyBytes_GET_SIZE(k);
    if (klen < 5 || klen > MAXKEY)
        return 0; /* never looked up natively: the engine cannot make such a key */
    centry *c = centry_of(e, v);
    if (!c)
        return -1;
    const unsigned char *kb = (const unsigned char *)PyBytes_AS_STRING(k);
    int err = 0;
    c->refs++;
    centry *old = ht_put(t, kb, (size_t)klen, hash_bytes(kb, (size_t)klen), c, &err);
    if (err) {
        centry_release(e, c);
        PyErr_NoMemory();
        return -1;
    }
    if (old)
        centry_release(e, old);
    return 0;
}

/* Swap a live table for an empty one under the mutex, and free what it held after. */
static void
empty_table(Engine *e, htab *live, void (*fn)(void *ctx, void *val))
{
    retired r;
    LOCK(e);
    retire_locked(e, live, fn, &r);
    UNLOCK(e);
    retired_free(e, &r);
}

static PyObject *
Engine_load(Engine *e, PyObject *table)
{
    if (!PyDict_Check(table)) {
        PyErr_SetString(PyExc_TypeError, "load(table: dict[bytes, Entry])");
        return NULL;
    }
    /* the new table is built without the mutex: the native pass keeps answering from the old one */
    htab fresh, old;
    if (ht_init(&fresh, 1024) < 0)
        return PyErr_NoMemory();
    Py_ssize_t i = 0;
    PyObject *k, *v;
    while (PyDict_Next(table, &i, &k, &v))
        if (put_entry(e, &fresh, k, v) < 0) {
            ht_free(&fresh, release_cb, e);
            return NULL;
        }
    /* one flip: the new statics, and no misses, templates, stops or decisions of the old ones */
    retired gone[4];
    LOCK(e);
    old = e->statics;
    e->statics = fresh;
    e->generation++;
    e->flush_pending = 0;
    retire_locked(e, &e->misses, release_cb, &gone[0]);
    retire_locked(e, &e->templates, tmpl_free_cb, &gone[1]);
    retire_locked(e, &e->stops, NULL, &gone[2]);
    retire_locked(e, &e->decisions, NULL, &gone[3]);
    UNLOCK(e);
    for (int t = 0; t < 4; t++)
        retired_free(e, &gone[t]);
    ht_free(&old, release_cb, e);
    Py_RETURN_NONE;
}

static PyObject *
Engine_insert(Engine *e, PyObject *args)
{
    PyObject *k, *v;
    if (!PyArg_ParseTuple(args, "SO", &k, &v))
        return NULL;
    if (e->misses.count >= e->miss_cap)
        empty_table(e, &e->misses, release_cb); /* bounded: start over */
    LOCK(e);
    int r = put_entry(e, &e->misses, k, v);
    UNLOCK(e);
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

static int
put_stops(Engine *e, PyObject *names)
{
    PyObject *seq = PySequence_Fast(names, "stop names: a list of bytes");
    if (!seq)
        return -1;
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
        PyObject *k = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyBytes_Check(k)) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_TypeError, "stop names are bytes");
            return -1;
        }
        const unsigned char *kb = (const unsigned char *)PyBytes_AS_STRING(k);
        size_t klen = (size_t)PyBytes_GET_SIZE(k);
        if (klen < 1 || klen > 255)
            continue;
        int err = 0;
        ht_put(&e->stops, kb, klen, hash_bytes(kb, klen), e, &err); /* the value only says "present" */
        if (err) {
            Py_DECREF(seq);
            PyErr_NoMemory();
            return -1;
        }
    }
    Py_DECREF(seq);
    return 0;
}

/* set_bulk([Store, ...]): the bulk zones answered from their stores (gslb/zone/bulk.py). */
static PyObject *
Engine_set_bulk(Engine *e, PyObject *stores)
{
    PyObject *list = PySequence_Tuple(stores);
    if (!list)
        return NULL;
    size_t n = (size_t)PyTuple_GET_SIZE(list);
    bulk_store **ptrs = n ? calloc(n, sizeof(bulk_store *)) : NULL;
    if (n && !ptrs) {
        Py_DECREF(list);
        return PyErr_NoMemory();
    }
    for (size_t i = 0; i < n; i++) {
        PyObject *cap = PyObject_CallMethod(PyTuple_GET_ITEM(list, i), "capsule", NULL);
        ptrs[i] = cap ? PyCapsule_GetPointer(cap, "gslb.zone.bulk_store") : NULL;
        Py_XDECREF(cap);
        if (!ptrs[i]) {
            free(ptrs);
            Py_DECREF(list);
            return NULL;
        }
    }
    LOCK(e);
    bulk_store **old = e->bulk;
    PyObject *old_list = e->bulk_list;
    e->bulk = ptrs;
    e->nbulk = n;
    e->bulk_list = list;
    UNLOCK(e);
    free(old);
    Py_XDECREF(old_list);
    Py_RETURN_NONE;
}

static PyObject *
Engine_add_stops(Engine *e, PyObject *names)
{
    LOCK(e);
    int r = put_stops(e, names);
    UNLOCK(e);
    if (r < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
Engine_insert_template(Engine *e, PyObject *args)
{
    PyObject *k, *v, *stops;
    Py_ssize_t plen0;
    const char *pts;
    Py_ssize_t ptslen;
    int dynamic = 0;
    if (!PyArg_ParseTuple(args, "SOny#O|p", &k, &v, &plen0, &pts, &ptslen, &stops, &dynamic))
        return NULL;
    Py_ssize_t klen = PyBytes_GET_SIZE(k);
    if (klen < 5 || klen > MAXKEY || plen0 < 2 || plen0 > 255 || ptslen % 2) {
        PyErr_SetString(PyExc_ValueError, "insert_template(key, entry, plen0, pointers, stops): bad sizes");
        return NULL;
    }
    LOCK(e);
    if (put_stops(e, stops) < 0) { /* stops first: the template is only ever used with them */
        UNLOCK(e);
        return NULL;
    }
    centry *c = centry_of(e, v);
    tmpl *t = c ? calloc(1, sizeof(tmpl)) : NULL;
    if (t) {
        t->npts = (size_t)ptslen / 2;
        t->pts = malloc(t->npts ? t->npts * sizeof(uint16_t) : 1);
        t->by_plen = dynamic ? calloc(256, sizeof(centry *)) : NULL;
    }
    if (!c || !t || !t->pts || (dynamic && !t->by_plen)) {
        if (t) {
            free(t->pts);
            free(t->by_plen);
            free(t);
        }
        UNLOCK(e);
        return c ? PyErr_NoMemory() : NULL;
    }
    for (size_t i = 0; i < t->npts; i++) {
        size_t p = (size_t)((unsigned char)pts[2 * i] << 8 | (unsigned char)pts[2 * i + 1]);
        if (p + 2 > (size_t)c->tail_len || (c->tail[p] & 0xC0) != 0xC0) {
            free(t->pts);
            free(t->by_plen);
            free(t);
            UNLOCK(e);
            PyErr_SetString(PyExc_ValueError, "a template pointer outside the tail");
            return NULL;
        }
        t->pts[i] = (uint16_t)p;
    }
    t->plen0 = (size_t)plen0;
    t->c = c;
    c->refs++;
    if (t->by_plen) { /* the sample answers its own prefix length */
        t->by_plen[plen0] = c;
        c->refs++;
    }
    const unsigned char *kb = (const unsigned char *)PyBytes_AS_STRING(k);
    int err = 0;
    tmpl *old = ht_put(&e->templates, kb, (size_t)klen, hash_bytes(kb, (size_t)klen), t, &err);
    if (err)
        tmpl_free_cb(e, t);
    else if (old)
        tmpl_free_cb(e, old);
    UNLOCK(e);
    if (err)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
}

/* A GSLB wildcard template's picker for one more prefix length (Python made it on a miss). */
static PyObject *
Engine_insert_template_plen(Engine *e, PyObject *args)
{
    PyObject *k, *v;
    Py_ssize_t plen;
    if (!PyArg_ParseTuple(args, "SnO", &k, &plen, &v))
        return NULL;
    Py_ssize_t klen = PyBytes_GET_SIZE(k);
    if (klen < 5 || klen > MAXKEY || plen < 2 || plen > 255)
        Py_RETURN_FALSE;
    const unsigned char *kb = (const unsigned char *)PyBytes_AS_STRING(k);
    centry *old = NULL;
    LOCK(e);
    tmpl *t = ht_get(&e->templates, kb, (size_t)klen, hash_bytes(kb, (size_t)klen));
    centry *c = t && t->by_plen ? centry_of(e, v) : NULL;
    if (c) {
        c->refs++;
        old = t->by_plen[plen];
        t->by_plen[plen] = c;
    }
    UNLOCK(e);
    if (old)
        centry_release(e, old);
    if (!c && PyErr_Occurred())
        return NULL;
    return PyBool_FromLong(c != NULL);
}

static PyObject *
Engine_clear_templates(Engine *e, PyObject *unused)
{
    empty_table(e, &e->templates, tmpl_free_cb);
    Py_RETURN_NONE;
}

static PyObject *
Engine_clear_misses(Engine *e, PyObject *unused)
{
    empty_table(e, &e->misses, release_cb);
    Py_RETURN_NONE;
}

static PyObject *
Engine_flush_decisions(Engine *e, PyObject *unused)
{
    flush_decisions(e);
    Py_RETURN_NONE;
}

/* Fold native counts into the Python objects; returns the truncated answers since last time.
 * The counts are taken under the mutex and added to the entries after it is released: an
 * entry's `hits` may be Python code (generation.SharedEntry's property), which can hand the GIL
 * to the serve loop's second pass, which then waits for the mutex (a deadlock if it were held). */
typedef struct {
    PyObject *entry;
    unsigned long long hits;
} harvested;

static PyObject *
Engine_harvest(Engine *e, PyObject *unused)
{
    harvested *v = NULL;
    size_t n = 0, cap = 0;
    /* The walk holds the mutex for HARVEST_CHUNK buckets at a time, so the native pass is never
     * held up for a whole table; the tables cannot change meanwhile (that needs the GIL, which
     * this holds throughout), only the counts, which are read under the mutex. */
    LOCK(e);
    for (size_t i = 0; i <= e->ids.mask; i++) {
        if (i % HARVEST_CHUNK == HARVEST_CHUNK - 1) {
            UNLOCK(e);
            sched_yield();
            LOCK(e);
        }
        if (e->ids.s[i].tag) {
            centry *c = e->ids.s[i].val;
            if (!c->hits)
                continue;
            if (n == cap) {
                size_t grow = cap ? 2 * cap : 256;
                harvested *more = realloc(v, grow * sizeof(harvested));
                if (!more)
                    goto taken; /* the rest stays counted here until the next harvest */
                v = more;
                cap = grow;
            }
            v[n].entry = c->entry;
            Py_INCREF(c->entry);
            v[n++].hits = c->hits;
            c->hits = 0;
        }
    }
taken:
    for (size_t i = 0; i <= e->decisions.mask; i++) {
        if (i % HARVEST_CHUNK == HARVEST_CHUNK - 1) {
            UNLOCK(e);
            sched_yield();
            LOCK(e);
        }
        if (e->decisions.s[i].tag)
            fold_decision(e->decisions.s[i].val);
    }
    unsigned long long t = e->truncated;
    e->truncated = 0;
    UNLOCK(e);
    int failed = 0;
    for (size_t i = 0; i < n; i++) {
        if (!failed) {
            PyObject *old = PyObject_GetAttr(v[i].entry, e->s_hits);
            PyObject *add = old ? PyLong_FromUnsignedLongLong(v[i].hits) : NULL;
            PyObject *sum = add ? PyNumber_Add(old, add) : NULL;
            Py_XDECREF(old);
            Py_XDECREF(add);
            if (!sum || PyObject_SetAttr(v[i].entry, e->s_hits, sum) < 0)
                failed = 1;
            Py_XDECREF(sum);
        }
        Py_DECREF(v[i].entry);
    }
    free(v);
    if (failed)
        return NULL;
    return PyLong_FromUnsignedLongLong(t);
}

static PyObject *
Engine_stats(Engine *e, PyObject *unused)
{
    LOCK(e);
    unsigned long long native = e->native, fallback = e->fallback, picks = e->picks;
    Py_ssize_t statics = (Py_ssize_t)e->statics.count, misses = (Py_ssize_t)e->misses.count;
    Py_ssize_t decisions = (Py_ssize_t)e->decisions.count, entries = (Py_ssize_t)e->ids.count;
    Py_ssize_t templates = (Py_ssize_t)e->templates.count, stops = (Py_ssize_t)e->stops.count;
    UNLOCK(e);
    return Py_BuildValue("{sKsKsKsnsnsnsnsnsn}", "native", native, "fallback", fallback, "picks", picks,
                         "statics", statics, "misses", misses, "decisions", decisions, "entries", entries,
                         "templates", templates, "stops", stops);
}

/* One packet through the same path as serve(): native when possible, else responder.answer. */
static PyObject *
Engine_answer_one(Engine *e, PyObject *args)
{
    const char *q, *cl;
    Py_ssize_t n, cn;
    PyObject *responder;
    if (!PyArg_ParseTuple(args, "y#y#O", &q, &n, &cl, &cn, &responder))
        return NULL;
    unsigned char out[BUFSIZE];
    if (n > BUFSIZE)
        return PyObject_CallMethodObjArgs(responder, e->s_answer, PyTuple_GET_ITEM(args, 0),
                                          PyTuple_GET_ITEM(args, 1), NULL);
    unsigned char in[BUFSIZE]; /* a private copy: the caller's bytes may go during a Python call */
    memcpy(in, q, (size_t)n);
    LOCK(e);
    size_t len = answer_native(e, responder, in, (size_t)n, (const unsigned char *)cl, (size_t)cn, out);
    if (len)
        e->native++;
    else
        e->fallback++;
    UNLOCK(e);
    if (e->flush_pending)
        flush_decisions(e);
    if (len)
        return PyBytes_FromStringAndSize((const char *)out, (Py_ssize_t)len);
    return PyObject_CallMethodObjArgs(responder, e->s_answer, PyTuple_GET_ITEM(args, 0), PyTuple_GET_ITEM(args, 1),
                                      NULL);
}

static PyObject *
Engine_serve(Engine *e, PyObject *args)
{
    int fd;
    PyObject *responder;
    int batch = BATCH;
    int pktinfo = 0;
    if (!PyArg_ParseTuple(args, "iO|ii", &fd, &responder, &batch, &pktinfo))
        return NULL;
    if (batch < 1 || batch > BATCH)
        batch = BATCH;
    Py_INCREF(responder);
    Py_INCREF(e);
    unsigned char (*bufs)[BUFSIZE] = malloc(sizeof(unsigned char[BATCH][BUFSIZE]));
    unsigned char (*obufs)[BUFSIZE] = malloc(sizeof(unsigned char[BATCH][BUFSIZE]));
    if (!bufs || !obufs) {
        free(bufs);
        free(obufs);
        Py_DECREF(responder);
        Py_DECREF(e);
        return PyErr_NoMemory();
    }
    struct sockaddr_storage addrs[BATCH];
    struct iovec riov[BATCH], siov[BATCH];
    struct mmsghdr rmsg[BATCH], smsg[BATCH];
    PyObject *outs[BATCH];
    union cbuf {
        char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
        struct cmsghdr align;
    };
    union cbuf rctl[BATCH], sctl[BATCH];
    PyObject *result = NULL;

    size_t lens[BATCH];
    const unsigned char *raws[BATCH];
    size_t rawlens[BATCH], qlens[BATCH];
    unsigned char gated[BATCH]; /* answered (REFUSED) or dropped by the query limits: no RRL */
    for (int i = 0; i < batch; i++) {
        riov[i].iov_base = bufs[i];
        riov[i].iov_len = BUFSIZE;
        memset(&rmsg[i].msg_hdr, 0, sizeof(struct msghdr));
        rmsg[i].msg_hdr.msg_name = &addrs[i];
        rmsg[i].msg_hdr.msg_iov = &riov[i];
        rmsg[i].msg_hdr.msg_iovlen = 1;
        if (pktinfo)
            rmsg[i].msg_hdr.msg_control = rctl[i].buf;
    }
    int used = batch; /* receive headers the kernel wrote back into (their lengths to reset) */
    PyThreadState *ts = PyEval_SaveThread(); /* the loop runs without the GIL */
    for (;;) {
        for (int i = 0; i < used; i++) { /* the kernel only writes these (and msg_flags, msg_len) */
            rmsg[i].msg_hdr.msg_namelen = sizeof(addrs[i]);
            if (pktinfo)
                rmsg[i].msg_hdr.msg_controllen = sizeof(rctl[i].buf);
        }
        used = 0;
        int n = recvmmsg(fd, rmsg, (unsigned int)batch, MSG_WAITFORONE, NULL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) {
                PyEval_RestoreThread(ts);
                int sig = PyErr_CheckSignals();
                ts = PyEval_SaveThread();
                if (sig < 0)
                    goto out;
                continue;
            }
            if (errno == EBADF || errno == ENOTSOCK || errno == EINVAL) {
                result = Py_None;
                goto out;
            }
            continue;
        }
        used = n;
        /* First pass, native only: no GIL, the table mutex held. Its time is shared out evenly
         * among the queries it answered (two clock readings a batch, not two a query). */
        int need_python = 0, answered = 0;
        LOCK(e);
        long long t0 = now_ns();
        for (int i = 0; i < n; i++) {
            struct sockaddr *sa = (struct sockaddr *)&addrs[i];
            lens[i] = 0;
            if (sa->sa_family == AF_INET) {
                raws[i] = (const unsigned char *)&((struct sockaddr_in *)sa)->sin_addr;
                rawlens[i] = 4;
            } else if (sa->sa_family == AF_INET6) {
                raws[i] = (const unsigned char *)&((struct sockaddr_in6 *)sa)->sin6_addr;
                rawlens[i] = 16;
            } else {
                rawlens[i] = 0; /* not an IP client: dropped */
                continue;
            }
            qlens[i] = rmsg[i].msg_len;
            if (rmsg[i].msg_hdr.msg_flags & MSG_TRUNC)
                qlens[i] = BUFSIZE; /* larger than our buffer: Python sees the cut packet and says FORMERR */
            gated[i] = rrl_gate(e->limits, bufs[i], qlens[i], raws[i], rawlens[i], obufs[i], &lens[i]);
            if (gated[i]) {
                if (!lens[i])
                    rawlens[i] = 0; /* dropped */
                continue;
            }
            lens[i] = answer_native(e, NULL, bufs[i], qlens[i], raws[i], rawlens[i], obufs[i]);
            if (lens[i])
                answered++;
            else
                need_python = 1;
        }
        e->native += (unsigned long long)answered;
        UNLOCK(e);
        if (answered)
            observe_even(now_ns() - t0, answered);
        for (int i = 0; i < n; i++)
            outs[i] = NULL;
        if (need_python) {
            /* Second pass, with the GIL: GSLB decisions not cached yet, then everything else. */
            PyEval_RestoreThread(ts);
            for (int i = 0; i < n; i++) {
                if (lens[i] || !rawlens[i])
                    continue;
                long long tq = now_ns();
                LOCK(e);
                lens[i] = answer_native(e, responder, bufs[i], qlens[i], raws[i], rawlens[i], obufs[i]);
                if (lens[i])
                    e->native++;
                else
                    e->fallback++;
                UNLOCK(e);
                if (e->flush_pending)
                    flush_decisions(e);
                if (lens[i]) {
                    observe_ns(now_ns() - tq);
                    continue;
                }
                PyObject *query = PyBytes_FromStringAndSize((const char *)bufs[i], (Py_ssize_t)qlens[i]);
                PyObject *client = PyBytes_FromStringAndSize((const char *)raws[i], (Py_ssize_t)rawlens[i]);
                PyObject *reply = NULL;
                if (query && client)
                    reply = PyObject_CallMethodObjArgs(responder, e->s_answer, query, client, NULL);
                Py_XDECREF(query);
                Py_XDECREF(client);
                if (reply == NULL) {
                    PyErr_WriteUnraisable(responder);
                    continue;
                }
                if (!PyBytes_Check(reply) || PyBytes_GET_SIZE(reply) == 0) {
                    Py_DECREF(reply);
                    continue;
                }
                outs[i] = reply;
                observe_ns(now_ns() - tq);
            }
            ts = PyEval_SaveThread();
        }
        int nout = 0;
        for (int i = 0; i < n; i++) {
            if (rawlens[i] && !gated[i] && (lens[i] || outs[i])
                && rrl_filter(e->limits, bufs[i], qlens[i], raws[i], rawlens[i],
                              lens[i] ? obufs[i] : (const unsigned char *)PyBytes_AS_STRING(outs[i]),
                              lens[i] ? lens[i] : (size_t)PyBytes_GET_SIZE(outs[i]), obufs[i], &lens[i]) == RRL_DROP)
                continue;
            if (lens[i]) {
                siov[nout].iov_base = obufs[i];
                siov[nout].iov_len = lens[i];
            } else if (outs[i]) {
                siov[nout].iov_base = PyBytes_AS_STRING(outs[i]);
                siov[nout].iov_len = (size_t)PyBytes_GET_SIZE(outs[i]);
            } else {
                continue;
            }
            memset(&smsg[nout].msg_hdr, 0, sizeof(struct msghdr));
            smsg[nout].msg_hdr.msg_name = &addrs[i];
            smsg[nout].msg_hdr.msg_namelen = rmsg[i].msg_hdr.msg_namelen;
            smsg[nout].msg_hdr.msg_iov = &siov[nout];
            smsg[nout].msg_hdr.msg_iovlen = 1;
            if (pktinfo)
                reply_source(&rmsg[i].msg_hdr, &smsg[nout].msg_hdr, sctl[nout].buf);
            nout++;
        }
        int done = 0;
        while (done < nout) {
            int sent = sendmmsg(fd, smsg + done, (unsigned int)(nout - done), 0);
            if (sent < 0) {
                if (errno == EINTR)
                    continue;
                done++;
                continue;
            }
            done += sent;
        }
        if (need_python) {
            PyEval_RestoreThread(ts);
            for (int i = 0; i < n; i++)
                Py_XDECREF(outs[i]);
            ts = PyEval_SaveThread();
        }
    }
out:
    PyEval_RestoreThread(ts);
    Py_XINCREF(result);
    free(bufs);
    free(obufs);
    Py_DECREF(responder);
    Py_DECREF(e);
    return result;
}

static PyObject *
Engine_set_limits(Engine *e, PyObject *cfg)
{
    return rrl_py_set(&e->limits, cfg);
}

static PyObject *
Engine_limit_stats(Engine *e, PyObject *unused)
{
    return rrl_py_stats(e->limits);
}

static PyObject *
Engine_limit_one(Engine *e, PyObject *args)
{
    return rrl_py_one(e->limits, args);
}

static PyMethodDef Engine_methods[] = {
    {"load", (PyCFunction)Engine_load, METH_O, "load(table): replace every table with this dict[bytes, Entry]."},
    {"insert", (PyCFunction)Engine_insert, METH_VARARGS, "insert(key, entry): a miss Python compiled."},
    {"clear_misses", (PyCFunction)Engine_clear_misses, METH_NOARGS, "Forget the misses."},
    {"add_stops", (PyCFunction)Engine_add_stops, METH_O, "add_stops(names): where template walks stop."},
    {"set_bulk", (PyCFunction)Engine_set_bulk, METH_O, "set_bulk(stores): bulk zones answered from their stores."},
    {"insert_template", (PyCFunction)Engine_insert_template, METH_VARARGS,
     "insert_template(key, entry, plen0, pointers, stops): a table.Template and the stop names it needs."},
    {"clear_templates", (PyCFunction)Engine_clear_templates, METH_NOARGS, "Forget the templates."},
    {"insert_template_plen", (PyCFunction)Engine_insert_template_plen, METH_VARARGS,
     "A GSLB wildcard template's picker for one prefix length: (key, plen, entry) -> inserted."},
    {"flush_decisions", (PyCFunction)Engine_flush_decisions, METH_NOARGS,
     "Forget every GSLB decision (health changed); their counts are folded first."},
    {"harvest", (PyCFunction)Engine_harvest, METH_NOARGS,
     "Add native hits to Entry.hits and decision counts to their dicts; returns truncated answers since last."},
    {"stats", (PyCFunction)Engine_stats, METH_NOARGS, "Engine counters and table sizes."},
    {"answer_one", (PyCFunction)Engine_answer_one, METH_VARARGS,
     "answer_one(query, client, responder): the reply serve() would send (None: nothing)."},
    {"serve", (PyCFunction)Engine_serve, METH_VARARGS,
     "serve(fd, responder, batch=64, pktinfo=0): answer UDP datagrams until the socket closes."},
    {"set_limits", (PyCFunction)Engine_set_limits, METH_O,
     "set_limits(cfg | None): RRL and query limits for serve() (abuse_config.native_limits builds cfg)."},
    {"limit_stats", (PyCFunction)Engine_limit_stats, METH_NOARGS, "The limiter's counters (None: never set)."},
    {"limit_one", (PyCFunction)Engine_limit_one, METH_VARARGS,
     "limit_one(query, client, response|None, now, wall): one limiter decision at these clocks (tests)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject EngineType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gslb.server._engine.Engine",
    .tp_basicsize = sizeof(Engine),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Engine_init,
    .tp_dealloc = (destructor)Engine_dealloc,
    .tp_methods = Engine_methods,
    .tp_doc = "The native answer engine: C tables mirrored from a Responder.",
};

static PyMethodDef module_methods[] = {
    {"histogram", histogram_list, METH_NOARGS, "Queries answered by time taken: <1 us, <2, <4 ... <1024 us, more."},
    {"histogram_sum_ns", histogram_sum_ns, METH_NOARGS, "The exact sum of those times, in nanoseconds."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_engine", NULL, -1, module_methods};

PyMODINIT_FUNC
PyInit__engine(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed ^= (uint64_t)ts.tv_nsec * 0x2545F4914F6CDD1DULL ^ (uint64_t)ts.tv_sec ^ (uint64_t)getpid() << 32;
    if (PyType_Ready(&EngineType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m)
        return NULL;
    Py_INCREF(&EngineType);
    if (PyModule_AddObject(m, "Engine", (PyObject *)&EngineType) < 0) {
        Py_DECREF(&EngineType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
