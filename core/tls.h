/* tls.h: TLS 1.3 between components (SECURITY.md, "Transport"), with OpenSSL. Trust is
 * pins, not CAs: certificate chains are not verified, the peer's leaf certificate is
 * read and its fingerprint compared with what the caller pinned.
 *
 * Server side: an SSL_CTX for the libevent listeners (core/http_server.c), presenting
 * the identity's certificate and asking for the client's. Client side: the same for
 * libcurl, through CURLOPT_SSL_CTX_FUNCTION, for the gateway's own calls
 * (core/http_client.c) and the CLI's (core/cli_event.c). */
#ifndef CRAB_TLS_H
#define CRAB_TLS_H

#include <curl/curl.h>
#include <openssl/ssl.h>

#include "identity.h"

/* A server context: TLS 1.3 only, the identity's certificate and key. With
 * require_client_cert the handshake fails without a client certificate; without it a
 * client may present one or none (the gateway's public listener: leases need none).
 * Any client certificate that proves its key is accepted at the TLS layer; the HTTP
 * layer decides by fingerprint. NULL with one line in err. */
SSL_CTX *crab_tls_server_ctx(const struct crab_identity *id, int require_client_cert,
    char *err, size_t errlen);

/* The fingerprint of the certificate the other side presented on ssl, into out;
 * 1 when there is one, 0 when none. */
int crab_tls_peer_fingerprint(SSL *ssl, char out[CRAB_FP_HEX]);

/* A client-side pin for one libcurl transfer. The caller owns it and keeps it alive
 * until the transfer ends. */
struct crab_tls_pin {
	const struct crab_identity *id; /* presented as the client certificate; NULL: none */
	const char *expect;   /* the fingerprint the server must have (full or short form),
			       * or NULL to accept any (first use) and record it in seen */
	const char *const *expect_any; /* else, when set: one of these (NULL-terminated) */
	char seen[CRAB_FP_HEX]; /* the server's fingerprint, once the handshake has read it */
	int mismatch;         /* set when the server's fingerprint was not expect */
	EVP_PKEY *key;        /* the server's public key once read (verifying what it signs,
			       * as pairing does): a reference the caller frees, NULL before */
	int reuse;            /* the caller's multi handle carries this pin only (one client
			       * per peer): its connections may be kept and reused */
};

/* A client context for a libevent connection (crab chat's wss), pinned by pin the same
 * way (pin is borrowed and must outlive the context's connections). NULL with err. */
SSL_CTX *crab_tls_client_ctx(struct crab_tls_pin *pin, char *err, size_t errlen);

/* Sets curl's TLS options for an https transfer pinned by pin: TLS 1.3, no CA or host
 * name checks, the client certificate, and a handshake that fails unless the server's
 * key matches pin->expect. The transfer gets a connection of its own, closed after it,
 * and resumes no TLS session, so no connection checked under one pin serves another
 * (or an unpinned transfer). 0, or -1 when pin->expect is not a fingerprint or curl
 * refuses an option. */
int crab_tls_curl_pin(CURL *easy, struct crab_tls_pin *pin);

#endif
