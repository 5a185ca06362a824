// One HTTP exchange on libcurl, loaded with dlopen the first time a server is used, so that
// a `nibble` that never talks to a server maps no HTTP, TLS or crypto library at all
// (linking URLSession did, in every process: 6.3 MiB of RSS, BENCHMARKS.md).
#pragma once
#include <stddef.h>
#include <stdint.h>

/// Loads libcurl (libcurl.so.4, else libcurl-gnutls.so.4) once. NULL when it is usable, else
/// one line saying what is missing (the same line on every later call).
const char *nb_http_load(void);

typedef struct nb_http nb_http;

/// How a transfer ended.
typedef enum {
    NB_HTTP_DONE = 0,        ///< the whole response arrived
    NB_HTTP_CANCELLED,       ///< nb_http_cancel
    NB_HTTP_CONNECT_TIMEOUT, ///< no response headers within connect_timeout seconds
    NB_HTTP_IDLE_TIMEOUT,    ///< no body bytes for idle_timeout seconds after the headers
    NB_HTTP_CANNOT_CONNECT,  ///< no connection (the message says why: "connection refused", ...)
    NB_HTTP_HOST_NOT_FOUND,  ///< the name did not resolve
    NB_HTTP_LOST,            ///< the connection closed or broke before the response's end
    NB_HTTP_TLS,             ///< the TLS handshake or the certificate failed
    NB_HTTP_FAILED,          ///< anything else (the message says what)
} nb_http_result;

typedef struct {
    void *context;
    /// The final response's headers have arrived (1xx responses are skipped).
    void (*on_head)(void *context, int status, const char *content_type);
    /// Bytes of the body, as they arrive.
    void (*on_body)(void *context, const uint8_t *bytes, size_t count);
} nb_http_callbacks;

/// A request, not started. `method` is "GET" or "POST" (POST sends `body`); `headers` are
/// "Name: value" lines. NULL (and `error` filled) when libcurl cannot be loaded.
nb_http *nb_http_new(const char *url, const char *method, const char *const *headers, int n_headers,
                     const uint8_t *body, size_t body_count, double connect_timeout, double idle_timeout,
                     char *error, size_t error_capacity);

/// Runs the transfer on the calling thread until it ends; the callbacks run on this thread.
/// `message` gets libcurl's own words for a failure.
nb_http_result nb_http_perform(nb_http *http, nb_http_callbacks callbacks, char *message, size_t message_capacity);

/// Ends nb_http_perform at once (from any thread, before, during or after it).
void nb_http_cancel(nb_http *http);

/// Frees the request; not while nb_http_perform runs.
void nb_http_free(nb_http *http);
