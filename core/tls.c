/* tls.c: the TLS contexts of tls.h. Certificates are checked by one
 * SSL_CTX_set_cert_verify_callback() in place of OpenSSL's chain building: there is no
 * CA to build to, and the only question is the leaf's key, which the handshake's
 * CertificateVerify has already shown the peer holds. */
#include "tls.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509_vfy.h>

/* Server: any certificate passes here; the HTTP layer compares fingerprints. */
static int accept_any(X509_STORE_CTX *x, void *arg)
{
	(void)x;
	(void)arg;
	return 1;
}

SSL_CTX *crab_tls_server_ctx(const struct crab_identity *id, int require_client_cert,
    char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	int mode = SSL_VERIFY_PEER;

	if (!ctx || !id || !id->cert || !id->key)
		goto fail;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION))
		goto fail;
	/* No resumption: every connection shows its certificate again, so a pin revoked
	 * a moment ago cannot ride on an old session. */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (!SSL_CTX_set_num_tickets(ctx, 0))
		goto fail;
	if (SSL_CTX_use_certificate(ctx, id->cert) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, id->key) != 1 || SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	if (require_client_cert)
		mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	SSL_CTX_set_verify(ctx, mode, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, accept_any, NULL);
	return ctx;
fail:
	if (err && errlen) {
		unsigned long e = ERR_peek_error();
		snprintf(err, errlen, "tls: cannot set up the server context: %s",
		    e ? ERR_reason_error_string(e) : "no identity");
	}
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

int crab_tls_peer_fingerprint(SSL *ssl, char out[CRAB_FP_HEX])
{
	X509 *cert = ssl ? SSL_get0_peer_certificate(ssl) : NULL;

	out[0] = '\0';
	return cert && crab_fingerprint_cert(cert, out) == 0;
}

static int matches_any(const char *fp, const char *const *list)
{
	for (; *list != NULL; list++) {
		if (crab_fingerprint_matches(fp, *list))
			return 1;
	}
	return 0;
}

/* Client: records the server's fingerprint and refuses one that is not the pin. */
static int check_pin(X509_STORE_CTX *x, void *arg)
{
	struct crab_tls_pin *pin = arg;
	X509 *leaf = X509_STORE_CTX_get0_cert(x);

	if (!leaf || crab_fingerprint_cert(leaf, pin->seen) != 0) {
		X509_STORE_CTX_set_error(x, X509_V_ERR_UNSPECIFIED);
		return 0;
	}
	if ((pin->expect && !crab_fingerprint_matches(pin->seen, pin->expect)) ||
	    (!pin->expect && pin->expect_any && !matches_any(pin->seen, pin->expect_any))) {
		pin->mismatch = 1;
		X509_STORE_CTX_set_error(x, X509_V_ERR_CERT_REJECTED);
		return 0;
	}
	EVP_PKEY_free(pin->key); /* one connection per pinned transfer; be safe anyway */
	pin->key = X509_get_pubkey(leaf);
	return 1;
}

/* Runs on each new connection's SSL_CTX, after curl has set its own verify mode and
 * before SSL_new() copies the context's settings, so what is set here wins. */
static CURLcode ssl_ctx_cb(CURL *easy, void *sslctx, void *arg)
{
	SSL_CTX *ctx = sslctx;
	struct crab_tls_pin *pin = arg;

	(void)easy;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION))
		return CURLE_SSL_CONNECT_ERROR;
	if (pin->id && (SSL_CTX_use_certificate(ctx, pin->id->cert) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, pin->id->key) != 1)) {
		ERR_clear_error();
		return CURLE_SSL_CERTPROBLEM;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, check_pin, pin);
	return CURLE_OK;
}

SSL_CTX *crab_tls_client_ctx(struct crab_tls_pin *pin, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (ctx == NULL) {
		snprintf(err, errlen, "cannot make a TLS context");
		return NULL;
	}
	/* The same settings curl's transfers get from ssl_ctx_cb. */
	if (ssl_ctx_cb(NULL, ctx, pin) != CURLE_OK) {
		snprintf(err, errlen, "cannot set up TLS 1.3 with this identity");
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	return ctx;
}

int crab_tls_curl_pin(CURL *easy, struct crab_tls_pin *pin)
{
	if (!easy || !pin || (pin->expect && !crab_fingerprint_valid(pin->expect)))
		return -1;
	pin->seen[0] = '\0';
	pin->mismatch = 0;
	/* Reuse: the pin is checked once, in the handshake, and curl's connection match
	 * knows nothing of the ctx callback or its data, so a kept connection could serve
	 * a later transfer under another pin (or none) unchecked. A pinned transfer
	 * therefore makes a new connection, leaves it to no one, and resumes no TLS
	 * session (a resumed handshake would skip the certificate and the check), unless
	 * pin->reuse says its connection cache (curl's is per multi handle) holds only
	 * connections made under this same pin. */
	if (curl_easy_setopt(easy, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_3) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_SSL_CTX_DATA, pin) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_SSL_SESSIONID_CACHE, 0L) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, pin->reuse ? 0L : 1L) != CURLE_OK ||
	    curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, pin->reuse ? 0L : 1L) != CURLE_OK)
		return -1;
	return 0;
}
