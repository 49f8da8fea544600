#pragma once
/* The plain-C part of the JSON shim (ex_json.h is C++): what binance.pxd needs to declare the decoder
 * class, so C modules that cimport it compile without simdjson. */
#include <stddef.h>

typedef struct ex_json_doc ex_json_doc;   /* simdjson parser + document; defined in ex_json.h */

/* One [price, size] level: views of the two decimal strings, quotes stripped, not unescaped. */
typedef struct ex_strpair {
    const char *a;
    size_t an;
    const char *b;
    size_t bn;
} ex_strpair;

typedef struct ex_pairbuf {
    ex_strpair *data;
    size_t n;
    size_t cap;
} ex_pairbuf;
