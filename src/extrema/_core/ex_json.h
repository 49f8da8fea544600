#pragma once
/* A small error-code API over simdjson On-Demand for the venue decoders (C++ only).
 *
 * Why a shim: On-Demand is a C++ template API built on simdjson_result<T> with rvalue-only get() and
 * range-for iteration, which Cython cannot express cleanly. These static inline functions give the
 * decoders a flat, nogil, exception-free surface: every call returns an int that is 0 (or 1 for "got
 * one") on success and a negative simdjson error code on failure. They are inlined into the decoder's
 * translation unit, so they cost nothing over calling simdjson directly.
 *
 * Lifetimes: every string view handed out points either into the caller's (padded) input buffer or
 * into the parser's string buffer, and stays valid until the next ex_json_iterate on the same doc.
 *
 * On-Demand is forward-only: a field's value must be read before moving to the next field (the
 * iterators below advance lazily, on the next *_next call, so the caller can consume the value they
 * were handed). Unread values are skipped structurally; values the decoder never reads are therefore
 * not validated beyond bracket balance, which is the point of On-Demand.
 * https://github.com/simdjson/simdjson/blob/master/doc/ondemand_design.md
 */
#include <new>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <string_view>
#include "simdjson.h"
#include "ex_json_types.h"

namespace ex_od = simdjson::ondemand;

typedef ex_od::value ex_jval;

enum ex_jtype {
    EXJ_ARRAY = 1,
    EXJ_OBJECT = 2,
    EXJ_NUMBER = 3,
    EXJ_STRING = 4,
    EXJ_BOOL = 5,
    EXJ_NULL = 6,
};

/* Errors of our own, below simdjson's range (negated like simdjson's). */
#define EXJ_ERR_NOT_A_PAIR 1001     /* an element of a level list is not [string, string] */
#define EXJ_ERR_NO_MEMORY 1002

struct ex_json_doc {
    ex_od::parser parser;
    ex_od::document doc;
    explicit ex_json_doc(size_t max_capacity) : parser(max_capacity) {}
};

struct ex_jobj {
    ex_od::object_iterator it;
    bool started;
};

struct ex_jarr {
    ex_od::array_iterator it;
    bool started;
};

static inline size_t ex_json_padding(void) noexcept { return simdjson::SIMDJSON_PADDING; }

static inline ex_json_doc *ex_json_new(size_t max_capacity) noexcept {
    return new (std::nothrow) ex_json_doc(max_capacity);
}

static inline void ex_json_free(ex_json_doc *d) noexcept { delete d; }

static inline const char *ex_json_error_message(int negative_code) noexcept {
    int code = -negative_code;
    if (code == EXJ_ERR_NOT_A_PAIR) return "a price level is not a [price, size] pair of strings";
    if (code == EXJ_ERR_NO_MEMORY) return "out of memory";
    return simdjson::error_message(static_cast<simdjson::error_code>(code));
}

/* buf must have `capacity` readable bytes, capacity >= len + SIMDJSON_PADDING. */
static inline int ex_json_iterate(ex_json_doc *d, const char *buf, size_t len, size_t capacity) noexcept {
    simdjson::error_code e = d->parser.iterate(buf, len, capacity).get(d->doc);
    return e ? -(int)e : 0;
}

static inline int ex_json_root_object(ex_json_doc *d, ex_jobj *o) noexcept {
    ex_od::object obj;
    simdjson::error_code e = d->doc.get_object().get(obj);
    if (e) return -(int)e;
    e = obj.begin().get(o->it);
    if (e) return -(int)e;
    o->started = false;
    return 0;
}

/* 1 when the whole document was consumed (nothing but whitespace after the root value). */
static inline int ex_json_at_end(ex_json_doc *d) noexcept { return d->doc.at_end() ? 1 : 0; }

static inline int ex_jobj_open(ex_jval *v, ex_jobj *o) noexcept {
    ex_od::object obj;
    simdjson::error_code e = v->get_object().get(obj);
    if (e) return -(int)e;
    e = obj.begin().get(o->it);
    if (e) return -(int)e;
    o->started = false;
    return 0;
}

/* 1 with the next field's key (escaped, without quotes) and value, 0 at the end, < 0 on error. */
static inline int ex_jobj_next(ex_jobj *o, const char **key, size_t *klen, ex_jval *value) noexcept {
    if (o->started) ++o->it;
    o->started = true;
    if (!(o->it != o->it)) return 0;   /* operator!= is "iterator still open"; the argument is unused */
    ex_od::field f;
    simdjson::error_code e = (*o->it).get(f);
    if (e) return -(int)e;
    std::string_view k = f.escaped_key();
    *key = k.data();
    *klen = k.size();
    *value = f.value();
    return 1;
}

static inline int ex_jarr_open(ex_jval *v, ex_jarr *a) noexcept {
    ex_od::array arr;
    simdjson::error_code e = v->get_array().get(arr);
    if (e) return -(int)e;
    e = arr.begin().get(a->it);
    if (e) return -(int)e;
    a->started = false;
    return 0;
}

static inline int ex_jarr_next(ex_jarr *a, ex_jval *value) noexcept {
    if (a->started) ++a->it;
    a->started = true;
    if (!(a->it != a->it)) return 0;
    simdjson::error_code e = (*a->it).get(*value);
    return e ? -(int)e : 1;
}

static inline int ex_jval_type(ex_jval *v, int *type) noexcept {
    ex_od::json_type t;
    simdjson::error_code e = v->type().get(t);
    if (e) return -(int)e;
    *type = (int)t;   /* ex_jtype mirrors json_type's values */
    return 0;
}

/* The unescaped string (in the parser's string buffer). */
static inline int ex_jval_string(ex_jval *v, const char **s, size_t *n) noexcept {
    std::string_view sv;
    simdjson::error_code e = v->get_string().get(sv);
    if (e) return -(int)e;
    *s = sv.data();
    *n = sv.size();
    return 0;
}

/* A string's raw text between its quotes, straight from the input (no unescaping, no copy): the
 * fast path for decimal strings, which never contain escapes (a backslash makes the decimal parser
 * reject the text). */
static inline int ex_raw_string_token(std::string_view tok, const char **s, size_t *n) noexcept {
    size_t len = tok.size();
    while (len > 0) {
        char c = tok[len - 1];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        --len;
    }
    if (len < 2 || tok[0] != '"' || tok[len - 1] != '"') return -(int)simdjson::INCORRECT_TYPE;
    *s = tok.data() + 1;
    *n = len - 2;
    return 0;
}

static inline int ex_jval_raw_string(ex_jval *v, const char **s, size_t *n) noexcept {
    return ex_raw_string_token(v->raw_json_token(), s, n);
}

static inline int ex_jval_int64(ex_jval *v, int64_t *out) noexcept {
    simdjson::error_code e = v->get_int64().get(*out);
    return e ? -(int)e : 0;
}

static inline int ex_jval_bool(ex_jval *v, int *out) noexcept {
    bool b;
    simdjson::error_code e = v->get_bool().get(b);
    if (e) return -(int)e;
    *out = b ? 1 : 0;
    return 0;
}

static inline int ex_pairbuf_reserve(ex_pairbuf *buf, size_t need) noexcept {
    if (need <= buf->cap) return 0;
    size_t cap = buf->cap ? buf->cap : 64;
    while (cap < need) cap *= 2;
    ex_strpair *p = (ex_strpair *)realloc(buf->data, cap * sizeof(ex_strpair));
    if (p == NULL) return -EXJ_ERR_NO_MEMORY;
    buf->data = p;
    buf->cap = cap;
    return 0;
}

/* Append every [string, string] element of the array `v` (Binance's [price, size] levels) to buf,
 * as views of the raw decimal strings (ex_jval_raw_string). Returns the number appended, or < 0 (the
 * buffer may then hold a partial list: the caller drops the frame).
 * (A hand-written scanner over the array's raw text was tried instead of On-Demand iteration: it was
 * ~40 % slower on a 20-level frame, so On-Demand it is.) */
static inline long ex_jval_string_pairs(ex_jval *v, ex_pairbuf *buf) noexcept {
    ex_od::array outer;
    simdjson::error_code e = v->get_array().get(outer);
    if (e) return -(long)e;
    size_t start = buf->n;
    for (auto element : outer) {
        ex_od::array pair;
        e = element.get_array().get(pair);
        if (e) return e == simdjson::INCORRECT_TYPE ? -(long)EXJ_ERR_NOT_A_PAIR : -(long)e;
        if (buf->n == buf->cap && ex_pairbuf_reserve(buf, buf->n + 1) != 0) return -(long)EXJ_ERR_NO_MEMORY;
        ex_strpair *slot = &buf->data[buf->n];
        int k = 0;
        for (auto item : pair) {
            ex_jval x;
            e = item.get(x);
            if (e) return -(long)e;
            const char *s;
            size_t n;
            if (k >= 2 || ex_jval_raw_string(&x, &s, &n) != 0) return -(long)EXJ_ERR_NOT_A_PAIR;
            if (k == 0) { slot->a = s; slot->an = n; }
            else { slot->b = s; slot->bn = n; }
            ++k;
        }
        if (k != 2) return -(long)EXJ_ERR_NOT_A_PAIR;
        buf->n++;
    }
    return (long)(buf->n - start);
}
