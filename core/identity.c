/* identity.c: the Ed25519 key pair and self-signed certificate of identity.h, their
 * files, fingerprints, and the pairing transcript's signature. Errors name files and
 * modes, never key material. */
#include "identity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "util.h"

#define KEY_FILE "identity.key"
#define CRT_FILE "identity.crt"
#define CERT_DAYS (100 * 365 + 25) /* a hundred years: the key is the identity, not the dates */
#define SIG_LEN 64
#define SIG_B64_LEN 88 /* 64 bytes: 21 groups of four, one more with "==" */

__attribute__((format(printf, 3, 4)))
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	ERR_clear_error(); /* leave no stale OpenSSL errors for the next caller */
}

/* The data directory must not be writable by group or others: whoever can write it
 * can swap the key. */
static int check_dir(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (stat(dir, &st) != 0) {
		seterr(err, errlen, "data directory \"%s\": %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		seterr(err, errlen, "data directory \"%s\" is not a directory", dir);
		return -1;
	}
	if (st.st_mode & 022) {
		seterr(err, errlen, "data directory \"%s\" is writable by group or others "
		    "(mode %04o): chmod 0700 it", dir, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

/* mkdir -p; the components made here get 0700. */
static int make_dir(const char *dir, char *err, size_t errlen)
{
	char path[4096];
	size_t len = crab_strlcpy(path, dir, sizeof(path));

	if (len == 0 || len >= sizeof(path)) {
		seterr(err, errlen, "data directory \"%s\": bad path", dir);
		return -1;
	}
	for (char *p = path + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(path, 0700) == 0) {
			if (chmod(path, 0700) != 0) { /* the umask may have taken the owner's bits */
				seterr(err, errlen, "chmod \"%s\": %s", path, strerror(errno));
				return -1;
			}
		} else if (errno != EEXIST) {
			seterr(err, errlen, "mkdir \"%s\": %s", path, strerror(errno));
			return -1;
		}
		*p = c;
		if (c == '\0')
			break;
	}
	return check_dir(dir, err, errlen);
}

/* PEM of the key or the certificate into the new file dir/name: 0, 1 when it appeared
 * meanwhile (the caller reads that one), -1 with err. The key's PEM goes through a
 * secure-memory BIO, cleared when freed. */
static int write_pem(const char *dir, const char *name, EVP_PKEY *key, X509 *cert,
    char *err, size_t errlen)
{
	BIO *bio = BIO_new(key ? BIO_s_secmem() : BIO_s_mem());
	char *data;
	long len;
	int ok, rc;

	if (!bio) {
		seterr(err, errlen, "%s: out of memory", name);
		return -1;
	}
	if (key)
		ok = PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL); /* PKCS#8 */
	else
		ok = PEM_write_bio_X509(bio, cert);
	if (!ok || (len = BIO_get_mem_data(bio, &data)) <= 0) {
		BIO_free(bio);
		seterr(err, errlen, "%s: cannot encode", name);
		return -1;
	}
	rc = crab_file_write_atomic(dir, name, data, (size_t)len, 1, err, errlen);
	BIO_free(bio);
	return rc;
}

/* A self-signed certificate for key: random 127-bit serial, CN cn, a hundred years. */
static X509 *make_cert(EVP_PKEY *key, const char *cn)
{
	X509 *x = X509_new();
	X509_NAME *name = NULL;
	BIGNUM *bn = NULL;
	unsigned char serial[16];

	if (!x || !X509_set_version(x, X509_VERSION_3))
		goto fail;
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f; /* positive, as RFC 5280 wants */
	if (!(bn = BN_bin2bn(serial, sizeof(serial), NULL)) ||
	    !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)))
		goto fail;
	if (!X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
	    !X509_time_adj_ex(X509_getm_notAfter(x), CERT_DAYS, 0, NULL))
		goto fail;
	if (!(name = X509_NAME_new()) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
		(const unsigned char *)(cn && *cn ? cn : "crab"), -1, -1, 0) ||
	    !X509_set_subject_name(x, name) || !X509_set_issuer_name(x, name))
		goto fail;
	if (!X509_set_pubkey(x, key))
		goto fail;
	if (X509_sign(x, key, NULL) <= 0) /* Ed25519 signs the message itself: no digest */
		goto fail;
	X509_NAME_free(name);
	BN_free(bn);
	return x;
fail:
	X509_NAME_free(name);
	BN_free(bn);
	X509_free(x);
	return NULL;
}

static EVP_PKEY *make_key(void)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	EVP_PKEY *key = NULL;

	if (!ctx || EVP_PKEY_keygen_init(ctx) <= 0 || EVP_PKEY_keygen(ctx, &key) <= 0)
		key = NULL;
	EVP_PKEY_CTX_free(ctx);
	return key;
}

/* Our keys have no passphrase; without this OpenSSL would prompt on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/* Reads the private key at path, refusing one that group or others may read. */
static EVP_PKEY *read_key(const char *path, char *err, size_t errlen)
{
	struct stat st;
	EVP_PKEY *key = NULL;
	FILE *f;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		seterr(err, errlen, "open \"%s\": %s", path, strerror(errno));
		return NULL;
	}
	/* The mode of what was opened, not of what the name points to a moment later. */
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		seterr(err, errlen, "\"%s\" is not a regular file", path);
		return NULL;
	}
	if (st.st_mode & 077) {
		close(fd);
		seterr(err, errlen, "private key \"%s\" is accessible by group or others "
		    "(mode %04o): chmod 0600 it", path, (unsigned)(st.st_mode & 07777));
		return NULL;
	}
	if (!(f = fdopen(fd, "r"))) {
		close(fd);
		seterr(err, errlen, "open \"%s\": out of memory", path);
		return NULL;
	}
	key = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
	fclose(f);
	if (!key) {
		seterr(err, errlen, "\"%s\" holds no readable private key", path);
		return NULL;
	}
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519) {
		EVP_PKEY_free(key);
		seterr(err, errlen, "\"%s\" is not an Ed25519 key", path);
		return NULL;
	}
	return key;
}

static X509 *read_cert(const char *path, char *err, size_t errlen)
{
	X509 *x;
	FILE *f = fopen(path, "re");

	if (!f) {
		seterr(err, errlen, "open \"%s\": %s", path, strerror(errno));
		return NULL;
	}
	x = PEM_read_X509(f, NULL, no_passphrase, NULL);
	fclose(f);
	if (!x)
		seterr(err, errlen, "\"%s\" holds no readable certificate", path);
	return x;
}

struct crab_identity *crab_identity_load(const char *dir, const char *cn, int create,
    int *created, char *err, size_t errlen)
{
	struct crab_identity *id = xcalloc(1, sizeof(*id));
	char kpath[4200], cpath[4200];
	int have_key, have_crt, rc;

	if (created)
		*created = 0;
	if ((create ? make_dir(dir, err, errlen) : check_dir(dir, err, errlen)) != 0)
		goto fail;
	snprintf(kpath, sizeof(kpath), "%s/%s", dir, KEY_FILE);
	snprintf(cpath, sizeof(cpath), "%s/%s", dir, CRT_FILE);
	have_key = access(kpath, F_OK) == 0;
	have_crt = access(cpath, F_OK) == 0;

	if (!have_key && have_crt) {
		/* A certificate whose key is gone: making a new key would silently change
		 * who we are; the operator decides. */
		seterr(err, errlen, "\"%s\" exists but its key is missing", cpath);
		goto fail;
	}
	if (!have_key && !create) {
		seterr(err, errlen, "no identity in \"%s\"", dir);
		goto fail;
	}
	if (!have_key) {
		if (!(id->key = make_key())) {
			seterr(err, errlen, "cannot generate a key for \"%s\"", dir);
			goto fail;
		}
		/* The key first: a crash before the certificate is written leaves a key
		 * alone, whose certificate the next load remakes. */
		if ((rc = write_pem(dir, KEY_FILE, id->key, NULL, err, errlen)) < 0)
			goto fail;
		if (rc == 1) { /* another process made one first: that one is ours */
			EVP_PKEY_free(id->key);
			id->key = NULL;
		} else if (created) {
			*created = 1;
		}
	}
	if (!id->key && !(id->key = read_key(kpath, err, errlen)))
		goto fail;

	if (!have_crt && create) {
		/* The certificate only wraps the key: remaking it keeps the fingerprint. */
		if (!(id->cert = make_cert(id->key, cn))) {
			seterr(err, errlen, "cannot make a certificate for \"%s\"", dir);
			goto fail;
		}
		if ((rc = write_pem(dir, CRT_FILE, NULL, id->cert, err, errlen)) < 0)
			goto fail;
		if (rc == 1) {
			X509_free(id->cert);
			id->cert = NULL;
		}
	}
	if (!id->cert && !(id->cert = read_cert(cpath, err, errlen)))
		goto fail;

	if (X509_check_private_key(id->cert, id->key) != 1) {
		seterr(err, errlen, "\"%s\" is not the certificate of \"%s\"", cpath, kpath);
		goto fail;
	}
	if (crab_fingerprint_pkey(id->key, id->fingerprint) != 0) {
		seterr(err, errlen, "cannot fingerprint the key in \"%s\"", dir);
		goto fail;
	}
	crab_fingerprint_short(id->fingerprint, id->short_fp);
	return id;
fail:
	crab_identity_free(id);
	return NULL;
}

void crab_identity_free(struct crab_identity *id)
{
	if (!id)
		return;
	EVP_PKEY_free(id->key);
	X509_free(id->cert);
	free(id);
}

int crab_fingerprint_pkey(EVP_PKEY *key, char out[CRAB_FP_HEX])
{
	unsigned char *der = NULL, md[32];
	unsigned int mdlen = 0;
	int len, rc = -1;

	out[0] = '\0';
	if (!key || (len = i2d_PUBKEY(key, &der)) <= 0)
		goto done;
	if (EVP_Digest(der, (size_t)len, md, &mdlen, EVP_sha256(), NULL) && mdlen == 32) {
		crab_hex(md, 32, out);
		rc = 0;
	}
done:
	OPENSSL_free(der);
	if (rc)
		ERR_clear_error();
	return rc;
}

int crab_fingerprint_cert(X509 *cert, char out[CRAB_FP_HEX])
{
	EVP_PKEY *key = cert ? X509_get0_pubkey(cert) : NULL;

	if (!key) {
		out[0] = '\0';
		ERR_clear_error();
		return -1;
	}
	return crab_fingerprint_pkey(key, out);
}

void crab_fingerprint_short(const char *fp, char out[CRAB_FP_SHORT])
{
	size_t o = 0;

	for (size_t i = 0; i < 20 && fp[i]; i++) {
		if (i && i % 4 == 0)
			out[o++] = '-';
		out[o++] = fp[i];
	}
	out[o] = '\0';
}

/* text as bare lowercase hex into out (65 bytes): its length, or -1 when it is not a
 * fingerprint's form. A dash may only come between groups of four digits. */
static int normalize(const char *text, char out[CRAB_FP_HEX])
{
	size_t n = 0, run = 0;

	for (const char *p = text; *p; p++) {
		char c = *p;
		if (c == '-') {
			if (run != 4)
				return -1;
			run = 0;
			continue;
		}
		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) || n == 64)
			return -1;
		out[n++] = c;
		run++;
	}
	out[n] = '\0';
	if (run == 0 && n > 0)
		return -1; /* a trailing dash */
	return n == 64 || n == 20 ? (int)n : -1;
}

int crab_fingerprint_matches(const char *fp, const char *text)
{
	char want[CRAB_FP_HEX], have[CRAB_FP_HEX];
	int n;

	if (!fp || !text || (n = normalize(text, want)) < 0)
		return 0;
	if (normalize(fp, have) != 64)
		return 0;
	return crab_ct_memcmp(have, want, (size_t)n) == 0;
}

int crab_fingerprint_valid(const char *text)
{
	char tmp[CRAB_FP_HEX];

	return text && normalize(text, tmp) >= 0;
}

void crab_pair_transcript(const char *gateway_id, const char *fingerprint, const char *nonce,
    const char *component_type, const char *component_id, unsigned char digest[32])
{
	const char *part[] = {"crab-pair-v1", gateway_id, fingerprint, nonce, component_type,
	    component_id};
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int len = 0;
	int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);

	for (size_t i = 0; ok && i < CRAB_ARRAY_LEN(part); i++) {
		const char *s = part[i] ? part[i] : "";
		ok = EVP_DigestUpdate(ctx, s, strlen(s));
		if (ok && i + 1 < CRAB_ARRAY_LEN(part))
			ok = EVP_DigestUpdate(ctx, "\n", 1);
	}
	ok = ok && EVP_DigestFinal_ex(ctx, digest, &len) && len == 32;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		abort(); /* SHA-256 in memory fails only when memory does */
}

int crab_identity_sign(const struct crab_identity *id, const unsigned char digest[32],
    char sig_b64[CRAB_SIG_B64])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned char sig[SIG_LEN];
	size_t len = sizeof(sig);
	int rc = -1;

	sig_b64[0] = '\0';
	if (!ctx || !id || !id->key)
		goto done;
	/* Ed25519 takes no digest of its own: it signs the 32 bytes as the message. */
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, id->key) != 1 ||
	    EVP_DigestSign(ctx, sig, &len, digest, 32) != 1 || len != SIG_LEN)
		goto done;
	if (EVP_EncodeBlock((unsigned char *)sig_b64, sig, SIG_LEN) == SIG_B64_LEN)
		rc = 0;
done:
	EVP_MD_CTX_free(ctx);
	if (rc) {
		sig_b64[0] = '\0';
		ERR_clear_error();
	}
	return rc;
}

/* sig_b64 as the 64 signature bytes: only the canonical encoding (what re-encoding
 * them gives) is taken, since EVP_DecodeBlock skips blanks and counts padding. */
static int decode_sig(const char *sig_b64, unsigned char sig[SIG_LEN])
{
	unsigned char buf[SIG_B64_LEN / 4 * 3];
	unsigned char again[SIG_B64_LEN + 1];

	if (!sig_b64 || strlen(sig_b64) != SIG_B64_LEN)
		return -1;
	if (EVP_DecodeBlock(buf, (const unsigned char *)sig_b64, SIG_B64_LEN) != sizeof(buf))
		return -1;
	if (EVP_EncodeBlock(again, buf, SIG_LEN) != SIG_B64_LEN ||
	    memcmp(again, sig_b64, SIG_B64_LEN) != 0)
		return -1;
	memcpy(sig, buf, SIG_LEN);
	return 0;
}

int crab_signature_verify(EVP_PKEY *key, const unsigned char digest[32], const char *sig_b64)
{
	EVP_MD_CTX *ctx;
	unsigned char sig[SIG_LEN];
	int ok;

	if (!key || EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519 || decode_sig(sig_b64, sig))
		return 0;
	if (!(ctx = EVP_MD_CTX_new()))
		return 0;
	ok = EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, key) == 1 &&
	    EVP_DigestVerify(ctx, sig, SIG_LEN, digest, 32) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}
