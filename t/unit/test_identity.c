/* test_identity.c: identity files, fingerprints, the pairing transcript and its
 * signature (checked against t/vectors/pair-v1.json, made by gen-pair-v1.js with Node's
 * crypto), and pinned TLS between crab_tls_server_ctx and libcurl. Run from the
 * repository root, as t/run.sh does. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/identity.h"
#include "core/tls.h"
#include "core/util.h"
#include "t/unit/unit.h"

#define VECTORS "t/vectors/pair-v1.json"

static char base[64];

static unsigned mode_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (unsigned)(st.st_mode & 07777) : 0xffff;
}

static void path_in(char *out, size_t n, const char *dir, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

static void test_files(void)
{
	char dir[128], other[128], key[160], crt[160], err[256], fp[CRAB_FP_HEX];
	struct crab_identity *id, *id2;
	int created = -1;

	snprintf(dir, sizeof(dir), "%s/a/b", base);
	path_in(key, sizeof(key), dir, "identity.key");
	path_in(crt, sizeof(crt), dir, "identity.crt");

	CHECK(crab_identity_load(dir, "crab", 0, NULL, err, sizeof(err)) == NULL,
	    "without create a missing identity is an error");
	id = crab_identity_load(dir, "crab", 1, &created, err, sizeof(err));
	if (!CHECK(id != NULL, "an identity is created in a new directory"))
		printf("#   %s\n", err);
	if (!id)
		return;
	CHECK_INT(created, 1, "created tells it was made now");
	CHECK_INT(mode_of(dir), 0700, "the directory is 0700");
	CHECK_INT(mode_of(key), 0600, "identity.key is 0600");
	CHECK_INT(mode_of(crt), 0600, "identity.crt is 0600");
	CHECK_INT(strlen(id->fingerprint), 64, "the fingerprint is 64 hex digits");
	CHECK(strspn(id->fingerprint, "0123456789abcdef") == 64, "in lowercase");
	CHECK(crab_fingerprint_cert(id->cert, fp) == 0 && strcmp(fp, id->fingerprint) == 0,
	    "the certificate's fingerprint is the key's");
	CHECK(X509_NAME_entry_count(X509_get_subject_name(id->cert)) == 1,
	    "the certificate has one subject name entry (CN)");
	memcpy(fp, id->fingerprint, sizeof(fp));
	crab_identity_free(id);

	id = crab_identity_load(dir, "other", 0, &created, err, sizeof(err));
	CHECK(id && strcmp(id->fingerprint, fp) == 0, "reloading gives the same fingerprint");
	CHECK_INT(created, 0, "and created is 0");
	crab_identity_free(id);

	chmod(key, 0644);
	id = crab_identity_load(dir, "crab", 1, NULL, err, sizeof(err));
	CHECK(id == NULL, "a key readable by others is refused");
	CHECK(strstr(err, key) && strstr(err, "0644"), "the error names the file and its mode");
	crab_identity_free(id);
	chmod(key, 0640);
	id = crab_identity_load(dir, "crab", 1, NULL, err, sizeof(err));
	CHECK(id == NULL, "a key readable by the group is refused");
	crab_identity_free(id);
	chmod(key, 0600);

	chmod(dir, 0770);
	id = crab_identity_load(dir, "crab", 1, NULL, err, sizeof(err));
	CHECK(id == NULL && strstr(err, "0770"), "a group-writable directory is refused");
	crab_identity_free(id);
	chmod(dir, 0700);

	unlink(crt);
	id = crab_identity_load(dir, "crab", 1, &created, err, sizeof(err));
	CHECK(id && strcmp(id->fingerprint, fp) == 0 && created == 0,
	    "a lost certificate is remade from the key, same fingerprint");
	CHECK_INT(mode_of(crt), 0600, "the remade certificate is 0600");
	crab_identity_free(id);

	/* Another identity's certificate beside this key. */
	snprintf(other, sizeof(other), "%s/other", base);
	id2 = crab_identity_load(other, "crab", 1, NULL, err, sizeof(err));
	CHECK(id2 && strcmp(id2->fingerprint, fp) != 0, "a second identity differs");
	crab_identity_free(id2);
	{
		char crt2[160], key2[160];
		path_in(crt2, sizeof(crt2), other, "identity.crt");
		path_in(key2, sizeof(key2), other, "identity.key");
		CHECK(rename(crt2, crt) == 0, "(swap in the other certificate)");
		id = crab_identity_load(dir, "crab", 1, NULL, err, sizeof(err));
		CHECK(id == NULL && strstr(err, "not the certificate"),
		    "a certificate of another key is refused");
		crab_identity_free(id);

		/* A certificate without its key: never silently a new identity. */
		unlink(key2);
		CHECK(rename(crt, crt2) == 0, "(move it back without its key)");
		id = crab_identity_load(other, "crab", 1, NULL, err, sizeof(err));
		CHECK(id == NULL && strstr(err, "key is missing"),
		    "a certificate whose key is gone is refused");
		crab_identity_free(id);
	}

	/* A file that is not a key. */
	{
		FILE *f = fopen(key, "w");
		fputs("not a key\n", f);
		fclose(f);
		chmod(key, 0600);
		id = crab_identity_load(dir, "crab", 1, NULL, err, sizeof(err));
		CHECK(id == NULL && strstr(err, "no readable private key"), "garbage is refused");
		crab_identity_free(id);
	}
}

static void test_fingerprints(void)
{
	const char *fp = "3f2a91bc0d7e55a1c9e0aabbccddeeff00112233445566778899aabbccddeeff";
	char upper[CRAB_FP_HEX], s[CRAB_FP_SHORT];

	crab_fingerprint_short(fp, s);
	CHECK_STR(s, "3f2a-91bc-0d7e-55a1-c9e0", "the short form is 20 digits by four");
	for (size_t i = 0; i <= 64; i++)
		upper[i] = (char)(fp[i] >= 'a' && fp[i] <= 'f' ? fp[i] - 32 : fp[i]);

	CHECK(crab_fingerprint_matches(fp, fp), "the full form matches");
	CHECK(crab_fingerprint_matches(fp, upper), "in any case");
	CHECK(crab_fingerprint_matches(fp, "3f2a-91bc-0d7e-55a1-c9e0"), "the short form matches");
	CHECK(crab_fingerprint_matches(fp, "3F2A-91BC-0D7E-55A1-C9E0"), "in upper case");
	CHECK(crab_fingerprint_matches(fp, "3f2a91bc0d7e55a1c9e0"), "without its dashes");
	CHECK(!crab_fingerprint_matches(fp, "3f2a-91bc-0d7e-55a1-c9e1"), "a different one does not");
	CHECK(!crab_fingerprint_matches(fp, "3f2a-91bc-0d7e-55a1-c9e"), "19 digits do not");
	CHECK(!crab_fingerprint_matches(fp, "3f2a-91bc-0d7e-55a1-c9e0-aabb"), "24 digits do not");
	CHECK(!crab_fingerprint_matches(fp, "3f2a-91bc-0d7e-55a1-c9e0-"), "a trailing dash does not");
	CHECK(!crab_fingerprint_matches(fp, "3f2a9-1bc-0d7e-55a1-c9e0"), "a dash out of place does not");
	CHECK(!crab_fingerprint_matches(fp, " 3f2a-91bc-0d7e-55a1-c9e0"), "a blank does not");
	CHECK(!crab_fingerprint_matches(fp, ""), "the empty string does not");
	CHECK(!crab_fingerprint_matches(fp, NULL), "NULL does not");
	CHECK(crab_fingerprint_valid("3f2a-91bc-0d7e-55a1-c9e0") && crab_fingerprint_valid(fp),
	    "valid: the short and full forms");
	CHECK(!crab_fingerprint_valid("3f2g-91bc-0d7e-55a1-c9e0") && !crab_fingerprint_valid("abc"),
	    "valid: not a non-hex digit or a short string");
}

static void test_sign(void)
{
	char err[256], dir[128], sig[CRAB_SIG_B64], bad[CRAB_SIG_B64 + 8];
	unsigned char d[32], d2[32];
	struct crab_identity *id, *other;

	snprintf(dir, sizeof(dir), "%s/sign", base);
	id = crab_identity_load(dir, "crab", 1, NULL, err, sizeof(err));
	snprintf(dir, sizeof(dir), "%s/sign2", base);
	other = crab_identity_load(dir, "crab", 1, NULL, err, sizeof(err));
	if (!CHECK(id && other, "two identities to sign with")) {
		crab_identity_free(id);
		crab_identity_free(other);
		return;
	}
	crab_pair_transcript("gw_1", id->fingerprint, "bm9uY2U=", "tool", "memory", d);
	CHECK(crab_identity_sign(id, d, sig) == 0, "signing works");
	CHECK_INT(strlen(sig), 88, "the signature is 88 base64 characters");
	CHECK(crab_signature_verify(id->key, d, sig) == 1, "and verifies");
	CHECK(crab_signature_verify(other->key, d, sig) == 0, "not with another key");

	memcpy(d2, d, 32);
	d2[5] ^= 1;
	CHECK(crab_signature_verify(id->key, d2, sig) == 0, "a changed digest fails");
	crab_pair_transcript("gw_1", id->fingerprint, "bm9uY2U=", "tool", "memorx", d2);
	CHECK(memcmp(d, d2, 32) != 0, "each transcript field counts");
	crab_pair_transcript("gw_1", id->fingerprint, "bm9uY2U=", "toolm", "emory", d2);
	CHECK(memcmp(d, d2, 32) != 0, "and the separators keep fields apart");

	memcpy(bad, sig, sizeof(sig));
	bad[10] = bad[10] == 'A' ? 'B' : 'A';
	CHECK(crab_signature_verify(id->key, d, bad) == 0, "a changed signature fails");
	memcpy(bad, sig, sizeof(sig));
	bad[85] = bad[85] == 'A' ? 'B' : 'A'; /* the last digit's spare bits */
	CHECK(crab_signature_verify(id->key, d, bad) == 0, "a non-canonical encoding fails");
	CHECK(crab_signature_verify(id->key, d, "!!!!") == 0, "garbage base64 fails");
	CHECK(crab_signature_verify(id->key, d, "") == 0, "an empty signature fails");
	CHECK(crab_signature_verify(id->key, d, NULL) == 0, "a NULL signature fails");
	snprintf(bad, sizeof(bad), "%.86s", sig);
	CHECK(crab_signature_verify(id->key, d, bad) == 0, "a signature without padding fails");
	snprintf(bad, sizeof(bad), "%.44s\n%s", sig, sig + 44);
	CHECK(crab_signature_verify(id->key, d, bad) == 0, "a signature with a newline fails");
	memset(bad, 'A', 88);
	bad[86] = bad[87] = '=';
	bad[88] = '\0';
	CHECK(crab_signature_verify(id->key, d, bad) == 0, "zero bytes, well encoded, fail");
	CHECK(crab_signature_verify(id->key, d,
	    "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQQ==") == 0,
	    "65 bytes fail");
	crab_identity_free(id);
	crab_identity_free(other);
}

static int unhex(const char *hex, unsigned char *out, size_t n)
{
	if (!hex || strlen(hex) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return 0;
}

static const char *vs(json_t *v, const char *name)
{
	return json_string_value(json_object_get(v, name));
}

static void test_vectors(void)
{
	json_error_t jerr;
	json_t *v = json_load_file(VECTORS, 0, &jerr);
	unsigned char seed[32], d[32], *der = NULL;
	char hex[256], fp[CRAB_FP_HEX], s[CRAB_FP_SHORT], sig[CRAB_SIG_B64];
	struct crab_identity id = {0};
	int len;

	if (!CHECK(v != NULL, "the vectors load (" VECTORS ")")) {
		printf("#   %s\n", jerr.text);
		return;
	}
	CHECK(unhex(vs(v, "seed_hex"), seed, 32) == 0, "the vector's seed is 32 bytes");
	id.key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
	if (!CHECK(id.key != NULL, "the key is made from the seed"))
		goto done;
	len = i2d_PUBKEY(id.key, &der);
	if (len > 0 && (size_t)len < sizeof(hex) / 2)
		crab_hex(der, (size_t)len, hex);
	OPENSSL_free(der);
	CHECK_STR(hex, vs(v, "public_key_spki_der_hex"), "the public key's SPKI DER");
	CHECK(crab_fingerprint_pkey(id.key, fp) == 0, "fingerprinting works");
	CHECK_STR(fp, vs(v, "fingerprint"), "the fingerprint");
	crab_fingerprint_short(fp, s);
	CHECK_STR(s, vs(v, "short"), "the short form");

	/* The transcript's bytes are the vector's own: its digest is the vector's too. */
	EVP_Digest(vs(v, "transcript"), strlen(vs(v, "transcript")), d, NULL, EVP_sha256(), NULL);
	crab_hex(d, 32, hex);
	CHECK_STR(hex, vs(v, "transcript_sha256_hex"), "the transcript bytes hash to its digest");
	crab_pair_transcript(vs(v, "gateway_id"), vs(v, "fingerprint"), vs(v, "nonce"),
	    vs(v, "component_type"), vs(v, "component_id"), d);
	crab_hex(d, 32, hex);
	CHECK_STR(hex, vs(v, "transcript_sha256_hex"), "crab_pair_transcript gives that digest");

	CHECK(crab_identity_sign(&id, d, sig) == 0, "signing the vector's digest works");
	CHECK_STR(sig, vs(v, "signature_b64"), "the signature is the vector's");
	CHECK(crab_signature_verify(id.key, d, vs(v, "signature_b64")) == 1,
	    "the vector's signature verifies");
done:
	EVP_PKEY_free(id.key);
	json_decref(v);
}

/* ---- pinned TLS: a one-thread HTTPS server, libcurl as the client ---- */

#define CONNS 6

struct server {
	SSL_CTX *ctx[CONNS];      /* the context for each connection, in order */
	int fd;
	char client_fp[CONNS][CRAB_FP_HEX];
	int ok[CONNS];            /* the handshake succeeded */
	int requests[CONNS];
};

/* Serves keep-alive responses until the client closes, so that a client that kept
 * its connection could send its next request on it. */
static void *serve(void *arg)
{
	struct server *s = arg;
	static const char reply[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

	for (int i = 0; i < CONNS; i++) {
		int c = accept(s->fd, NULL, NULL);
		SSL *ssl;

		if (c < 0)
			break;
		ssl = SSL_new(s->ctx[i]);
		SSL_set_fd(ssl, c);
		if (SSL_accept(ssl) == 1) {
			s->ok[i] = 1;
			crab_tls_peer_fingerprint(ssl, s->client_fp[i]);
			for (;;) {
				char buf[4096];
				size_t got = 0;
				int n = 0;
				while (got < sizeof(buf) - 1) {
					n = SSL_read(ssl, buf + got, (int)(sizeof(buf) - 1 - got));
					if (n <= 0)
						break;
					got += (size_t)n;
					buf[got] = '\0';
					if (strstr(buf, "\r\n\r\n"))
						break;
				}
				if (n <= 0)
					break;
				s->requests[i]++;
				SSL_write(ssl, reply, sizeof(reply) - 1);
			}
			SSL_shutdown(ssl);
		}
		SSL_free(ssl);
		close(c);
	}
	ERR_clear_error();
	OPENSSL_thread_stop();
	return NULL;
}

static size_t sink(char *p, size_t size, size_t n, void *arg)
{
	(void)p;
	(void)arg;
	return size * n;
}

/* One pinned GET of url on easy (which may have made transfers before). */
static CURLcode fetch(CURL *easy, const char *url, struct crab_tls_pin *pin)
{
	if (crab_tls_curl_pin(easy, pin) != 0)
		return CURLE_BAD_FUNCTION_ARGUMENT;
	curl_easy_setopt(easy, CURLOPT_URL, url);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 5000L);
	curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");
	return curl_easy_perform(easy);
}

static void test_tls(void)
{
	char err[256], dir[128], url[64], wrong[CRAB_FP_HEX];
	struct crab_identity *srv_id, *cli_id;
	struct server s = {.fd = -1};
	struct sockaddr_in sa = {0};
	socklen_t salen = sizeof(sa);
	struct crab_tls_pin pin = {0}, pin2 = {0};
	SSL_CTX *opt = NULL, *req = NULL;
	CURL *easy = NULL;
	pthread_t th;
	CURLcode rc;

	snprintf(dir, sizeof(dir), "%s/tls-server", base);
	srv_id = crab_identity_load(dir, "srv", 1, NULL, err, sizeof(err));
	snprintf(dir, sizeof(dir), "%s/tls-client", base);
	cli_id = crab_identity_load(dir, "cli", 1, NULL, err, sizeof(err));
	if (srv_id) {
		opt = crab_tls_server_ctx(srv_id, 0, err, sizeof(err));
		req = crab_tls_server_ctx(srv_id, 1, err, sizeof(err));
	}
	if (!CHECK(cli_id && opt && req, "server contexts from the identity")) {
		printf("#   %s\n", err);
		goto done;
	}
	CHECK(crab_tls_server_ctx(NULL, 0, err, sizeof(err)) == NULL && err[0],
	    "no server context without an identity");
	for (int i = 0; i < CONNS; i++)
		s.ctx[i] = i < 4 ? opt : req;
	s.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(s.fd, 8) != 0 ||
	    getsockname(s.fd, (struct sockaddr *)&sa, &salen) != 0) {
		CHECK(0, "listen on loopback");
		goto done;
	}
	snprintf(url, sizeof(url), "https://127.0.0.1:%d/", ntohs(sa.sin_port));
	pthread_create(&th, NULL, serve, &s);
	easy = curl_easy_init();

	/* 0: first use, with a client certificate. */
	pin.id = cli_id;
	rc = fetch(easy, url, &pin);
	if (!CHECK(rc == CURLE_OK, "first use: the transfer succeeds"))
		printf("#   %s\n", curl_easy_strerror(rc));
	CHECK_STR(pin.seen, srv_id->fingerprint, "first use: the server's fingerprint is seen");
	CHECK(!pin.mismatch, "first use: no mismatch");
	{
		char fp[CRAB_FP_HEX] = "";
		CHECK(pin.key != NULL && crab_fingerprint_pkey(pin.key, fp) == 0 &&
		    strcmp(fp, srv_id->fingerprint) == 0,
		    "first use: the server's key is kept, to verify what it signs");
	}

	/* 1: the pin in short form, on the same handle: a new connection all the same. */
	pin.expect = srv_id->short_fp;
	rc = fetch(easy, url, &pin);
	CHECK(rc == CURLE_OK && !pin.mismatch, "a matching short pin succeeds");
	CHECK_STR(pin.seen, srv_id->fingerprint, "and sees the fingerprint again");

	/* 2: another, wrong, pin on the same handle: a kept connection would pass it. */
	memcpy(wrong, srv_id->fingerprint, sizeof(wrong));
	wrong[0] = wrong[0] == '0' ? '1' : '0';
	pin2.id = cli_id;
	pin2.expect = wrong;
	rc = fetch(easy, url, &pin2);
	CHECK(rc != CURLE_OK, "a wrong pin fails the transfer (no connection is reused)");
	CHECK(pin2.mismatch, "and says mismatch");
	CHECK_STR(pin2.seen, srv_id->fingerprint, "and still records what it saw");

	/* 3: the full pin, no client certificate. */
	pin.id = NULL;
	pin.expect = srv_id->fingerprint;
	rc = fetch(easy, url, &pin);
	CHECK(rc == CURLE_OK && !pin.mismatch, "a matching full pin succeeds without a client cert");

	/* 4, 5: a server that requires a client certificate. */
	rc = fetch(easy, url, &pin);
	CHECK(rc != CURLE_OK, "a server requiring a client cert refuses a client without");
	pin.id = cli_id;
	rc = fetch(easy, url, &pin);
	CHECK(rc == CURLE_OK, "and takes one with");

	pin.expect = "not-a-fingerprint";
	CHECK(crab_tls_curl_pin(easy, &pin) == -1, "a malformed pin is refused");

	pthread_join(th, NULL);
	CHECK(s.ok[0] && s.ok[1] && !s.ok[2] && s.ok[3] && !s.ok[4] && s.ok[5],
	    "the server saw the handshakes succeed and fail as expected");
	CHECK(s.requests[0] == 1 && s.requests[1] == 1 && s.requests[3] == 1 &&
	    s.requests[5] == 1, "one request per connection");
	CHECK_STR(s.client_fp[0], cli_id->fingerprint, "the server sees the client's fingerprint");
	CHECK_STR(s.client_fp[3], "", "and none when the client shows no certificate");
done:
	EVP_PKEY_free(pin.key);
	EVP_PKEY_free(pin2.key);
	curl_easy_cleanup(easy);
	if (s.fd >= 0)
		close(s.fd);
	SSL_CTX_free(opt);
	SSL_CTX_free(req);
	crab_identity_free(srv_id);
	crab_identity_free(cli_id);
}

static void rm_rf(const char *path)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		printf("# could not remove %s\n", path);
}

int main(void)
{
	snprintf(base, sizeof(base), "/tmp/crab-id.XXXXXX");
	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return 1;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	test_files();
	test_fingerprints();
	test_sign();
	test_vectors();
	test_tls();
	curl_global_cleanup();
	rm_rf(base);
	return unit_done();
}
