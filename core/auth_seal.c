/* auth_seal.c: the data directory's auth.key, AES-256-GCM sealing of the token JSON
 * kept in the store, and PKCE (RFC 7636) for the login (auth.h). Errors name files and
 * modes, never key material. */
#include "auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "util.h"

#define SEAL_PREFIX "v1."
#define NONCE_LEN 12
#define TAG_LEN 16
#define SEAL_MAX (1u << 20) /* a sealed login is a few hundred bytes */

int crab_auth_key_load(const char *dir, int create, unsigned char key[CRAB_AUTH_KEY_LEN],
    char *err, size_t errlen)
{
	char path[4200], hex[2 * CRAB_AUTH_KEY_LEN + 2], *text = NULL;
	unsigned char fresh[CRAB_AUTH_KEY_LEN];
	struct stat st;
	size_t len = 0;
	int rc = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, CRAB_AUTH_KEY_FILE);
	if (stat(path, &st) != 0) {
		if (errno != ENOENT || !create) {
			snprintf(err, errlen, "\"%s\": %s", path, strerror(errno));
			return -1;
		}
		if (RAND_bytes(fresh, sizeof(fresh)) != 1) {
			snprintf(err, errlen, "\"%s\": no random bytes for a new key", path);
			return -1;
		}
		crab_hex(fresh, sizeof(fresh), hex);
		OPENSSL_cleanse(fresh, sizeof(fresh));
		hex[2 * CRAB_AUTH_KEY_LEN] = '\n';
		hex[2 * CRAB_AUTH_KEY_LEN + 1] = '\0';
		/* noreplace: another process that made one first wins, and we read its key */
		rc = crab_file_write_atomic(dir, CRAB_AUTH_KEY_FILE, hex, 2 * CRAB_AUTH_KEY_LEN + 1,
		    1, err, errlen);
		OPENSSL_cleanse(hex, sizeof(hex));
		if (rc < 0)
			return -1;
		if (stat(path, &st) != 0) {
			snprintf(err, errlen, "\"%s\": %s", path, strerror(errno));
			return -1;
		}
	}
	rc = -1;
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "\"%s\" is not a regular file", path);
		return -1;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen, "\"%s\" is readable or writable by group or others (mode "
		    "%04o): chmod 0600 it", path, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	if ((text = crab_file_read(path, 256, &len, err, errlen)) == NULL)
		return -1;
	while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r'))
		text[--len] = '\0';
	if (len != 2 * CRAB_AUTH_KEY_LEN || crab_unhex(text, key, CRAB_AUTH_KEY_LEN) != 0)
		snprintf(err, errlen, "\"%s\" is not a key (64 lowercase hex digits)", path);
	else
		rc = 0;
	OPENSSL_cleanse(text, len);
	free(text);
	return rc;
}

/* The additional data: the provider the blob belongs to, so that a row copied to
 * another provider is refused. EVP_CipherUpdate: c's direction, sealing or opening. */
static int set_aad(EVP_CIPHER_CTX *c, const char *aad)
{
	static const char tag[] = "crab-auth-v1\n";
	int n;

	return EVP_CipherUpdate(c, NULL, &n, (const unsigned char *)tag, (int)strlen(tag)) == 1 &&
	    EVP_CipherUpdate(c, NULL, &n, (const unsigned char *)aad, (int)strlen(aad)) == 1 ?
	    0 : -1;
}

char *crab_auth_seal(const unsigned char key[CRAB_AUTH_KEY_LEN], const char *aad,
    const char *plain, size_t len)
{
	EVP_CIPHER_CTX *c = NULL;
	unsigned char *raw = NULL;
	char *out = NULL;
	size_t rawlen = NONCE_LEN + len + TAG_LEN;
	int n = 0, fin = 0;

	if (len > SEAL_MAX)
		return NULL;
	raw = xmalloc(rawlen);
	if (RAND_bytes(raw, NONCE_LEN) != 1 || (c = EVP_CIPHER_CTX_new()) == NULL)
		goto fail;
	if (EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(c, NULL, NULL, key, raw) != 1 || set_aad(c, aad) != 0 ||
	    EVP_EncryptUpdate(c, raw + NONCE_LEN, &n, (const unsigned char *)plain,
		(int)len) != 1 ||
	    EVP_EncryptFinal_ex(c, raw + NONCE_LEN + n, &fin) != 1 ||
	    (size_t)(n + fin) != len ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, raw + NONCE_LEN + len) != 1)
		goto fail;
	out = xmalloc(sizeof(SEAL_PREFIX) + 4 * ((rawlen + 2) / 3) + 1);
	memcpy(out, SEAL_PREFIX, sizeof(SEAL_PREFIX) - 1);
	EVP_EncodeBlock((unsigned char *)out + sizeof(SEAL_PREFIX) - 1, raw, (int)rawlen);
fail:
	EVP_CIPHER_CTX_free(c);
	OPENSSL_cleanse(raw, rawlen);
	free(raw);
	ERR_clear_error();
	return out;
}

/* Only the one encoding of raw is taken: EVP_DecodeBlock skips blanks and ignores the
 * bits a padded group leaves over. */
static int canonical(const unsigned char *raw, size_t rawlen, const char *b64, size_t b64len)
{
	char *again = xmalloc(4 * ((rawlen + 2) / 3) + 1);
	int ok = (size_t)EVP_EncodeBlock((unsigned char *)again, raw, (int)rawlen) == b64len &&
	    memcmp(again, b64, b64len) == 0;

	free(again);
	return ok;
}

char *crab_auth_open(const unsigned char key[CRAB_AUTH_KEY_LEN], const char *aad,
    const char *sealed, size_t *len)
{
	const char *b64;
	size_t b64len, rawlen, pad = 0, ctlen;
	unsigned char *raw = NULL;
	char *plain = NULL;
	EVP_CIPHER_CTX *c = NULL;
	int n = 0, fin = 0, ok = 0;

	if (sealed == NULL || strncmp(sealed, SEAL_PREFIX, sizeof(SEAL_PREFIX) - 1) != 0)
		return NULL;
	b64 = sealed + sizeof(SEAL_PREFIX) - 1;
	b64len = strlen(b64);
	if (b64len == 0 || b64len % 4 != 0 || b64len > 2 * SEAL_MAX)
		return NULL;
	pad = (b64[b64len - 1] == '=') + (b64[b64len - 2] == '=');
	raw = xmalloc(b64len / 4 * 3 + 1);
	if (EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)b64len) !=
	    (int)(b64len / 4 * 3))
		goto out;
	rawlen = b64len / 4 * 3 - pad;
	if (rawlen < NONCE_LEN + TAG_LEN || !canonical(raw, rawlen, b64, b64len))
		goto out;
	ctlen = rawlen - NONCE_LEN - TAG_LEN;
	plain = xmalloc(ctlen + 1);
	if ((c = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, NONCE_LEN, NULL) != 1 ||
	    EVP_DecryptInit_ex(c, NULL, NULL, key, raw) != 1 || set_aad(c, aad) != 0 ||
	    EVP_DecryptUpdate(c, (unsigned char *)plain, &n, raw + NONCE_LEN, (int)ctlen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, raw + NONCE_LEN + ctlen) != 1 ||
	    EVP_DecryptFinal_ex(c, (unsigned char *)plain + n, &fin) != 1 ||
	    (size_t)(n + fin) != ctlen)
		goto out;
	plain[ctlen] = '\0';
	*len = ctlen;
	ok = 1;
out:
	EVP_CIPHER_CTX_free(c);
	OPENSSL_cleanse(raw, b64len / 4 * 3 + 1);
	free(raw);
	ERR_clear_error();
	if (!ok && plain != NULL) {
		OPENSSL_cleanse(plain, ctlen + 1);
		free(plain);
		plain = NULL;
	}
	return plain;
}

size_t crab_b64url(const unsigned char *in, size_t len, char *out)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t o = 0;

	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t left = len - i;

		if (left > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (left > 2)
			v |= in[i + 2];
		out[o++] = alphabet[(v >> 18) & 63];
		out[o++] = alphabet[(v >> 12) & 63];
		if (left > 1)
			out[o++] = alphabet[(v >> 6) & 63];
		if (left > 2)
			out[o++] = alphabet[v & 63];
	}
	out[o] = '\0';
	return o;
}

int crab_auth_random(char out[CRAB_PKCE_LEN])
{
	unsigned char raw[32];

	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		out[0] = '\0';
		return -1;
	}
	crab_b64url(raw, sizeof(raw), out);
	OPENSSL_cleanse(raw, sizeof(raw));
	return 0;
}

int crab_pkce_verifier(char out[CRAB_PKCE_LEN])
{
	return crab_auth_random(out);
}

void crab_pkce_challenge(const char *verifier, char out[CRAB_PKCE_LEN])
{
	unsigned char digest[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)verifier, strlen(verifier), digest);
	crab_b64url(digest, sizeof(digest), out);
}
