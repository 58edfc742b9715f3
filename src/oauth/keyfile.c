/* Private keys, certificates and service account key files of app-only
 * accounts, parsed from memory with OpenSSL (PEM, X.509) and cJSON. */

#include <string.h>
#include <time.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/decoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tokend/keyfile.h"
#include "tokend/pkce.h"
#include "tokend/shared.h"

struct app_key {
    EVP_PKEY *pkey;
};

G_DEFINE_AUTOPTR_CLEANUP_FUNC(BIO, BIO_free)

void app_key_free(AppKey *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    g_free(k);
}

void *app_key_pkey(const AppKey *k)
{
    return k->pkey;
}

/* OpenSSL asks for the passphrase through this, never on the terminal. */
static int give_passphrase(char *buf, int size, int rwflag, void *user)
{
    const SecStr *p = user;

    (void)rwflag;
    if (!p || p->len == 0 || p->len > (size_t)size)
        return -1;
    memcpy(buf, p->data, p->len);
    return (int)p->len;
}

/* The fields of an RSAPrivateKey (RFC 8017 A.1.2) after its version, as
 * OpenSSL's RSA key parameters. */
static const char *const rsa_fields[] = {
    OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
    OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
    OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
    OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
};
#define RSA_FIELDS G_N_ELEMENTS(rsa_fields)

static void sequence_wipe_free(ASN1_SEQUENCE_ANY *seq)
{
    for (int i = 0; i < sk_ASN1_TYPE_num(seq); i++) {
        ASN1_TYPE *t = sk_ASN1_TYPE_value(seq, i);

        if (t->type == V_ASN1_INTEGER)
            OPENSSL_cleanse((void *)ASN1_STRING_get0_data(t->value.integer),
                            (size_t)ASN1_STRING_length(t->value.integer));
    }
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
}

/* A two-prime RSAPrivateKey in DER made into a key pair from its numbers
 * (EVP_PKEY_fromdata); NULL for anything else.  Every copy of the numbers
 * is wiped: the DER's integers, the BIGNUMs, and the parameters (secure
 * BIGNUMs go to the part of them that OSSL_PARAM_free wipes). */
static EVP_PKEY *rsa_from_der(const unsigned char *der, long len)
{
    ASN1_SEQUENCE_ANY *seq = d2i_ASN1_SEQUENCE_ANY(NULL, &der, len);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bn[RSA_FIELDS] = {0};
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    ASN1_TYPE *version =
        seq && sk_ASN1_TYPE_num(seq) == 1 + (int)RSA_FIELDS ? sk_ASN1_TYPE_value(seq, 0) : NULL;
    bool ok = bld && version && version->type == V_ASN1_INTEGER &&
              ASN1_INTEGER_get(version->value.integer) == 0;

    for (size_t i = 0; ok && i < RSA_FIELDS; i++) {
        ASN1_TYPE *t = sk_ASN1_TYPE_value(seq, (int)i + 1);

        ok = t->type == V_ASN1_INTEGER && (bn[i] = BN_secure_new()) != NULL &&
             ASN1_INTEGER_to_BN(t->value.integer, bn[i]) &&
             OSSL_PARAM_BLD_push_BN(bld, rsa_fields[i], bn[i]) == 1;
    }
    if (ok && (params = OSSL_PARAM_BLD_to_param(bld)) &&
        (ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) && EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params); /* the numbers, secure BIGNUMs, are in its wiped part */
    OSSL_PARAM_BLD_free(bld);
    for (size_t i = 0; i < RSA_FIELDS; i++)
        BN_clear_free(bn[i]);
    if (seq)
        sequence_wipe_free(seq);
    return pkey;
}

/* An unencrypted RSA key in PEM, PKCS #8 ("PRIVATE KEY") or PKCS #1 ("RSA
 * PRIVATE KEY" without headers), read without OpenSSL 3's decoders:
 * building a decoder chain costs about 0.35 ms of CPU per mint, reading
 * the DER and its numbers 0.05 ms.  NULL for any other key or PEM, which
 * then goes to the decoders. */
static EVP_PKEY *read_plain_rsa_key(const SecStr *pem)
{
    g_autoptr(BIO) bio = BIO_new_mem_buf(pem->data, (int)pem->len);
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;
    long len = 0;
    EVP_PKEY *pkey = NULL;

    if (!bio || PEM_read_bio(bio, &name, &header, &der, &len) != 1)
        return NULL;
    if (strcmp(name, PEM_STRING_PKCS8INF) == 0) {
        const unsigned char *p = der, *inner = NULL;
        PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, len);
        const X509_ALGOR *alg = NULL;
        const ASN1_OBJECT *oid = NULL;
        int inner_len = 0;

        if (p8 && PKCS8_pkey_get0(NULL, &inner, &inner_len, &alg, p8) == 1 &&
            (X509_ALGOR_get0(&oid, NULL, NULL, alg), OBJ_obj2nid(oid) == NID_rsaEncryption))
            pkey = rsa_from_der(inner, inner_len);
        PKCS8_PRIV_KEY_INFO_free(p8);
    } else if (strcmp(name, PEM_STRING_RSA) == 0 && header[0] == '\0') {
        pkey = rsa_from_der(der, len);
    }
    OPENSSL_clear_free(der, (size_t)len);
    OPENSSL_free(name);
    OPENSSL_free(header);
    return pkey;
}

/* The key asked of OpenSSL's decoders as what tokend signs with, an RSA
 * key pair in PEM (PKCS #8, encrypted or not, or PKCS #1): building a
 * decoder chain for every key type and structure, as
 * PEM_read_bio_PrivateKey does, costs about 0.4 ms of CPU per mint more.
 * Any other key goes on to PEM_read_bio_PrivateKey, whose answer gives the
 * error. */
static EVP_PKEY *read_rsa_key(const SecStr *pem, const SecStr *passphrase)
{
    g_autoptr(BIO) bio = NULL;
    EVP_PKEY *pkey = read_plain_rsa_key(pem);
    OSSL_DECODER_CTX *dctx;

    ERR_clear_error();
    if (pkey)
        return pkey;
    bio = BIO_new_mem_buf(pem->data, (int)pem->len);
    dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "PEM", NULL, "RSA", EVP_PKEY_KEYPAIR, NULL, NULL);
    if (bio && dctx &&
        OSSL_DECODER_CTX_set_pem_password_cb(dctx, give_passphrase, (void *)passphrase) == 1 &&
        OSSL_DECODER_from_bio(dctx, bio) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    OSSL_DECODER_CTX_free(dctx);
    ERR_clear_error();
    return pkey;
}

static bool pem_encrypted(const SecStr *pem)
{
    return g_strstr_len(pem->data, (gssize)pem->len, "ENCRYPTED") != NULL;
}

AppKey *keyfile_parse_private_key(const SecStr *pem, const SecStr *passphrase,
                                  struct tokend_error *e)
{
    g_autoptr(BIO) bio = NULL;
    EVP_PKEY *pkey;
    AppKey *k;

    if (pem->len == 0 || pem->len > KEYFILE_MAX_BYTES) {
        error_set(e, TOKEND_EX_DATAERR, "the private key is empty or too large");
        return NULL;
    }
    pkey = read_rsa_key(pem, passphrase);
    if (!pkey) {
        bio = BIO_new_mem_buf(pem->data, (int)pem->len);
        pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, give_passphrase, (void *)passphrase) : NULL;
    }
    ERR_clear_error();
    if (!pkey && pem_encrypted(pem)) {
        error_set(e, TOKEND_EX_CONFIG, "the private key is encrypted and the passphrase %s",
                  passphrase ? "does not open it" : "is missing");
        error_set_hint(e, "set client_key_passphrase_file to a file holding the passphrase");
        return NULL;
    }
    if (!pkey) {
        error_set(e, TOKEND_EX_DATAERR, "not a PEM private key");
        return NULL;
    }
    if (EVP_PKEY_get_base_id(pkey) != EVP_PKEY_RSA || EVP_PKEY_get_bits(pkey) < 2048) {
        EVP_PKEY_free(pkey);
        error_set(e, TOKEND_EX_DATAERR,
                  "the private key is not an RSA key of 2048 bits or more "
                  "(RS256 and PS256 need one)");
        return NULL;
    }
    k = g_new0(AppKey, 1);
    k->pkey = pkey;
    return k;
}

void app_cert_free(AppCert *c)
{
    if (!c)
        return;
    g_free(c->x5t_s256);
    g_free(c->x5t);
    BN_free(c->rsa_n);
    BN_free(c->rsa_e);
    g_free(c);
}

static char *thumbprint(const unsigned char *der, size_t len, const EVP_MD *md)
{
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    if (EVP_Digest(der, len, digest, &n, md, NULL) != 1)
        return NULL;
    return pkce_base64url(digest, n);
}

/* The DER of the first certificate of a PEM text (a key or other block
 * before it is passed over, as PEM_read_bio_X509 does). */
static unsigned char *certificate_der(const char *pem, size_t len, long *der_len)
{
    g_autoptr(BIO) bio = BIO_new_mem_buf(pem, (int)len);
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL;

    while (bio && PEM_read_bio(bio, &name, &header, &der, der_len) == 1) {
        bool found =
            (strcmp(name, PEM_STRING_X509) == 0 || strcmp(name, PEM_STRING_X509_OLD) == 0) &&
            header[0] == '\0';

        OPENSSL_free(name);
        OPENSSL_free(header);
        if (found)
            return der;
        OPENSSL_clear_free(der, (size_t)*der_len);
        der = NULL;
    }
    return NULL;
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ASN1_SEQUENCE_ANY, sequence_wipe_free)

/* The elements of a DER SEQUENCE held by an ASN.1 ANY. */
static ASN1_SEQUENCE_ANY *sequence_of(const ASN1_TYPE *t)
{
    const unsigned char *p;

    if (!t || t->type != V_ASN1_SEQUENCE)
        return NULL;
    p = ASN1_STRING_get0_data(t->value.sequence);
    return d2i_ASN1_SEQUENCE_ANY(NULL, &p, ASN1_STRING_length(t->value.sequence));
}

static bool time_of(const ASN1_TYPE *validity, gint64 *not_after)
{
    const unsigned char *p;
    X509_VAL *v;
    struct tm tm;
    bool ok;

    if (!validity || validity->type != V_ASN1_SEQUENCE)
        return false;
    p = ASN1_STRING_get0_data(validity->value.sequence);
    v = d2i_X509_VAL(NULL, &p, ASN1_STRING_length(validity->value.sequence));
    ok = v && ASN1_TIME_to_tm(v->notAfter, &tm) == 1;
    X509_VAL_free(v);
    if (ok)
        *not_after = (gint64)timegm(&tm);
    return ok;
}

/* An RSA subjectPublicKeyInfo's modulus and exponent; false for another
 * kind of key (which then matches no private key tokend signs with). */
static bool rsa_numbers(const ASN1_TYPE *spki, AppCert *c)
{
    g_autoptr(ASN1_SEQUENCE_ANY) info = sequence_of(spki);
    g_autoptr(ASN1_SEQUENCE_ANY) numbers = NULL;
    ASN1_SEQUENCE_ANY *alg = NULL;
    const ASN1_TYPE *oid, *bits;
    const unsigned char *p;

    if (!info || sk_ASN1_TYPE_num(info) != 2 || !(alg = sequence_of(sk_ASN1_TYPE_value(info, 0))))
        return false;
    oid = sk_ASN1_TYPE_num(alg) >= 1 ? sk_ASN1_TYPE_value(alg, 0) : NULL;
    bits = sk_ASN1_TYPE_value(info, 1);
    if (oid && oid->type == V_ASN1_OBJECT && OBJ_obj2nid(oid->value.object) == NID_rsaEncryption &&
        bits->type == V_ASN1_BIT_STRING) {
        p = ASN1_STRING_get0_data(bits->value.bit_string);
        numbers = d2i_ASN1_SEQUENCE_ANY(NULL, &p, ASN1_STRING_length(bits->value.bit_string));
    }
    sequence_wipe_free(alg);
    if (!numbers || sk_ASN1_TYPE_num(numbers) != 2 ||
        sk_ASN1_TYPE_value(numbers, 0)->type != V_ASN1_INTEGER ||
        sk_ASN1_TYPE_value(numbers, 1)->type != V_ASN1_INTEGER)
        return false;
    c->rsa_n = ASN1_INTEGER_to_BN(sk_ASN1_TYPE_value(numbers, 0)->value.integer, NULL);
    c->rsa_e = ASN1_INTEGER_to_BN(sk_ASN1_TYPE_value(numbers, 1)->value.integer, NULL);
    return c->rsa_n && c->rsa_e;
}

/* The parts of an X.509 certificate (RFC 5280 4.1) tokend uses, read with
 * OpenSSL's generic DER reader: TBSCertificate ::= SEQUENCE { [0] version
 * OPTIONAL, serialNumber, signature, issuer, validity, subject,
 * subjectPublicKeyInfo, ... }.  d2i_X509 would also build the public key
 * through OpenSSL 3's decoders, about 0.35 ms of CPU per mint, for a key
 * that is only compared with the private key. */
static bool read_certificate(const unsigned char *der, long len, AppCert *c)
{
    const unsigned char *p = der;
    g_autoptr(ASN1_SEQUENCE_ANY) cert = d2i_ASN1_SEQUENCE_ANY(NULL, &p, len);
    g_autoptr(ASN1_SEQUENCE_ANY) tbs = NULL;
    size_t used = (size_t)(p - der);
    int first;

    if (!cert || sk_ASN1_TYPE_num(cert) != 3 ||
        sk_ASN1_TYPE_value(cert, 2)->type != V_ASN1_BIT_STRING ||
        !(tbs = sequence_of(sk_ASN1_TYPE_value(cert, 0))))
        return false;
    /* The version, when present, is the only element with a context tag. */
    first = sk_ASN1_TYPE_num(tbs) > 0 && sk_ASN1_TYPE_value(tbs, 0)->type == V_ASN1_OTHER;
    if (sk_ASN1_TYPE_num(tbs) < first + 6 ||
        sk_ASN1_TYPE_value(tbs, first)->type != V_ASN1_INTEGER ||
        !time_of(sk_ASN1_TYPE_value(tbs, first + 3), &c->not_after))
        return false;
    rsa_numbers(sk_ASN1_TYPE_value(tbs, first + 5), c);
    c->x5t_s256 = thumbprint(der, used, EVP_sha256());
    c->x5t = thumbprint(der, used, EVP_sha1());
    return c->x5t_s256 && c->x5t;
}

AppCert *keyfile_parse_certificate(const char *pem, size_t len, struct tokend_error *e)
{
    g_autoptr(AppCert) c = g_new0(AppCert, 1);
    unsigned char *der = NULL;
    long der_len = 0;
    bool ok;

    if (len == 0 || len > KEYFILE_MAX_BYTES) {
        error_set(e, TOKEND_EX_DATAERR, "the certificate is empty or too large");
        return NULL;
    }
    der = certificate_der(pem, len, &der_len);
    ERR_clear_error();
    if (!der) {
        error_set(e, TOKEND_EX_DATAERR, "not a PEM certificate");
        return NULL;
    }
    ok = read_certificate(der, der_len, c);
    OPENSSL_free(der);
    ERR_clear_error();
    if (!ok) {
        error_set(e, TOKEND_EX_DATAERR, "the certificate cannot be read (thumbprint, key, expiry)");
        return NULL;
    }
    return g_steal_pointer(&c);
}

/* The private key's public half is the certificate's RSA key. */
bool keyfile_key_matches(const AppKey *k, const AppCert *c)
{
    BIGNUM *n = NULL, *e = NULL;
    bool same = c->rsa_n && c->rsa_e &&
                EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
                EVP_PKEY_get_bn_param(k->pkey, OSSL_PKEY_PARAM_RSA_E, &e) == 1 &&
                BN_cmp(n, c->rsa_n) == 0 && BN_cmp(e, c->rsa_e) == 0;

    BN_free(n);
    BN_free(e);
    ERR_clear_error();
    return same;
}

void service_account_free(ServiceAccount *s)
{
    if (!s)
        return;
    g_free(s->client_email);
    g_free(s->client_id);
    g_free(s->private_key_id);
    g_free(s->token_uri);
    secstr_free(s->private_key);
    g_free(s);
}

/* Wipe every string of a tree that holds a private key, then free it. */

static const char *json_string(const cJSON *root, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);

    return cJSON_IsString(v) && v->valuestring && *v->valuestring ? v->valuestring : NULL;
}

static int key_file_error(struct tokend_error *e, const char *what)
{
    error_set(e, TOKEND_EX_DATAERR, "not a service account key file: %s", what);
    error_set_hint(e, "download a JSON key of the service account (IAM, Service accounts, Keys)");
    return -1;
}

ServiceAccount *keyfile_parse_service_account(const SecStr *json, struct tokend_error *e)
{
    g_autoptr(SecretJson) root = NULL;
    g_autoptr(ServiceAccount) s = g_new0(ServiceAccount, 1);
    const char *type, *key;

    if (json->len > KEYFILE_MAX_BYTES || memchr(json->data, '\0', json->len)) {
        key_file_error(e, "too large, or not text");
        return NULL;
    }
    root = cJSON_ParseWithLength(json->data, json->len);
    if (!cJSON_IsObject(root)) {
        key_file_error(e, "not a JSON object");
        return NULL;
    }
    type = json_string(root, "type");
    key = json_string(root, "private_key");
    if (g_strcmp0(type, "service_account") != 0 || !key || !json_string(root, "client_email")) {
        key_file_error(e, "type, client_email or private_key is missing");
        return NULL;
    }
    s->client_email = g_strdup(json_string(root, "client_email"));
    s->client_id = g_strdup(json_string(root, "client_id"));
    s->private_key_id = g_strdup(json_string(root, "private_key_id"));
    s->token_uri = g_strdup(json_string(root, "token_uri"));
    s->private_key = secstr_from(key, strlen(key));
    return g_steal_pointer(&s);
}
