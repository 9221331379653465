/* test_auth_seal.c: the sealing of stored logins (AES-256-GCM under auth.key, bound to
 * the provider) and PKCE (RFC 7636, Appendix B's vector) of core/auth_seal.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/auth.h"
#include "core/util.h"
#include "t/unit/unit.h"

static const char tokens[] = "{\"access_token\":\"sk-ant-oat01-unit\","
			     "\"refresh_token\":\"sk-ant-ort01-unit\",\"expires_at\":1}";

static void test_seal(void)
{
	unsigned char key[CRAB_AUTH_KEY_LEN], other[CRAB_AUTH_KEY_LEN];
	char *sealed, *again, *plain, *bad;
	size_t len = 0, n;

	memset(key, 7, sizeof(key));
	memset(other, 8, sizeof(other));
	sealed = crab_auth_seal(key, "claude", tokens, strlen(tokens));
	if (!CHECK(sealed != NULL, "a login is sealed"))
		return;
	CHECK(strncmp(sealed, "v1.", 3) == 0, "the sealed text says its version");
	CHECK(strstr(sealed, "sk-ant") == NULL && strstr(sealed, "unit") == NULL,
	    "the sealed text holds no token");
	plain = crab_auth_open(key, "claude", sealed, &len);
	CHECK(plain != NULL && len == strlen(tokens) && strcmp(plain, tokens) == 0,
	    "it opens to the same JSON");
	free(plain);

	again = crab_auth_seal(key, "claude", tokens, strlen(tokens));
	CHECK(again != NULL && strcmp(again, sealed) != 0,
	    "sealing twice gives two texts (a fresh nonce each time)");
	free(again);

	CHECK(crab_auth_open(other, "claude", sealed, &len) == NULL, "another key is refused");
	CHECK(crab_auth_open(key, "codex", sealed, &len) == NULL,
	    "another provider is refused (the provider is bound in)");

	/* Every byte of the body changed in turn: GCM's tag refuses each. */
	bad = xstrdup(sealed);
	n = strlen(bad);
	{
		int refused = 1;
		for (size_t i = 3; i < n && bad[i] != '='; i++) {
			char was = bad[i];
			bad[i] = was == 'A' ? 'B' : 'A'; /* the low bit too: padding bits count */
			plain = crab_auth_open(key, "claude", bad, &len);
			if (plain != NULL) {
				refused = 0;
				free(plain);
			}
			bad[i] = was;
		}
		CHECK(refused, "a change anywhere in the sealed text is refused (tamper)");
	}
	bad[n - 6] = '\0';
	CHECK(crab_auth_open(key, "claude", bad, &len) == NULL, "a cut sealed text is refused");
	CHECK(crab_auth_open(key, "claude", "v1.", &len) == NULL, "an empty one is refused");
	CHECK(crab_auth_open(key, "claude", "v2.AAAA", &len) == NULL, "another version is refused");
	CHECK(crab_auth_open(key, "claude", "v1.!!!!", &len) == NULL, "bad base64 is refused");
	free(bad);
	free(sealed);

	sealed = crab_auth_seal(key, "p", "", 0);
	plain = sealed ? crab_auth_open(key, "p", sealed, &len) : NULL;
	CHECK(plain != NULL && len == 0 && plain[0] == '\0', "the empty text seals and opens");
	free(plain);
	free(sealed);
}

static void test_pkce(void)
{
	char challenge[CRAB_PKCE_LEN], v1[CRAB_PKCE_LEN], v2[CRAB_PKCE_LEN], out[64];
	const unsigned char bytes[] = {0xfb, 0xff, 0x00};

	/* RFC 7636 Appendix B */
	crab_pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", challenge);
	CHECK_STR(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
	    "the S256 challenge of RFC 7636's verifier is RFC 7636's");
	CHECK(crab_pkce_verifier(v1) == 0 && crab_pkce_verifier(v2) == 0, "verifiers are made");
	CHECK_INT(strlen(v1), 43, "a verifier is 43 characters (32 bytes, base64url)");
	CHECK(strspn(v1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 43,
	    "of the unreserved base64url alphabet");
	CHECK(strcmp(v1, v2) != 0, "two verifiers differ");
	crab_b64url(bytes, sizeof(bytes), out);
	CHECK_STR(out, "-_8A", "base64url uses - and _");
	crab_b64url(bytes, 2, out);
	CHECK_STR(out, "-_8", "and no padding");
	crab_b64url(bytes, 1, out);
	CHECK_STR(out, "-w", "for one byte either");
}

static void test_key_file(void)
{
	char dir[] = "/tmp/crab-auth-key.XXXXXX", path[256], err[256];
	unsigned char k1[CRAB_AUTH_KEY_LEN], k2[CRAB_AUTH_KEY_LEN];
	struct stat st;

	if (!CHECK(mkdtemp(dir) != NULL, "a temporary directory"))
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, CRAB_AUTH_KEY_FILE);
	CHECK(crab_auth_key_load(dir, 0, k1, err, sizeof(err)) == -1,
	    "without create a missing key is an error");
	CHECK(crab_auth_key_load(dir, 1, k1, err, sizeof(err)) == 0, "a key is made");
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600, "auth.key is 0600");
	CHECK(crab_auth_key_load(dir, 1, k2, err, sizeof(err)) == 0 &&
	    memcmp(k1, k2, sizeof(k1)) == 0, "and read back the same");
	chmod(path, 0644);
	CHECK(crab_auth_key_load(dir, 1, k2, err, sizeof(err)) == -1 &&
	    strstr(err, "chmod 0600") != NULL, "a key readable by others is refused");
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	test_seal();
	test_pkce();
	test_key_file();
	return unit_done();
}
