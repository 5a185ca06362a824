// One HTTP exchange on libcurl's multi interface, libcurl loaded with dlopen (CHTTP.h says why).
//
// No curl header is needed to build: the few functions are declared here, and the option and
// result numbers are libcurl's stable ABI (curl.h 7.88.1, checked against the header; curl
// keeps every number forever). The transfer runs in a curl_multi_poll loop of at most 50 ms a
// turn that also watches the two timeouts and the cancel flag; nb_http_cancel wakes the poll,
// so a cancelled transfer ends at once and its connection is closed.
#define _GNU_SOURCE
#include "CHTTP.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <ctype.h>
#include <time.h>

// ---- libcurl's ABI ----------------------------------------------------------------------

enum {
    OPT_WRITEDATA = 10001, OPT_URL = 10002, OPT_ERRORBUFFER = 10010, OPT_WRITEFUNCTION = 20011,
    OPT_USERAGENT = 10018, OPT_HTTPHEADER = 10023, OPT_HEADERDATA = 10029, OPT_NOPROGRESS = 43,
    OPT_POST = 47, OPT_FOLLOWLOCATION = 52, OPT_HEADERFUNCTION = 20079, OPT_HTTPGET = 80,
    OPT_NOSIGNAL = 99, OPT_POSTFIELDSIZE_LARGE = 30120, OPT_CONNECTTIMEOUT_MS = 156,
    OPT_COPYPOSTFIELDS = 10165, OPT_TCP_KEEPALIVE = 213, OPT_SUPPRESS_CONNECT_HEADERS = 265,
    OPT_PROTOCOLS_STR = 10318, OPT_NOPROXY = 10177,
};
enum { INFO_RESPONSE_CODE = 0x200000 + 2, INFO_OS_ERRNO = 0x200000 + 25 };
enum { GLOBAL_DEFAULT = 3, MSG_DONE = 1, ERROR_SIZE = 256 };
enum {
    E_OK = 0, E_COULDNT_RESOLVE_PROXY = 5, E_COULDNT_RESOLVE_HOST = 6, E_COULDNT_CONNECT = 7,
    E_HTTP2 = 16, E_PARTIAL_FILE = 18, E_WRITE_ERROR = 23, E_OPERATION_TIMEDOUT = 28,
    E_SSL_CONNECT_ERROR = 35, E_ABORTED_BY_CALLBACK = 42, E_GOT_NOTHING = 52, E_SEND_ERROR = 55,
    E_RECV_ERROR = 56, E_SSL_CERTPROBLEM = 58, E_SSL_CIPHER = 59, E_PEER_FAILED_VERIFICATION = 60,
    E_SSL_CACERT_BADFILE = 77, E_SSL_ISSUER_ERROR = 83, E_SSL_PINNEDPUBKEYNOTMATCH = 90,
    E_SSL_INVALIDCERTSTATUS = 91, E_HTTP2_STREAM = 92,
};

typedef struct { int msg; void *easy; union { void *whatever; int result; } data; } curl_msg;

static struct {
    int (*global_init)(long flags);
    void *(*easy_init)(void);
    int (*easy_setopt)(void *easy, int option, ...);
    int (*easy_getinfo)(void *easy, int info, ...);
    void (*easy_cleanup)(void *easy);
    const char *(*easy_strerror)(int code);
    void *(*multi_init)(void);
    int (*multi_add_handle)(void *multi, void *easy);
    int (*multi_remove_handle)(void *multi, void *easy);
    int (*multi_perform)(void *multi, int *running);
    int (*multi_poll)(void *multi, void *extra_fds, unsigned extra_count, int timeout_ms, int *ready);
    int (*multi_wakeup)(void *multi);
    curl_msg *(*multi_info_read)(void *multi, int *left);
    int (*multi_cleanup)(void *multi);
    const char *(*multi_strerror)(int code);
    void *(*slist_append)(void *list, const char *line);
    void (*slist_free_all)(void *list);
} curl;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static char load_error[512];

static void load(void) {
    // libcurl4 (OpenSSL) first, then the GnuTLS build; both are libcurl 7.68 or later on any
    // system Swift 6 runs on (curl_multi_poll and curl_multi_wakeup are from 7.66 and 7.68).
    const char *names[] = {"libcurl.so.4", "libcurl-gnutls.so.4"};
    void *library = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !library; i++) library = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        snprintf(load_error, sizeof load_error, "cannot load libcurl (libcurl.so.4: %s); install the libcurl4 package", dlerror());
        return;
    }
    struct { void **slot; const char *name; } symbols[] = {
        {(void **)&curl.global_init, "curl_global_init"},
        {(void **)&curl.easy_init, "curl_easy_init"},
        {(void **)&curl.easy_setopt, "curl_easy_setopt"},
        {(void **)&curl.easy_getinfo, "curl_easy_getinfo"},
        {(void **)&curl.easy_cleanup, "curl_easy_cleanup"},
        {(void **)&curl.easy_strerror, "curl_easy_strerror"},
        {(void **)&curl.multi_init, "curl_multi_init"},
        {(void **)&curl.multi_add_handle, "curl_multi_add_handle"},
        {(void **)&curl.multi_remove_handle, "curl_multi_remove_handle"},
        {(void **)&curl.multi_perform, "curl_multi_perform"},
        {(void **)&curl.multi_poll, "curl_multi_poll"},
        {(void **)&curl.multi_wakeup, "curl_multi_wakeup"},
        {(void **)&curl.multi_info_read, "curl_multi_info_read"},
        {(void **)&curl.multi_cleanup, "curl_multi_cleanup"},
        {(void **)&curl.multi_strerror, "curl_multi_strerror"},
        {(void **)&curl.slist_append, "curl_slist_append"},
        {(void **)&curl.slist_free_all, "curl_slist_free_all"},
    };
    for (size_t i = 0; i < sizeof symbols / sizeof symbols[0]; i++) {
        *symbols[i].slot = dlsym(library, symbols[i].name);
        if (!*symbols[i].slot) {
            snprintf(load_error, sizeof load_error, "the libcurl found has no %s (libcurl 7.68 or later is needed)", symbols[i].name);
            return;
        }
    }
    int code = curl.global_init(GLOBAL_DEFAULT);
    if (code != E_OK) snprintf(load_error, sizeof load_error, "libcurl failed to start: %s", curl.easy_strerror(code));
}

const char *nb_http_load(void) {
    pthread_once(&load_once, load);
    return load_error[0] ? load_error : NULL;
}

// ---- one exchange ---------------------------------------------------------------------------

struct nb_http {
    void *easy, *multi, *headers;
    atomic_int cancelled;
    pthread_mutex_t lock;  // guards `multi` between nb_http_cancel and the end of the transfer
    double connect_timeout, idle_timeout;
    nb_http_callbacks callbacks;
    int status;           // of the header block being read
    int head_sent;        // the final response's headers went to on_head
    double last_bytes;    // when body bytes (or the headers) last arrived
    char content_type[256];
    char error[ERROR_SIZE];
    char *no_proxy;       // NO_PROXY with the loopback names added
};

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void send_head(nb_http *h) {
    if (h->head_sent) return;
    h->head_sent = 1;
    h->last_bytes = now_seconds();
    if (h->status == 0) {
        long code = 0;
        curl.easy_getinfo(h->easy, INFO_RESPONSE_CODE, &code);
        h->status = (int)code;
    }
    h->callbacks.on_head(h->callbacks.context, h->status, h->content_type);
}

/// One header line at a time ("HTTP/1.1 200 OK\r\n", "Content-Type: ...\r\n", ..., "\r\n").
static size_t on_header(char *line, size_t size, size_t count, void *context) {
    nb_http *h = context;
    size_t n = size * count;
    if (atomic_load(&h->cancelled)) return 0;
    if (h->head_sent) return n;  // trailers
    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        const char *space = memchr(line, ' ', n);
        h->status = space ? atoi(space + 1) : 0;
        h->content_type[0] = 0;
    } else if (n >= 13 && strncasecmp(line, "content-type:", 13) == 0) {
        size_t start = 13, end = n;
        while (start < end && (line[start] == ' ' || line[start] == '\t')) start++;
        while (end > start && (line[end - 1] == '\r' || line[end - 1] == '\n' || line[end - 1] == ' ')) end--;
        size_t length = end - start < sizeof h->content_type - 1 ? end - start : sizeof h->content_type - 1;
        memcpy(h->content_type, line + start, length);
        h->content_type[length] = 0;
    } else if ((n == 2 && line[0] == '\r' && line[1] == '\n') || (n == 1 && line[0] == '\n')) {
        // The end of a header block; 1xx responses (100 Continue) are followed by another.
        if (h->status >= 200) send_head(h);
    }
    return n;
}

static size_t on_body(char *bytes, size_t size, size_t count, void *context) {
    nb_http *h = context;
    size_t n = size * count;
    if (atomic_load(&h->cancelled)) return 0;  // libcurl stops with CURLE_WRITE_ERROR
    send_head(h);
    h->last_bytes = now_seconds();
    if (n) h->callbacks.on_body(h->callbacks.context, (const uint8_t *)bytes, n);
    return n;
}

nb_http *nb_http_new(const char *url, const char *method, const char *const *headers, int n_headers,
                     const uint8_t *body, size_t body_count, double connect_timeout, double idle_timeout,
                     char *error, size_t error_capacity) {
    const char *missing = nb_http_load();
    if (missing) {
        snprintf(error, error_capacity, "%s", missing);
        return NULL;
    }
    nb_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(error, error_capacity, "out of memory");
        return NULL;
    }
    h->easy = curl.easy_init();
    h->multi = curl.multi_init();
    if (!h->easy || !h->multi) {
        snprintf(error, error_capacity, "libcurl could not start a request");
        if (h->easy) curl.easy_cleanup(h->easy);
        if (h->multi) curl.multi_cleanup(h->multi);
        free(h);
        return NULL;
    }
    atomic_init(&h->cancelled, 0);
    pthread_mutex_init(&h->lock, NULL);
    h->connect_timeout = connect_timeout;
    h->idle_timeout = idle_timeout;
    void *e = h->easy;
    curl.easy_setopt(e, OPT_URL, url);
    curl.easy_setopt(e, OPT_PROTOCOLS_STR, "http,https");  // (7.85; older ones allow more)
    curl.easy_setopt(e, OPT_NOSIGNAL, 1L);
    curl.easy_setopt(e, OPT_NOPROGRESS, 1L);
    curl.easy_setopt(e, OPT_TCP_KEEPALIVE, 1L);
    // Redirects are not followed: a chat endpoint that redirects a POST is misconfigured,
    // and a redirect to another host would carry the Authorization header there.
    curl.easy_setopt(e, OPT_FOLLOWLOCATION, 0L);
    curl.easy_setopt(e, OPT_SUPPRESS_CONNECT_HEADERS, 1L);
    // libcurl takes http_proxy/https_proxy from the environment; a server on this machine is
    // never reached through one (NO_PROXY as set, plus the loopback names).
    const char *no_proxy = getenv("NO_PROXY") ? getenv("NO_PROXY") : getenv("no_proxy");
    const char *loopback = "localhost,127.0.0.1,::1";
    if (!no_proxy || !*no_proxy) {
        curl.easy_setopt(e, OPT_NOPROXY, loopback);
    } else if (strcmp(no_proxy, "*") == 0) {
        curl.easy_setopt(e, OPT_NOPROXY, "*");  // no proxy for any host (only alone is it a wildcard)
    } else {
        if (asprintf(&h->no_proxy, "%s,%s", no_proxy, loopback) < 0) h->no_proxy = NULL;
        curl.easy_setopt(e, OPT_NOPROXY, h->no_proxy ? h->no_proxy : loopback);
    }
    curl.easy_setopt(e, OPT_CONNECTTIMEOUT_MS, (long)(connect_timeout * 1000 + 0.5));
    curl.easy_setopt(e, OPT_USERAGENT, "nibble");
    curl.easy_setopt(e, OPT_ERRORBUFFER, h->error);
    curl.easy_setopt(e, OPT_HEADERFUNCTION, on_header);
    curl.easy_setopt(e, OPT_HEADERDATA, h);
    curl.easy_setopt(e, OPT_WRITEFUNCTION, on_body);
    curl.easy_setopt(e, OPT_WRITEDATA, h);
    for (int i = 0; i < n_headers; i++) h->headers = curl.slist_append(h->headers, headers[i]);
    h->headers = curl.slist_append(h->headers, "Expect:");  // no 100-continue round trip
    curl.easy_setopt(e, OPT_HTTPHEADER, h->headers);
    if (strcmp(method, "POST") == 0) {
        curl.easy_setopt(e, OPT_POST, 1L);
        curl.easy_setopt(e, OPT_POSTFIELDSIZE_LARGE, (int64_t)body_count);
        curl.easy_setopt(e, OPT_COPYPOSTFIELDS, body_count ? (const char *)body : "");
    } else {
        curl.easy_setopt(e, OPT_HTTPGET, 1L);
    }
    curl.multi_add_handle(h->multi, e);
    return h;
}

static nb_http_result classify(int code) {
    switch (code) {
    case E_OK: return NB_HTTP_DONE;
    case E_COULDNT_CONNECT: return NB_HTTP_CANNOT_CONNECT;
    case E_COULDNT_RESOLVE_HOST: case E_COULDNT_RESOLVE_PROXY: return NB_HTTP_HOST_NOT_FOUND;
    case E_OPERATION_TIMEDOUT: return NB_HTTP_CONNECT_TIMEOUT;
    case E_PARTIAL_FILE: case E_GOT_NOTHING: case E_SEND_ERROR: case E_RECV_ERROR: case E_HTTP2: case E_HTTP2_STREAM:
        return NB_HTTP_LOST;
    case E_SSL_CONNECT_ERROR: case E_SSL_CERTPROBLEM: case E_SSL_CIPHER: case E_PEER_FAILED_VERIFICATION:
    case E_SSL_CACERT_BADFILE: case E_SSL_ISSUER_ERROR: case E_SSL_PINNEDPUBKEYNOTMATCH: case E_SSL_INVALIDCERTSTATUS:
        return NB_HTTP_TLS;
    default: return NB_HTTP_FAILED;
    }
}

static nb_http_result transfer(nb_http *h, char *message, size_t message_capacity) {
    const double start = now_seconds();
    for (;;) {
        if (atomic_load(&h->cancelled)) return NB_HTTP_CANCELLED;
        int running = 0;
        int multi_code = curl.multi_perform(h->multi, &running);
        if (multi_code != 0) {
            snprintf(message, message_capacity, "%s", curl.multi_strerror(multi_code));
            return NB_HTTP_FAILED;
        }
        if (atomic_load(&h->cancelled)) return NB_HTTP_CANCELLED;
        int left = 0;
        for (curl_msg *m; (m = curl.multi_info_read(h->multi, &left));) {
            if (m->msg != MSG_DONE) continue;
            int code = m->data.result;
            nb_http_result result = classify(code);
            long os_errno = 0;
            if (result == NB_HTTP_DONE) {
                send_head(h);  // a response without body bytes
            } else if (result == NB_HTTP_CANNOT_CONNECT && curl.easy_getinfo(h->easy, INFO_OS_ERRNO, &os_errno) == E_OK && os_errno) {
                // "connection refused", "network is unreachable": libcurl's own line says neither.
                snprintf(message, message_capacity, "%s", strerror((int)os_errno));
                message[0] = (char)tolower((unsigned char)message[0]);
            } else {
                snprintf(message, message_capacity, "%s", h->error[0] ? h->error : curl.easy_strerror(code));
            }
            return result;
        }
        const double t = now_seconds();
        if (!h->head_sent && t - start >= h->connect_timeout) return NB_HTTP_CONNECT_TIMEOUT;
        if (h->head_sent && t - h->last_bytes >= h->idle_timeout) return NB_HTTP_IDLE_TIMEOUT;
        curl.multi_poll(h->multi, NULL, 0, 50, NULL);
    }
}

/// Frees the transfer's handles, which closes its connection (libcurl keeps none for later).
static void close_transfer(nb_http *h) {
    pthread_mutex_lock(&h->lock);
    if (h->multi && h->easy) curl.multi_remove_handle(h->multi, h->easy);
    if (h->easy) curl.easy_cleanup(h->easy);
    if (h->multi) curl.multi_cleanup(h->multi);
    h->easy = h->multi = NULL;
    pthread_mutex_unlock(&h->lock);
}

nb_http_result nb_http_perform(nb_http *h, nb_http_callbacks callbacks, char *message, size_t message_capacity) {
    h->callbacks = callbacks;
    message[0] = 0;
    nb_http_result result = h->multi ? transfer(h, message, message_capacity) : NB_HTTP_CANCELLED;
    close_transfer(h);
    return result;
}

void nb_http_cancel(nb_http *h) {
    if (!h) return;
    atomic_store(&h->cancelled, 1);
    pthread_mutex_lock(&h->lock);
    if (h->multi) curl.multi_wakeup(h->multi);
    pthread_mutex_unlock(&h->lock);
}

void nb_http_free(nb_http *h) {
    if (!h) return;
    close_transfer(h);
    if (h->headers) curl.slist_free_all(h->headers);
    free(h->no_proxy);
    pthread_mutex_destroy(&h->lock);
    free(h);
}
