/*
 * Large plain zones read straight into a bulk_store (bulk_store.h) from the octoDNS YAML, with
 * libyaml's event parser and no Python object per name.
 *
 * This reader is an accelerator for the loader in gslb/zone/load.py, which stays the reference:
 * it accepts only files the loader would take without a single problem (not even a warning) and
 * whose content it can store exactly as the loader's model would hold it: names of plain
 * lower-case labels, records of type A, AAAA, CNAME, MX, TXT, PTR (and NS at the apex), with
 * `type`, `ttl` and `value`/`values` only, each value in the form the loader's fast converters
 * take (gslb/zone/rdata.py FAST), plain scalars only where YAML's resolver keeps them strings.
 * For anything else `parse` says why (with the line) and the caller uses the loader, which words
 * every problem the file has.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <yaml.h>

#include "bulk_store.h"

#define MAX_VALUES 64
#define MAX_SETS 16
#define CAPSULE "gslb.zone.bulk_store"

/* ---- the store being built --------------------------------------------------------------- */

static int
arena_reserve(bulk_store *st, size_t n)
{
    if (st->used + n + 4 <= st->cap)
        return 0;
    size_t cap = st->cap ? st->cap : (1 << 20);
    while (cap < st->used + n + 4)
        cap *= 2;
    if (cap > 0xFFFFFFF0u)
        return -1; /* offsets are 32-bit */
    unsigned char *p = realloc(st->arena, cap);
    if (!p)
        return -1;
    st->arena = p;
    st->cap = cap;
    return 0;
}

static int
index_grow(bulk_store *st)
{
    size_t n = st->slots ? (st->mask + 1) * 2 : 1024;
    uint32_t *slots = calloc(n, sizeof(uint32_t)), *tags = calloc(n, sizeof(uint32_t));
    if (!slots || !tags) {
        free(slots);
        free(tags);
        return -1;
    }
    if (st->slots)
        for (size_t i = 0; i <= st->mask; i++) {
            uint32_t off = st->slots[i];
            if (!off)
                continue;
            const unsigned char *node = st->arena + off - 1;
            uint64_t h = bulk_hash(node + 4, node[0]);
            size_t j = (size_t)h & (n - 1);
            while (slots[j])
                j = (j + 1) & (n - 1);
            slots[j] = off;
            tags[j] = (uint32_t)(h >> 32);
        }
    free(st->slots);
    free(st->tags);
    st->slots = slots;
    st->tags = tags;
    st->mask = n - 1;
    return 0;
}

/* Index the node at arena offset `off`, replacing an empty non-terminal of the same name.
 * Returns 0, 1 when the name already has data (a duplicate), -1 on no memory. */
static int
index_put(bulk_store *st, uint32_t off)
{
    if (!st->slots || (st->count + 1) * 4 > (st->mask + 1) * 3)
        if (index_grow(st) < 0)
            return -1;
    const unsigned char *node = st->arena + off;
    uint64_t h = bulk_hash(node + 4, node[0]);
    uint32_t tag = (uint32_t)(h >> 32);
    for (size_t i = (size_t)h & st->mask;; i = (i + 1) & st->mask) {
        uint32_t cur = st->slots[i];
        if (!cur) {
            st->slots[i] = off + 1;
            st->tags[i] = tag;
            st->count++;
            return 0;
        }
        const unsigned char *old = st->arena + cur - 1;
        if (st->tags[i] == tag && old[0] == node[0] && memcmp(old + 4, node + 4, node[0]) == 0) {
            if (!(old[1] & BULK_ENT))
                return 1;
            st->arena[cur - 1 + 1] |= 0x80; /* the empty non-terminal it replaces: skipped by walks */
            st->slots[i] = off + 1;
            return 0;
        }
    }
}

/* Append a node with no data for `rel` (an ancestor of a name) unless it exists. */
static int
add_ent(bulk_store *st, const unsigned char *rel, size_t rlen)
{
    if (bulk_find(st, rel, rlen))
        return 1;
    if (arena_reserve(st, 4 + rlen) < 0)
        return -1;
    uint32_t off = (uint32_t)st->used;
    unsigned char *p = st->arena + off;
    p[0] = (unsigned char)rlen;
    p[1] = BULK_ENT;
    p[2] = 0;
    p[3] = 0;
    memcpy(p + 4, rel, rlen);
    st->used = (st->used + 4 + rlen + 3) & ~(size_t)3;
    return index_put(st, off) < 0 ? -1 : 0;
}

static void
store_free(bulk_store *st)
{
    free(st->arena);
    free(st->slots);
    free(st->tags);
    memset(st, 0, sizeof(*st));
}

/* ---- one name's records while it is read --------------------------------------------------- */

typedef struct {
    char *s;
    size_t n, cap;
    int plain;
    int set;
} scalar;

typedef struct {
    int is_map;
    scalar v;          /* the value itself, or a mapping's `exchange` */
    scalar pref;       /* a mapping's `preference` */
    int nkeys;
} value;

typedef struct {
    scalar type, ttl;
    value vals[MAX_VALUES];
    int nvals;
    int has_value, has_values;
} record;

typedef struct {
    unsigned type;
    uint32_t ttl;
    unsigned count;
    unsigned char data[65536 + 2]; /* u16 length + rdata, per value */
    size_t len;
} set_buf;

typedef struct {
    yaml_parser_t parser;
    yaml_event_t ev;
    int have_ev;
    bulk_store *st;
    uint32_t default_ttl, max_ttl;
    char *why;
    size_t whylen;
    record rec;
    set_buf *sets;
    int nsets;
    unsigned char rel[256];
    size_t rlen;
    int apex_ns;
} reader;

static int
bail(reader *r, const char *what)
{
    size_t line = r->have_ev ? r->ev.start_mark.line + 1 : r->parser.problem_mark.line + 1;
    snprintf(r->why, r->whylen, "line %zu: %s", line, what);
    return -1;
}

static int
next(reader *r)
{
    if (r->have_ev)
        yaml_event_delete(&r->ev);
    r->have_ev = 0;
    if (!yaml_parser_parse(&r->parser, &r->ev))
        return bail(r, "YAML the full loader words");
    r->have_ev = 1;
    if (r->ev.type == YAML_ALIAS_EVENT)
        return bail(r, "an alias");
    if (r->ev.type == YAML_SCALAR_EVENT && (r->ev.data.scalar.anchor || r->ev.data.scalar.tag))
        return bail(r, "an anchor or tag");
    if (r->ev.type == YAML_MAPPING_START_EVENT && (r->ev.data.mapping_start.anchor || r->ev.data.mapping_start.tag))
        return bail(r, "an anchor or tag");
    if (r->ev.type == YAML_SEQUENCE_START_EVENT
        && (r->ev.data.sequence_start.anchor || r->ev.data.sequence_start.tag))
        return bail(r, "an anchor or tag");
    return 0;
}

static int
take_scalar(reader *r, scalar *s)
{
    size_t n = r->ev.data.scalar.length;
    if (n + 1 > s->cap) {
        char *p = realloc(s->s, n + 64);
        if (!p)
            return bail(r, "no memory");
        s->s = p;
        s->cap = n + 64;
    }
    memcpy(s->s, r->ev.data.scalar.value, n);
    s->s[n] = 0;
    s->n = n;
    s->plain = r->ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    s->set = 1;
    return 0;
}

static int
is_word(const scalar *s, const char *const *words)
{
    for (; *words; words++)
        if (strcmp(s->s, *words) == 0)
            return 1;
    return 0;
}

static const char *const NULLS[] = {"", "~", "null", "Null", "NULL", NULL};
static const char *const BOOLS[] = {"yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false",
                                    "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", NULL};

/* A plain scalar YAML's resolver surely leaves a string (not null, bool, int, float, timestamp,
 * merge or value): the loader sees exactly this text. Conservative: unsure is "no". */
static int
plain_is_string(const scalar *s)
{
    if (!s->plain)
        return 1;
    if (is_word(s, NULLS) || is_word(s, BOOLS))
        return 0;
    unsigned char c = (unsigned char)s->s[0];
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_')
        return 1;
    if (c < '0' || c > '9')
        return 0;
    size_t dots = 0, colons = 0, dashes = 0, letters = 0, hexletters = 0, other = 0;
    for (size_t i = 0; i < s->n; i++) {
        unsigned char ch = (unsigned char)s->s[i];
        if (ch == '.')
            dots++;
        else if (ch == ':')
            colons++;
        else if (ch == '-')
            dashes++;
        else if ((ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))
            hexletters++;
        else if ((ch >= 'g' && ch <= 'z') || (ch >= 'G' && ch <= 'Z'))
            letters++;
        else if (ch < '0' || ch > '9')
            other++;
    }
    if (dashes || other || strchr(s->s, 'x') || strchr(s->s, 'X'))
        return 0; /* timestamps, signs, underscores, hexadecimal: not worth the doubt */
    if (colons) /* sexagesimal numbers are digits and single colons only */
        return (hexletters || letters || strstr(s->s, "::")) && !dots;
    return letters || dots >= 2; /* ints are digits; a float has one dot and digits */
}

/* A plain decimal integer as YAML resolves it to the same number; -1 otherwise. */
static long
plain_uint(const scalar *s, long hi)
{
    if (!s->plain || s->n == 0 || s->n > 9 || (s->s[0] == '0' && s->n > 1))
        return -1;
    long v = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->s[i] < '0' || s->s[i] > '9')
            return -1;
        v = v * 10 + (s->s[i] - '0');
    }
    return v <= hi ? v : -1;
}

/* A record key's relative name (the loader's `fast_absolute` form) as lower-case wire labels. */
static int
owner_wire(reader *r, const scalar *s)
{
    r->rlen = 0;
    if (s->plain ? is_word(s, NULLS) : s->n == 0)
        return 0; /* the apex */
    if (s->plain) {
        long v = plain_uint(s, 999999999L);
        if (v < 0 && !plain_is_string(s))
            return bail(r, "a name YAML reads as a number or another non-string");
    }
    size_t pos = 0, start = 0;
    for (size_t i = 0; i <= s->n; i++) {
        unsigned char ch = i < s->n ? (unsigned char)s->s[i] : '.';
        if (ch == '.') {
            size_t len = i - start;
            if (len == 0 || len > 63)
                return bail(r, "a name the loader words");
            if (memchr(s->s + start, '*', len) && (len != 1 || start != 0))
                return bail(r, "'*' not a whole leftmost label");
            if (pos + 1 + len > 255)
                return bail(r, "a name too long");
            r->rel[pos++] = (unsigned char)len;
            memcpy(r->rel + pos, s->s + start, len);
            pos += len;
            start = i + 1;
            continue;
        }
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '*';
        if (!ok)
            return bail(r, "a name with characters the loader treats otherwise");
    }
    if (pos + r->st->olen > 255)
        return bail(r, "a name too long");
    r->rlen = pos;
    return 0;
}

/* An absolute plain name (rdata.py `_plain_name`) into wire form (case kept); its length or -1. */
static int
target_wire(const scalar *s, unsigned char *out)
{
    if (!plain_is_string(s) || s->n < 2 || s->n > 254 || s->s[s->n - 1] != '.')
        return -1;
    size_t pos = 0, start = 0;
    for (size_t i = 0; i < s->n; i++) {
        unsigned char ch = (unsigned char)s->s[i];
        if (ch == '.') {
            size_t len = i - start;
            if (len == 0 || len > 63)
                return -1;
            out[pos++] = (unsigned char)len;
            memcpy(out + pos, s->s + start, len);
            pos += len;
            start = i + 1;
        } else if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-'
                     || ch == '_')) {
            return -1;
        }
    }
    out[pos++] = 0;
    return pos <= 255 ? (int)pos : -1;
}

static int
ipv4_canonical(const char *s, unsigned char *out)
{
    for (int octet = 0; octet < 4; octet++) {
        if (*s < '0' || *s > '9')
            return 0;
        unsigned v = 0, digits = 0;
        const char *first = s;
        while (*s >= '0' && *s <= '9') {
            v = v * 10 + (unsigned)(*s - '0');
            s++;
            if (++digits > 3)
                return 0;
        }
        if (v > 255 || (digits > 1 && *first == '0'))
            return 0;
        out[octet] = (unsigned char)v;
        if (octet < 3 && *s++ != '.')
            return 0;
    }
    return *s == 0;
}

static int
ipv6_hex(const scalar *s, unsigned char *out)
{
    if (s->n < 2 || s->n > 39)
        return 0;
    for (size_t i = 0; i < s->n; i++) {
        char ch = s->s[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F') || ch == ':'))
            return 0;
    }
    return inet_pton(AF_INET6, s->s, out) == 1;
}

/* TXT text (rdata.txt_strings): `\;` unescaped, character-strings of at most 255 octets. */
static int
txt_wire(const scalar *s, unsigned char *out, size_t cap)
{
    if (s->n == 0 || s->n > 4000 || (s->n > 1 && s->s[0] == '"' && s->s[s->n - 1] == '"'))
        return -1;
    unsigned char raw[4096];
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (s->s[i] == ';') {
            if (i == 0 || s->s[i - 1] != '\\')
                return -1; /* the loader's error */
            raw[n - 1] = ';';
            continue;
        }
        raw[n++] = (unsigned char)s->s[i];
    }
    size_t pos = 0;
    for (size_t i = 0; i < n; i += 255) {
        size_t len = n - i > 255 ? 255 : n - i;
        if (pos + 1 + len > cap)
            return -1;
        out[pos++] = (unsigned char)len;
        memcpy(out + pos, raw + i, len);
        pos += len;
    }
    return (int)pos;
}

static const struct {
    const char *name;
    unsigned type;
} TYPES[] = {{"A", 1}, {"AAAA", 28}, {"CNAME", 5}, {"MX", 15}, {"TXT", 16}, {"PTR", 12}, {"NS", 2}};

/* The current record into a new RRset of this name (r->sets[r->nsets]). */
static int
finish_record(reader *r)
{
    record *rec = &r->rec;
    if (!rec->type.set || rec->type.n == 0)
        return bail(r, "a record without a type");
    unsigned type = 0;
    for (size_t i = 0; i < sizeof(TYPES) / sizeof(TYPES[0]); i++)
        if (strcmp(rec->type.s, TYPES[i].name) == 0)
            type = TYPES[i].type;
    if (!type || !plain_is_string(&rec->type))
        return bail(r, "a record type this reader does not store");
    if (type == 2 && r->rlen)
        return bail(r, "a delegation");
    uint32_t ttl = r->default_ttl;
    if (rec->ttl.set) {
        long v = plain_uint(&rec->ttl, (long)r->max_ttl);
        if (v < 0)
            return bail(r, "a TTL the loader reads otherwise");
        ttl = (uint32_t)v;
    }
    if (rec->has_value == rec->has_values || rec->nvals == 0)
        return bail(r, "value/values the loader words");
    if (type == 5 && rec->nvals > 1)
        return bail(r, "CNAME with several values");
    if (r->nsets >= MAX_SETS)
        return bail(r, "too many types at one name");
    for (int i = 0; i < r->nsets; i++)
        if (r->sets[i].type == type)
            return bail(r, "a type defined twice at one name");
    set_buf *set = &r->sets[r->nsets];
    set->type = type;
    set->ttl = ttl;
    set->count = 0;
    set->len = 0;
    for (int i = 0; i < rec->nvals; i++) {
        value *v = &rec->vals[i];
        unsigned char rd[4100];
        int n = -1;
        if (type == 15) {
            long pref = v->is_map && v->nkeys == 2 && v->pref.set ? plain_uint(&v->pref, 65535) : -1;
            if (pref >= 0 && v->v.set) {
                n = target_wire(&v->v, rd + 2);
                if (n >= 0) {
                    rd[0] = (unsigned char)(pref >> 8);
                    rd[1] = (unsigned char)pref;
                    n += 2;
                }
            }
        } else if (!v->is_map) {
            if (type == 1 && plain_is_string(&v->v) && ipv4_canonical(v->v.s, rd))
                n = 4;
            else if (type == 28 && plain_is_string(&v->v) && ipv6_hex(&v->v, rd))
                n = 16;
            else if (type == 16 && plain_is_string(&v->v))
                n = txt_wire(&v->v, rd, sizeof(rd));
            else if (type == 5 || type == 12 || type == 2)
                n = target_wire(&v->v, rd);
        }
        if (n < 0)
            return bail(r, "a value this reader does not take");
        /* duplicates: the loader warns (and drops them) */
        size_t p = 0;
        for (unsigned j = 0; j < set->count; j++) {
            size_t len = bulk_u16(set->data + p);
            if (len == (size_t)n && memcmp(set->data + p + 2, rd, len) == 0)
                return bail(r, "a duplicate value");
            p += 2 + len;
        }
        if (set->len + 2 + (size_t)n > 65000)
            return bail(r, "an RRset too large");
        set->data[set->len] = (unsigned char)(n >> 8);
        set->data[set->len + 1] = (unsigned char)n;
        memcpy(set->data + set->len + 2, rd, (size_t)n);
        set->len += 2 + (size_t)n;
        set->count++;
    }
    if (type == 2)
        r->apex_ns = 1;
    r->nsets++;
    return 0;
}

/* A value: a scalar, or a one-level mapping (MX's preference and exchange). */
static int
read_value(reader *r, value *v)
{
    v->is_map = 0;
    v->nkeys = 0;
    v->v.set = v->pref.set = 0;
    if (r->ev.type == YAML_SCALAR_EVENT)
        return take_scalar(r, &v->v);
    if (r->ev.type != YAML_MAPPING_START_EVENT)
        return bail(r, "a value this reader does not take");
    v->is_map = 1;
    scalar key = {0};
    for (;;) {
        if (next(r) < 0)
            goto fail;
        if (r->ev.type == YAML_MAPPING_END_EVENT)
            break;
        if (r->ev.type != YAML_SCALAR_EVENT || take_scalar(r, &key) < 0 || next(r) < 0)
            goto fail;
        if (r->ev.type != YAML_SCALAR_EVENT) {
            bail(r, "a nested value");
            goto fail;
        }
        v->nkeys++;
        if (strcmp(key.s, "preference") == 0 && !v->pref.set) {
            if (take_scalar(r, &v->pref) < 0)
                goto fail;
        } else if (strcmp(key.s, "exchange") == 0 && !v->v.set) {
            if (take_scalar(r, &v->v) < 0)
                goto fail;
        } else {
            bail(r, "a value key this reader does not take");
            goto fail;
        }
    }
    free(key.s);
    return 0;
fail:
    free(key.s);
    return -1;
}

/* One record mapping (the event is its MAPPING_START). */
static int
read_record(reader *r)
{
    record *rec = &r->rec;
    rec->type.set = rec->ttl.set = 0;
    rec->nvals = 0;
    rec->has_value = rec->has_values = 0;
    scalar key = {0};
    for (;;) {
        if (next(r) < 0)
            goto fail;
        if (r->ev.type == YAML_MAPPING_END_EVENT)
            break;
        if (r->ev.type != YAML_SCALAR_EVENT || take_scalar(r, &key) < 0) {
            bail(r, "a record key this reader does not take");
            goto fail;
        }
        if (next(r) < 0)
            goto fail;
        int is_type = strcmp(key.s, "type") == 0, is_ttl = strcmp(key.s, "ttl") == 0;
        int is_value = strcmp(key.s, "value") == 0, is_values = strcmp(key.s, "values") == 0;
        if (is_type || is_ttl) {
            scalar *s = is_type ? &rec->type : &rec->ttl;
            if (s->set || r->ev.type != YAML_SCALAR_EVENT || take_scalar(r, s) < 0) {
                bail(r, "a record's type or ttl the loader words");
                goto fail;
            }
        } else if ((is_value && !rec->has_value) || (is_values && !rec->has_values)) {
            if (is_value)
                rec->has_value = 1;
            else
                rec->has_values = 1;
            if (is_values && r->ev.type == YAML_SEQUENCE_START_EVENT) {
                for (;;) {
                    if (next(r) < 0)
                        goto fail;
                    if (r->ev.type == YAML_SEQUENCE_END_EVENT)
                        break;
                    if (rec->nvals >= MAX_VALUES) {
                        bail(r, "too many values");
                        goto fail;
                    }
                    if (read_value(r, &rec->vals[rec->nvals++]) < 0)
                        goto fail;
                }
            } else {
                if (rec->nvals >= MAX_VALUES || read_value(r, &rec->vals[rec->nvals++]) < 0)
                    goto fail;
            }
        } else {
            bail(r, "a record key this reader does not take");
            goto fail;
        }
    }
    free(key.s);
    return finish_record(r);
fail:
    free(key.s);
    return -1;
}

/* The name just read (r->rel, r->sets) into the store, with its empty non-terminals. */
static int
store_name(reader *r)
{
    bulk_store *st = r->st;
    if (r->nsets == 0)
        return bail(r, "a name without records");
    int cname = 0;
    for (int i = 0; i < r->nsets; i++)
        cname |= r->sets[i].type == 5;
    if (cname && (r->nsets > 1 || r->rlen == 0))
        return bail(r, "CNAME beside other data or at the apex");
    size_t size = 4 + r->rlen;
    for (int i = 0; i < r->nsets; i++)
        size += BULK_SET_HEAD + r->sets[i].len;
    if (arena_reserve(st, size) < 0)
        return bail(r, "no memory");
    uint32_t off = (uint32_t)st->used;
    unsigned char *p = st->arena + off;
    p[0] = (unsigned char)r->rlen;
    p[1] = r->rlen ? 0 : BULK_APEX;
    p[2] = (unsigned char)r->nsets;
    p[3] = 0;
    memcpy(p + 4, r->rel, r->rlen);
    p += 4 + r->rlen;
    for (int i = 0; i < r->nsets; i++) {
        set_buf *s = &r->sets[i];
        unsigned char head[BULK_SET_HEAD] = {(unsigned char)(s->type >> 8), (unsigned char)s->type,
                                             (unsigned char)(s->ttl >> 24), (unsigned char)(s->ttl >> 16),
                                             (unsigned char)(s->ttl >> 8), (unsigned char)s->ttl,
                                             (unsigned char)(s->count >> 8), (unsigned char)s->count,
                                             (unsigned char)(s->len >> 24), (unsigned char)(s->len >> 16),
                                             (unsigned char)(s->len >> 8), (unsigned char)s->len};
        memcpy(p, head, BULK_SET_HEAD);
        memcpy(p + BULK_SET_HEAD, s->data, s->len);
        p += BULK_SET_HEAD + s->len;
        st->rrsets++;
        st->records += s->count;
    }
    st->used = (st->used + size + 3) & ~(size_t)3;
    int rc = index_put(st, off);
    if (rc < 0)
        return bail(r, "no memory");
    if (rc > 0)
        return bail(r, "a name defined twice");
    st->names++;
    for (size_t pos = r->rlen ? (size_t)r->rel[0] + 1 : 0; pos < r->rlen; pos += (size_t)r->rel[pos] + 1) {
        rc = add_ent(st, r->rel + pos, r->rlen - pos);
        if (rc < 0)
            return bail(r, "no memory");
        if (rc > 0)
            break; /* it exists, and so do the names above it */
    }
    return 0;
}

/* Apex name servers inside the zone need an address here (load._check_targets). */
static int
check_apex_glue(reader *r)
{
    bulk_store *st = r->st;
    const unsigned char *apex = bulk_find(st, (const unsigned char *)"", 0);
    const unsigned char *ns = apex ? bulk_rrset(apex, 2) : NULL;
    if (!ns)
        return bail(r, "no NS at the apex (the loader warns)");
    const unsigned char *rd = ns + BULK_SET_HEAD;
    for (unsigned i = 0; i < bulk_u16(ns + 6); i++) {
        size_t len = bulk_u16(rd);
        unsigned char low[256];
        bulk_lower_name(low, rd + 2, len);
        if (bulk_below(low, len, st->origin, st->olen)) {
            const unsigned char *node = bulk_find(st, low, len - st->olen);
            if (!node || (node[1] & BULK_ENT) || (!bulk_rrset(node, 1) && !bulk_rrset(node, 28)))
                return bail(r, "an in-zone name server without an address (the loader words it)");
        }
        rd += 2 + len;
    }
    return 0;
}

static int
read_zone(reader *r)
{
    for (int i = 0; i < 3; i++)
        if (next(r) < 0)
            return -1;
    if (r->ev.type != YAML_MAPPING_START_EVENT)
        return bail(r, "the root is not a mapping");
    scalar key = {0};
    int rc = -1;
    for (;;) {
        if (next(r) < 0)
            goto out;
        if (r->ev.type == YAML_MAPPING_END_EVENT)
            break;
        if (r->ev.type != YAML_SCALAR_EVENT || take_scalar(r, &key) < 0) {
            bail(r, "a name that is not a scalar");
            goto out;
        }
        if (owner_wire(r, &key) < 0 || next(r) < 0)
            goto out;
        r->nsets = 0;
        if (r->ev.type == YAML_MAPPING_START_EVENT) {
            if (read_record(r) < 0)
                goto out;
        } else if (r->ev.type == YAML_SEQUENCE_START_EVENT) {
            for (;;) {
                if (next(r) < 0)
                    goto out;
                if (r->ev.type == YAML_SEQUENCE_END_EVENT)
                    break;
                if (r->ev.type != YAML_MAPPING_START_EVENT) {
                    bail(r, "a record that is not a mapping");
                    goto out;
                }
                if (read_record(r) < 0)
                    goto out;
            }
        } else {
            bail(r, "a record that is not a mapping");
            goto out;
        }
        if (store_name(r) < 0)
            goto out;
    }
    if (next(r) < 0)
        goto out;
    if (r->ev.type != YAML_DOCUMENT_END_EVENT || next(r) < 0 || r->ev.type != YAML_STREAM_END_EVENT) {
        bail(r, "more than one document");
        goto out;
    }
    rc = check_apex_glue(r);
out:
    free(key.s);
    return rc;
}

/* ---- the Python type ------------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    bulk_store st;
    uint32_t *order;    /* the names with data in canonical order (AXFR), made on first use */
    size_t norder;
    unsigned char *wbuf;
    unsigned char *retired[64]; /* others lists replaced */
    int nretired;
} Store;

static void
Store_dealloc(Store *self)
{
    for (int i = 0; i < self->nretired; i++)
        free(self->retired[i]);
    free((void *)self->st.others);
    free(self->order);
    store_free(&self->st);
    free(self->wbuf);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject StoreType;

static void
free_record(record *rec)
{
    free(rec->type.s);
    free(rec->ttl.s);
    for (int i = 0; i < MAX_VALUES; i++) {
        free(rec->vals[i].v.s);
        free(rec->vals[i].pref.s);
    }
}

/* parse(data: bytes, origin: bytes (lower-cased wire), default_ttl, max_ttl) -> Store | str */
static PyObject *
bulk_parse(PyObject *mod, PyObject *args)
{
    Py_buffer data, origin;
    unsigned long default_ttl, max_ttl;
    if (!PyArg_ParseTuple(args, "y*y*kk", &data, &origin, &default_ttl, &max_ttl))
        return NULL;
    if (origin.len < 1 || origin.len > 255) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&origin);
        PyErr_SetString(PyExc_ValueError, "bad origin");
        return NULL;
    }
    Store *self = PyObject_New(Store, &StoreType);
    if (!self) {
        PyBuffer_Release(&data);
        PyBuffer_Release(&origin);
        return NULL;
    }
    memset(&self->st, 0, sizeof(self->st));
    self->wbuf = NULL;
    self->nretired = 0;
    self->order = NULL;
    self->norder = 0;
    memcpy(self->st.origin, origin.buf, (size_t)origin.len);
    self->st.olen = (size_t)origin.len;
    char why[200] = "";
    reader *r = calloc(1, sizeof(reader));
    set_buf *sets = r ? malloc(sizeof(set_buf) * MAX_SETS) : NULL;
    int rc = -1;
    if (r && sets) {
        r->st = &self->st;
        r->default_ttl = (uint32_t)default_ttl;
        r->max_ttl = (uint32_t)max_ttl;
        r->why = why;
        r->whylen = sizeof(why);
        r->sets = sets;
        yaml_parser_initialize(&r->parser);
        yaml_parser_set_input_string(&r->parser, data.buf, (size_t)data.len);
        Py_BEGIN_ALLOW_THREADS
        rc = read_zone(r);
        Py_END_ALLOW_THREADS
        if (r->have_ev)
            yaml_event_delete(&r->ev);
        yaml_parser_delete(&r->parser);
        free_record(&r->rec);
    } else {
        snprintf(why, sizeof(why), "no memory");
    }
    free(sets);
    free(r);
    PyBuffer_Release(&data);
    PyBuffer_Release(&origin);
    if (rc < 0) {
        Py_DECREF(self);
        return PyUnicode_FromString(why);
    }
    return (PyObject *)self;
}

static PyObject *
sets_of(const unsigned char *node)
{
    PyObject *out = PyList_New(0);
    const unsigned char *p = node + 4 + node[0];
    for (unsigned i = 0; out && i < node[2]; i++) {
        unsigned count = bulk_u16(p + 6);
        PyObject *rds = PyList_New(count);
        const unsigned char *rd = p + BULK_SET_HEAD;
        for (unsigned j = 0; rds && j < count; j++) {
            size_t len = bulk_u16(rd);
            PyObject *b = PyBytes_FromStringAndSize((const char *)rd + 2, (Py_ssize_t)len);
            if (!b) {
                Py_CLEAR(rds);
                break;
            }
            PyList_SET_ITEM(rds, j, b);
            rd += 2 + len;
        }
        PyObject *t = rds ? Py_BuildValue("(IkN)", bulk_u16(p), (unsigned long)bulk_u32(p + 2), rds) : NULL;
        if (!t || PyList_Append(out, t) < 0) {
            Py_XDECREF(t);
            Py_CLEAR(out);
            break;
        }
        Py_DECREF(t);
        p += BULK_SET_HEAD + bulk_u32(p + 8);
    }
    return out;
}

/* node(rel) -> [(type, ttl, [rdata wire, ...]), ...] | [] for an empty non-terminal | None */
static PyObject *
Store_node(Store *self, PyObject *arg)
{
    char *rel;
    Py_ssize_t rlen;
    if (PyBytes_AsStringAndSize(arg, &rel, &rlen) < 0)
        return NULL;
    const unsigned char *node = bulk_find(&self->st, (const unsigned char *)rel, (size_t)rlen);
    if (!node)
        Py_RETURN_NONE;
    if (node[1] & BULK_ENT)
        return PyList_New(0);
    return sets_of(node);
}

static size_t
node_size(const unsigned char *node)
{
    size_t size = 4 + node[0];
    const unsigned char *p = node + size;
    for (unsigned i = 0; i < node[2]; i++) {
        size_t n = BULK_SET_HEAD + bulk_u32(p + 8);
        size += n;
        p += n;
    }
    return (size + 3) & ~(size_t)3;
}

/* walk(offset, limit) -> ([(rel, sets), ...], next offset or -1): every name with data, in
 * file order, a chunk at a time (AXFR, iteration over the model). */
static PyObject *
Store_walk(Store *self, PyObject *args)
{
    Py_ssize_t off, limit;
    if (!PyArg_ParseTuple(args, "nn", &off, &limit))
        return NULL;
    PyObject *out = PyList_New(0);
    size_t pos = (size_t)off;
    while (out && pos < self->st.used && limit > 0) {
        const unsigned char *node = self->st.arena + pos;
        pos += node_size(node);
        if (node[1] & (BULK_ENT | 0x80))
            continue;
        PyObject *sets = sets_of(node);
        PyObject *t = sets ? Py_BuildValue("(y#N)", node + 4, (Py_ssize_t)node[0], sets) : NULL;
        if (!t || PyList_Append(out, t) < 0)
            Py_CLEAR(out);
        Py_XDECREF(t);
        limit--;
    }
    if (!out)
        return NULL;
    return Py_BuildValue("(Nn)", out, pos < self->st.used ? (Py_ssize_t)pos : (Py_ssize_t)-1);
}

/* RFC 4034 6.1 canonical order of two relative lower-cased wire names: label by label from
 * the right, each compared as octets (a shorter label that is a prefix sorts first). */
static const unsigned char *sort_arena;

static int
canonical_cmp(const void *pa, const void *pb)
{
    const unsigned char *a = sort_arena + *(const uint32_t *)pa, *b = sort_arena + *(const uint32_t *)pb;
    const unsigned char *la[128], *lb[128];
    int na = 0, nb = 0;
    for (size_t p = 0; p < a[0]; p += (size_t)a[4 + p] + 1)
        la[na++] = a + 4 + p;
    for (size_t p = 0; p < b[0]; p += (size_t)b[4 + p] + 1)
        lb[nb++] = b + 4 + p;
    while (na && nb) {
        const unsigned char *x = la[--na], *y = lb[--nb];
        size_t n = x[0] < y[0] ? x[0] : y[0];
        int c = memcmp(x + 1, y + 1, n);
        if (c)
            return c;
        if (x[0] != y[0])
            return x[0] < y[0] ? -1 : 1;
    }
    return na - nb;
}

static int
make_order(Store *self)
{
    bulk_store *st = &self->st;
    uint32_t *order = malloc((st->names + 1) * sizeof(uint32_t));
    if (!order)
        return -1;
    size_t n = 0;
    for (size_t pos = 0; pos < st->used && n <= st->names; pos += node_size(st->arena + pos)) {
        const unsigned char *node = st->arena + pos;
        if (!(node[1] & (BULK_ENT | BULK_APEX | 0x80)))
            order[n++] = (uint32_t)pos;
    }
    sort_arena = st->arena; /* under the GIL: one sort at a time */
    qsort(order, n, sizeof(uint32_t), canonical_cmp);
    self->order = order;
    self->norder = n;
    return 0;
}

/* axfr_chunk(index, octets) -> (records, count, next index or -1): the names below the apex in
 * canonical order from `index`, each RRset in type order, as uncompressed records, until
 * about `octets` are written (at least one name). AXFR messages are these appended. */
static PyObject *
Store_axfr_chunk(Store *self, PyObject *args)
{
    Py_ssize_t index, octets;
    if (!PyArg_ParseTuple(args, "nn", &index, &octets))
        return NULL;
    if (!self->order && make_order(self) < 0)
        return PyErr_NoMemory();
    bulk_store *st = &self->st;
    size_t cap = (size_t)octets + 70000, len = 0, count = 0, i = (size_t)index;
    unsigned char *out = malloc(cap);
    if (!out)
        return PyErr_NoMemory();
    for (; i < self->norder && (len < (size_t)octets || count == 0); i++) {
        const unsigned char *node = st->arena + self->order[i];
        const unsigned char *sets[256];
        unsigned nsets = node[2];
        const unsigned char *p = node + 4 + node[0];
        for (unsigned k = 0; k < nsets; k++) {
            sets[k] = p;
            p += BULK_SET_HEAD + bulk_u32(p + 8);
        }
        for (unsigned k = 1; k < nsets; k++) /* type order, as sorted(node.items()) */
            for (unsigned j = k; j > 0 && bulk_u16(sets[j]) < bulk_u16(sets[j - 1]); j--) {
                const unsigned char *t = sets[j];
                sets[j] = sets[j - 1];
                sets[j - 1] = t;
            }
        size_t owner = (size_t)node[0] + st->olen;
        for (unsigned k = 0; k < nsets; k++) {
            const unsigned char *set = sets[k];
            const unsigned char *rd = set + BULK_SET_HEAD;
            for (unsigned j = 0; j < bulk_u16(set + 6); j++) {
                size_t rdlen = bulk_u16(rd);
                if (len + owner + 10 + rdlen > cap) {
                    unsigned char *bigger = realloc(out, cap * 2 + owner + rdlen);
                    if (!bigger) {
                        free(out);
                        return PyErr_NoMemory();
                    }
                    out = bigger;
                    cap = cap * 2 + owner + rdlen;
                }
                memcpy(out + len, node + 4, node[0]);
                memcpy(out + len + node[0], st->origin, st->olen);
                len += owner;
                unsigned char fixed[8] = {set[0], set[1], 0, 1, set[2], set[3], set[4], set[5]};
                memcpy(out + len, fixed, 8);
                memcpy(out + len + 8, rd, 2 + rdlen);
                len += 10 + rdlen;
                count++;
                rd += 2 + rdlen;
            }
        }
    }
    PyObject *r = Py_BuildValue("(y#nn)", out, (Py_ssize_t)len, (Py_ssize_t)count,
                                i < self->norder ? (Py_ssize_t)i : (Py_ssize_t)-1);
    free(out);
    return r;
}

/* set_soa(ttl, mname wire, rname wire, the 20 octets of serial..minimum) */
static PyObject *
Store_set_soa(Store *self, PyObject *args)
{
    unsigned long ttl;
    Py_buffer m, rn, fixed;
    if (!PyArg_ParseTuple(args, "ky*y*y*", &ttl, &m, &rn, &fixed))
        return NULL;
    int ok = m.len >= 1 && m.len <= 255 && rn.len >= 1 && rn.len <= 255 && fixed.len == 20;
    if (ok) {
        self->st.soa_ttl = (uint32_t)ttl;
        memcpy(self->st.soa_mname, m.buf, (size_t)m.len);
        memcpy(self->st.soa_rname, rn.buf, (size_t)rn.len);
        memcpy(self->st.soa_fixed, fixed.buf, 20);
        self->st.soa_mlen = (size_t)m.len;
        self->st.soa_rlen = (size_t)rn.len;
        self->st.has_soa = 1;
    }
    PyBuffer_Release(&m);
    PyBuffer_Release(&rn);
    PyBuffer_Release(&fixed);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError, "bad SOA");
        return NULL;
    }
    Py_RETURN_NONE;
}

/* set_others([lower-cased wire of every other zone we serve]): the old list is kept (an engine
 * may be reading it without the GIL) and freed with the store. */
static PyObject *
Store_set_others(Store *self, PyObject *arg)
{
    PyObject *seq = PySequence_Fast(arg, "a list of names");
    if (!seq)
        return NULL;
    size_t total = 0;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *b = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyBytes_Check(b) || PyBytes_GET_SIZE(b) < 1 || PyBytes_GET_SIZE(b) > 255) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "names are wire bytes");
            return NULL;
        }
        total += 1 + (size_t)PyBytes_GET_SIZE(b);
    }
    const unsigned char *old = self->st.others;
    if (old && bulk_u16(old) == total) { /* the same list: nothing to do */
        size_t pos = 2;
        int same = 1;
        for (Py_ssize_t i = 0; same && i < n; i++) {
            PyObject *b = PySequence_Fast_GET_ITEM(seq, i);
            same = old[pos] == PyBytes_GET_SIZE(b) && memcmp(old + pos + 1, PyBytes_AS_STRING(b), old[pos]) == 0;
            pos += 1 + (size_t)old[pos];
        }
        if (same) {
            Py_DECREF(seq);
            Py_RETURN_NONE;
        }
    }
    if (total > 65535 || self->nretired >= 64) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "too many zones");
        return NULL;
    }
    unsigned char *buf = malloc(2 + total);
    if (!buf) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    buf[0] = (unsigned char)(total >> 8);
    buf[1] = (unsigned char)total;
    size_t pos = 2;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *b = PySequence_Fast_GET_ITEM(seq, i);
        buf[pos++] = (unsigned char)PyBytes_GET_SIZE(b);
        memcpy(buf + pos, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
        pos += (size_t)PyBytes_GET_SIZE(b);
    }
    Py_DECREF(seq);
    if (old)
        self->retired[self->nretired++] = (unsigned char *)old;
    self->st.others = buf;
    Py_RETURN_NONE;
}

/* answer(key) -> (rcode, an, ns, tail) | None: the engine's bytes after the question. */
static PyObject *
Store_answer(Store *self, PyObject *arg)
{
    char *key;
    Py_ssize_t klen;
    if (PyBytes_AsStringAndSize(arg, &key, &klen) < 0)
        return NULL;
    if (klen < 5 || klen > 259)
        Py_RETURN_NONE;
    const unsigned char *k = (const unsigned char *)key;
    size_t nlen = (size_t)klen - 4;
    if (bulk_wire_len(k) != nlen || k[klen - 2] != 0 || k[klen - 1] != 1
        || !bulk_below(k, nlen, self->st.origin, self->st.olen))
        Py_RETURN_NONE;
    if (!self->wbuf && !(self->wbuf = malloc(65536)))
        return PyErr_NoMemory();
    bulk_writer w;
    w.buf = self->wbuf;
    w.cap = 65535;
    bulk_question(&w, k, (size_t)klen);
    size_t start = w.len;
    int rcode;
    unsigned an, ns;
    if (!bulk_answer(&self->st, k, nlen, bulk_u16(k + nlen), &w, &rcode, &an, &ns))
        Py_RETURN_NONE;
    return Py_BuildValue("(iIIy#)", rcode, an, ns, w.buf + start, (Py_ssize_t)(w.len - start));
}

/* take_counts() -> [(rcode, qtype, n), ...] for the answers the engine sent from here, zeroed */
static PyObject *
Store_take_counts(Store *self, PyObject *unused)
{
    PyObject *out = PyList_New(0);
    for (int r = 0; out && r < 2; r++) {
        for (int t = 0; out && t < 256; t++) {
            unsigned long long n = self->st.counts[r][t];
            if (!n)
                continue;
            self->st.counts[r][t] = 0;
            PyObject *item = Py_BuildValue("(iiK)", r ? 3 : 0, t, n);
            if (!item || PyList_Append(out, item) < 0)
                Py_CLEAR(out);
            Py_XDECREF(item);
        }
        if (out && self->st.counts_other[r]) {
            PyObject *item = Py_BuildValue("(iiK)", r ? 3 : 0, -1, self->st.counts_other[r]);
            self->st.counts_other[r] = 0;
            if (!item || PyList_Append(out, item) < 0)
                Py_CLEAR(out);
            Py_XDECREF(item);
        }
    }
    return out;
}

static PyObject *
Store_capsule(Store *self, PyObject *unused)
{
    return PyCapsule_New(&self->st, CAPSULE, NULL);
}

static PyObject *
Store_stats(Store *self, PyObject *unused)
{
    return Py_BuildValue("{s:n,s:n,s:n,s:n,s:n}", "names", (Py_ssize_t)self->st.names, "rrsets",
                         (Py_ssize_t)self->st.rrsets, "records", (Py_ssize_t)self->st.records, "arena",
                         (Py_ssize_t)self->st.used, "index", (Py_ssize_t)(self->st.mask + 1) * 8);
}

/* The store as bytes (pickling: a worker hands its zones back to a supervisor that shed them):
 * a fixed header, the origin, the SOA fields, the arena, the index. */
static PyObject *
Store_reduce(Store *self, PyObject *unused)
{
    bulk_store *st = &self->st;
    size_t slots = st->slots ? st->mask + 1 : 0;
    uint64_t head[8] = {st->used, slots, st->count, st->names, st->rrsets, st->records, st->olen,
                        ((uint64_t)st->soa_mlen << 32) | st->soa_rlen};
    size_t total = sizeof(head) + 256 + 4 + 4 + 256 + 256 + 20 + st->used + slots * 8;
    PyObject *b = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (!b)
        return NULL;
    unsigned char *p = (unsigned char *)PyBytes_AS_STRING(b);
    uint32_t has_soa = (uint32_t)st->has_soa, ttl = st->soa_ttl;
#define PUT(src, n) do { memcpy(p, (src), (n)); p += (n); } while (0)
    PUT(head, sizeof(head));
    PUT(st->origin, 256);
    PUT(&has_soa, 4);
    PUT(&ttl, 4);
    PUT(st->soa_mname, 256);
    PUT(st->soa_rname, 256);
    PUT(st->soa_fixed, 20);
    if (st->used)
        PUT(st->arena, st->used);
    if (slots) {
        PUT(st->slots, slots * 4);
        PUT(st->tags, slots * 4);
    }
#undef PUT
    PyObject *restore = PyObject_GetAttrString(PyImport_AddModule("gslb.zone._bulk"), "restore");
    if (!restore) {
        Py_DECREF(b);
        return NULL;
    }
    return Py_BuildValue("(N(N))", restore, b);
}

static PyMethodDef Store_methods[] = {
    {"__reduce__", (PyCFunction)Store_reduce, METH_NOARGS, "pickled as its bytes"},
    {"node", (PyCFunction)Store_node, METH_O, "node(rel) -> records | [] (empty non-terminal) | None"},
    {"walk", (PyCFunction)Store_walk, METH_VARARGS, "walk(offset, limit) -> (names, next offset or -1)"},
    {"axfr_chunk", (PyCFunction)Store_axfr_chunk, METH_VARARGS, "axfr_chunk(index, octets) -> (records, n, next)"},
    {"set_soa", (PyCFunction)Store_set_soa, METH_VARARGS, "the negative answers' SOA"},
    {"set_others", (PyCFunction)Store_set_others, METH_O, "the other zones served"},
    {"answer", (PyCFunction)Store_answer, METH_O, "answer(key) -> (rcode, an, ns, tail) | None"},
    {"take_counts", (PyCFunction)Store_take_counts, METH_NOARGS, "answers counted natively, zeroed"},
    {"capsule", (PyCFunction)Store_capsule, METH_NOARGS, "the bulk_store for the engine"},
    {"stats", (PyCFunction)Store_stats, METH_NOARGS, "sizes"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject StoreType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gslb.zone._bulk.Store",
    .tp_basicsize = sizeof(Store),
    .tp_dealloc = (destructor)Store_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A large plain zone's names and records (bulk_store.h)",
    .tp_methods = Store_methods,
};

static PyObject *
bulk_restore(PyObject *mod, PyObject *arg)
{
    char *data;
    Py_ssize_t len;
    if (PyBytes_AsStringAndSize(arg, &data, &len) < 0)
        return NULL;
    uint64_t head[8];
    size_t fixed = sizeof(head) + 256 + 4 + 4 + 256 + 256 + 20;
    if ((size_t)len < fixed)
        goto bad;
    memcpy(head, data, sizeof(head));
    size_t used = head[0], slots = head[1];
    if ((slots & (slots - 1)) || used > 0xFFFFFFF0u || slots > ((size_t)1 << 32) || head[6] > 255
        || (size_t)len != fixed + used + slots * 8)
        goto bad;
    Store *self = PyObject_New(Store, &StoreType);
    if (!self)
        return NULL;
    memset(&self->st, 0, sizeof(self->st));
    self->wbuf = NULL;
    self->nretired = 0;
    self->order = NULL;
    self->norder = 0;
    bulk_store *st = &self->st;
    const unsigned char *p = (const unsigned char *)data + sizeof(head);
    uint32_t has_soa, ttl;
    memcpy(st->origin, p, 256);
    p += 256;
    memcpy(&has_soa, p, 4);
    memcpy(&ttl, p + 4, 4);
    p += 8;
    memcpy(st->soa_mname, p, 256);
    memcpy(st->soa_rname, p + 256, 256);
    memcpy(st->soa_fixed, p + 512, 20);
    p += 532;
    st->has_soa = (int)has_soa;
    st->soa_ttl = ttl;
    st->soa_mlen = (size_t)(head[7] >> 32);
    st->soa_rlen = (size_t)(head[7] & 0xFFFFFFFFu);
    st->olen = (size_t)head[6];
    st->count = (size_t)head[2];
    st->names = (size_t)head[3];
    st->rrsets = (size_t)head[4];
    st->records = (size_t)head[5];
    st->arena = malloc(used ? used : 1);
    st->slots = slots ? malloc(slots * 4) : NULL;
    st->tags = slots ? malloc(slots * 4) : NULL;
    if (!st->arena || (slots && (!st->slots || !st->tags))) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    memcpy(st->arena, p, used);
    st->used = st->cap = used;
    p += used;
    if (slots) {
        memcpy(st->slots, p, slots * 4);
        memcpy(st->tags, p + slots * 4, slots * 4);
        st->mask = slots - 1;
    }
    return (PyObject *)self;
bad:
    PyErr_SetString(PyExc_ValueError, "not a dumped bulk store");
    return NULL;
}

static PyMethodDef module_methods[] = {
    {"restore", bulk_restore, METH_O, "restore(bytes) -> Store (unpickling)"},
    {"parse", bulk_parse, METH_VARARGS, "parse(data, origin wire, default_ttl, max_ttl) -> Store | reason"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_bulk", NULL, -1, module_methods};

PyMODINIT_FUNC
PyInit__bulk(void)
{
    if (PyType_Ready(&StoreType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m)
        PyModule_AddStringConstant(m, "CAPSULE", CAPSULE);
    return m;
}
