/*
 * sigv4.c - AWS Signature Version 4 (see sigv4.h for the rules and the calling sequence).
 *
 *   canonical request = METHOD \n URI \n QUERY \n HEADERS(name:value\n ...) \n SIGNED \n HASH
 *   string to sign    = "AWS4-HMAC-SHA256" \n DATE \n SCOPE \n hex(sha256(canonical request))
 *   signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" secret, yyyymmdd), region), service),
 *                            "aws4_request")
 *   signature         = hex(HMAC(signing key, string to sign))
 */
#include "backends/sigv4.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/util.h"

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
	       c == '_' || c == '~';
}

char *rfs_sigv4_encode(const char *s, int keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s);
	char *out = malloc(3 * n + 1), *o = out;
	if (!out)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (unreserved(*p) || (keep_slash && *p == '/')) {
			*o++ = (char)*p;
		} else {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 15];
		}
	}
	*o = 0;
	return out;
}

void rfs_sigv4_payload_hash(const void *data, size_t len, char out[65])
{
	uint8_t h[RFS_HASH_LEN];
	rfs_sha256(data, len, h);
	rfs_hex(h, sizeof(h), out);
}

static int hmac(const void *key, size_t klen, const void *msg, size_t mlen, uint8_t out[32])
{
	unsigned int olen = 32;
	return HMAC(EVP_sha256(), key, (int)klen, msg, mlen, out, &olen) ? 0 : -ENOMEM;
}

static int puts_buf(struct rfs_buf *b, const char *s)
{
	return rfs_buf_append(b, s, strlen(s));
}

/* Takes the buffer's bytes as a NUL-terminated string; the buffer is left empty. */
static char *take(struct rfs_buf *b)
{
	if (rfs_buf_append(b, "", 1) < 0) {
		rfs_buf_free(b);
		return NULL;
	}
	char *s = (char *)b->data;
	b->data = NULL;
	b->len = b->cap = 0;
	return s;
}

struct pair {
	char *name;  /* encoded (query) or lowercased (headers) */
	char *value; /* encoded (query) or trimmed (headers) */
};

static int cmp_pair(const void *a, const void *b)
{
	const struct pair *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : strcmp(x->value, y->value);
}

/* Header value: trim both ends, collapse runs of spaces/tabs into one space. */
static char *trim_value(const char *v)
{
	char *out = malloc(strlen(v) + 1), *o = out;
	if (!out)
		return NULL;
	while (*v == ' ' || *v == '\t')
		v++;
	int space = 0;
	for (; *v; v++) {
		if (*v == ' ' || *v == '\t') {
			space = 1;
			continue;
		}
		if (space && o != out)
			*o++ = ' ';
		space = 0;
		*o++ = *v;
	}
	*o = 0;
	return out;
}

static char *lower_name(const char *n)
{
	size_t len = strlen(n);
	if (!len)
		return NULL;
	char *out = malloc(len + 1);
	if (!out)
		return NULL;
	for (size_t i = 0; i <= len; i++) {
		char c = n[i];
		out[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	return out;
}

static void free_pairs(struct pair *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(p[i].name);
		free(p[i].value);
	}
	free(p);
}

static int valid_header_name(const char *n)
{
	if (!*n)
		return 0;
	for (; *n; n++)
		if (*n <= ' ' || *n == ':' || (unsigned char)*n >= 0x7f)
			return 0;
	return 1;
}

void rfs_sigv4_result_free(struct rfs_sigv4_result *r)
{
	free(r->uri);
	free(r->query);
	free(r->canonical_request);
	free(r->authorization);
	for (int i = 0; i < r->nheaders; i++)
		free(r->headers[i]);
	memset(r, 0, sizeof(*r));
}

static char *fmt(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 3;
	char *s = malloc(n);
	if (s)
		snprintf(s, n, "%s: %s", a, b);
	return s;
}

int rfs_sigv4_sign(const struct rfs_sigv4_request *req, struct rfs_sigv4_result *out)
{
	int rc = 0;
	struct pair *q = NULL, *h = NULL;
	size_t nq = 0, nh = 0;
	struct rfs_buf b = {0};
	memset(out, 0, sizeof(*out));
	if (!req->method || !req->host || !req->path || req->path[0] != '/' || !req->payload_hash || !req->region ||
	    !req->service || !req->creds || !req->creds->access_key || !req->creds->secret_key)
		return -EINVAL;
	const char *token =
	    req->creds->session_token && req->creds->session_token[0] ? req->creds->session_token : NULL;
	struct tm tm;
	time_t now = req->now;
	if (!gmtime_r(&now, &tm))
		return -EINVAL;
	strftime(out->amz_date, sizeof(out->amz_date), "%Y%m%dT%H%M%SZ", &tm);
	char day[9];
	memcpy(day, out->amz_date, 8);
	day[8] = 0;

	/* URI */
	out->uri = rfs_sigv4_encode(req->path, 1);
	if (!out->uri)
		goto nomem;

	/* query: encode, sort, join */
	if (req->nquery) {
		q = calloc(req->nquery, sizeof(*q));
		if (!q)
			goto nomem;
		for (nq = 0; nq < req->nquery; nq++) {
			const struct rfs_sigv4_kv *kv = &req->query[nq];
			q[nq].name = rfs_sigv4_encode(kv->name ? kv->name : "", 0);
			q[nq].value = rfs_sigv4_encode(kv->value ? kv->value : "", 0);
			if (!q[nq].name || !q[nq].value) {
				nq++;
				goto nomem;
			}
		}
		qsort(q, nq, sizeof(*q), cmp_pair);
	}
	for (size_t i = 0; i < nq; i++) {
		if ((i && puts_buf(&b, "&") < 0) || puts_buf(&b, q[i].name) < 0 || puts_buf(&b, "=") < 0 ||
		    puts_buf(&b, q[i].value) < 0)
			goto nomem;
	}
	out->query = take(&b);
	if (!out->query)
		goto nomem;

	/* headers: host, the caller's, x-amz-date, [x-amz-content-sha256], [x-amz-security-token] */
	size_t cap = req->nheaders + 4;
	h = calloc(cap, sizeof(*h));
	if (!h)
		goto nomem;
	struct rfs_sigv4_kv fixed[4];
	size_t nfixed = 0;
	fixed[nfixed++] = (struct rfs_sigv4_kv){"host", req->host};
	fixed[nfixed++] = (struct rfs_sigv4_kv){"x-amz-date", out->amz_date};
	if (req->add_content_sha256)
		fixed[nfixed++] = (struct rfs_sigv4_kv){"x-amz-content-sha256", req->payload_hash};
	if (token)
		fixed[nfixed++] = (struct rfs_sigv4_kv){"x-amz-security-token", token};
	for (size_t i = 0; i < nfixed + req->nheaders; i++) {
		const struct rfs_sigv4_kv *kv = i < nfixed ? &fixed[i] : &req->headers[i - nfixed];
		if (!kv->name || !valid_header_name(kv->name)) {
			rc = -EINVAL;
			goto out;
		}
		h[nh].name = lower_name(kv->name);
		h[nh].value = trim_value(kv->value ? kv->value : "");
		nh++;
		if (!h[nh - 1].name || !h[nh - 1].value)
			goto nomem;
		if (i >= nfixed) {
			for (size_t j = 0; j < nfixed; j++)
				if (!strcmp(h[nh - 1].name, fixed[j].name)) {
					rc = -EINVAL; /* the signer owns these */
					goto out;
				}
		}
	}
	/* stable order for equal names: sort by name only, keeping input order (insertion sort) */
	for (size_t i = 1; i < nh; i++) {
		struct pair t = h[i];
		size_t j = i;
		while (j > 0 && strcmp(h[j - 1].name, t.name) > 0) {
			h[j] = h[j - 1];
			j--;
		}
		h[j] = t;
	}

	/* canonical request */
	if (puts_buf(&b, req->method) < 0 || puts_buf(&b, "\n") < 0 || puts_buf(&b, out->uri) < 0 ||
	    puts_buf(&b, "\n") < 0 || puts_buf(&b, out->query) < 0 || puts_buf(&b, "\n") < 0)
		goto nomem;
	struct rfs_buf signed_h = {0};
	for (size_t i = 0; i < nh; i++) {
		int dup = i && !strcmp(h[i].name, h[i - 1].name);
		if (dup) {
			/* joined onto the previous line: replace its "\n" with ",value\n" */
			b.len--;
			if (puts_buf(&b, ",") < 0 || puts_buf(&b, h[i].value) < 0 || puts_buf(&b, "\n") < 0)
				goto nomem_sh;
			continue;
		}
		if (puts_buf(&b, h[i].name) < 0 || puts_buf(&b, ":") < 0 || puts_buf(&b, h[i].value) < 0 ||
		    puts_buf(&b, "\n") < 0)
			goto nomem_sh;
		if ((signed_h.len && puts_buf(&signed_h, ";") < 0) || puts_buf(&signed_h, h[i].name) < 0)
			goto nomem_sh;
	}
	char *signed_headers = take(&signed_h);
	if (!signed_headers)
		goto nomem;
	if (puts_buf(&b, "\n") < 0 || puts_buf(&b, signed_headers) < 0 || puts_buf(&b, "\n") < 0 ||
	    puts_buf(&b, req->payload_hash) < 0) {
		free(signed_headers);
		goto nomem;
	}
	out->canonical_request = take(&b);
	if (!out->canonical_request) {
		free(signed_headers);
		goto nomem;
	}

	/* string to sign and signature */
	char creq_hash[65];
	rfs_sigv4_payload_hash(out->canonical_request, strlen(out->canonical_request), creq_hash);
	char scope[256];
	if ((size_t)snprintf(scope, sizeof(scope), "%s/%s/%s/aws4_request", day, req->region, req->service) >=
	    sizeof(scope)) {
		free(signed_headers);
		rc = -EINVAL;
		goto out;
	}
	char sts[512];
	int stslen = snprintf(sts, sizeof(sts), "AWS4-HMAC-SHA256\n%s\n%s\n%s", out->amz_date, scope, creq_hash);

	size_t sklen = strlen(req->creds->secret_key) + 4;
	char *kinit = malloc(sklen + 1);
	if (!kinit) {
		free(signed_headers);
		goto nomem;
	}
	snprintf(kinit, sklen + 1, "AWS4%s", req->creds->secret_key);
	uint8_t k1[32], k2[32], k3[32], k4[32], sig[32];
	int hr = hmac(kinit, sklen, day, 8, k1);
	OPENSSL_cleanse(kinit, sklen);
	free(kinit);
	if (!hr)
		hr = hmac(k1, 32, req->region, strlen(req->region), k2);
	if (!hr)
		hr = hmac(k2, 32, req->service, strlen(req->service), k3);
	if (!hr)
		hr = hmac(k3, 32, "aws4_request", 12, k4);
	if (!hr)
		hr = hmac(k4, 32, sts, (size_t)stslen, sig);
	OPENSSL_cleanse(k1, 32);
	OPENSSL_cleanse(k2, 32);
	OPENSSL_cleanse(k3, 32);
	OPENSSL_cleanse(k4, 32);
	if (hr) {
		free(signed_headers);
		goto nomem;
	}
	char sighex[65];
	rfs_hex(sig, sizeof(sig), sighex);
	size_t alen = strlen(req->creds->access_key) + strlen(scope) + strlen(signed_headers) + 128;
	out->authorization = malloc(alen);
	if (!out->authorization) {
		free(signed_headers);
		goto nomem;
	}
	snprintf(out->authorization, alen, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
		 req->creds->access_key, scope, signed_headers, sighex);
	free(signed_headers);

	out->headers[out->nheaders++] = fmt("x-amz-date", out->amz_date);
	if (req->add_content_sha256)
		out->headers[out->nheaders++] = fmt("x-amz-content-sha256", req->payload_hash);
	if (token)
		out->headers[out->nheaders++] = fmt("x-amz-security-token", token);
	out->headers[out->nheaders++] = fmt("Authorization", out->authorization);
	for (int i = 0; i < out->nheaders; i++)
		if (!out->headers[i])
			goto nomem;
	goto out;

nomem_sh:
	rfs_buf_free(&signed_h);
nomem:
	rc = -ENOMEM;
out:
	free_pairs(q, nq);
	free_pairs(h, nh);
	rfs_buf_free(&b);
	if (rc < 0)
		rfs_sigv4_result_free(out);
	return rc;
}
