/* identity.h: a component's long-lived identity (SECURITY.md, "Identities"): an Ed25519
 * key pair and a self-signed X.509 certificate for it, kept in the role's data directory
 * as identity.key and identity.crt (mode 0600, the directory 0700) and created on first
 * use. Nothing is trusted because of a CA or a name: a peer is its fingerprint, the
 * SHA-256 of its DER SubjectPublicKeyInfo in lowercase hex (PROTOCOLS.md §8), pinned at
 * pairing. */
#ifndef CRAB_IDENTITY_H
#define CRAB_IDENTITY_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>

#define CRAB_FP_HEX 65   /* 64 hex digits and the NUL */
#define CRAB_FP_SHORT 25 /* "3f2a-91bc-0d7e-55a1-c9e0": the first 20 digits, by four */
#define CRAB_SIG_B64 96  /* base64 of a 64-byte Ed25519 signature, NUL included */

struct crab_identity {
	EVP_PKEY *key;
	X509 *cert;
	char fingerprint[CRAB_FP_HEX];
	char short_fp[CRAB_FP_SHORT];
};

/* Loads dir/identity.key and dir/identity.crt. When both are missing and create is set,
 * makes dir (0700) if needed and writes a new pair (0600, written to a temporary file
 * and renamed, so a crash never leaves half a key), with common name cn; a key whose
 * certificate is missing gets a new certificate (same key, same fingerprint). Refuses a
 * dir writable by group or others, a key file readable by them, a certificate without
 * its key, and a pair whose certificate is not of the key. *created (may be NULL) tells
 * whether the key was made now. NULL with one line in err. */
struct crab_identity *crab_identity_load(const char *dir, const char *cn, int create,
    int *created, char *err, size_t errlen);
void crab_identity_free(struct crab_identity *id);

/* Fingerprints: of a public key, of a certificate's key. 0, or -1. */
int crab_fingerprint_pkey(EVP_PKEY *key, char out[CRAB_FP_HEX]);
int crab_fingerprint_cert(X509 *cert, char out[CRAB_FP_HEX]);
/* The short form of a full fingerprint. */
void crab_fingerprint_short(const char *fp, char out[CRAB_FP_SHORT]);
/* Whether text names fp: the full 64 hex digits, or the short form (with or without its
 * dashes, any case). The comparison is constant-time. 1 yes, 0 no. */
int crab_fingerprint_matches(const char *fp, const char *text);
/* Whether text is a fingerprint as --expect takes it (full or short form). */
int crab_fingerprint_valid(const char *text);

/* Pairing (PROTOCOLS.md §8): SHA-256 of
 * "crab-pair-v1\n" gateway_id "\n" fingerprint "\n" nonce "\n" component_type "\n" component_id */
void crab_pair_transcript(const char *gateway_id, const char *fingerprint, const char *nonce,
    const char *component_type, const char *component_id, unsigned char digest[32]);
/* The Ed25519 signature of the 32-byte digest by the identity's key, base64. 0 or -1. */
int crab_identity_sign(const struct crab_identity *id, const unsigned char digest[32],
    char sig_b64[CRAB_SIG_B64]);
/* Whether sig_b64 is key's signature of digest: 1 yes, 0 no (bad base64 included). */
int crab_signature_verify(EVP_PKEY *key, const unsigned char digest[32], const char *sig_b64);

#endif
