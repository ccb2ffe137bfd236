/*
 * s3.c - the `s3` store: objects in an S3-compatible bucket (AWS, Alibaba OSS, Huawei OBS,
 * MinIO, Ceph RGW), under a key prefix. The URL grammar is in s3.h; user documentation in
 * docs/s3.md.
 *
 * Requests. Every store call becomes one or a few HTTP requests, signed with SigV4
 * (sigv4.c) over the SHA-256 of the body (x-amz-content-sha256), sent with a libcurl easy
 * handle taken from a small pool (pool_get/pool_put: a mutex-protected free list, so the
 * connections stay open between requests and any number of threads may call in at once).
 *
 * Retries. s3_send() retries a request on outcomes that say nothing was done: connection
 * refused/reset, timeouts, HTTP 5xx, 429, 503 SlowDown, 400 RequestTimeout; up to
 * cfg.attempts tries with exponential backoff and jitter (ROAMFS_S3_BACKOFF_MS doubling,
 * capped at ROAMFS_S3_BACKOFF_MAX_MS, each wait a random 50-100% of the step). A
 * conditional PUT is never repeated blindly: after an ambiguous failure (the request may have
 * reached the store) put_if_absent reads the key back and compares it with what it sent
 * (equal: we won; different: -EEXIST; absent: nothing landed, send again).
 *
 * Errors. s3_result() is the one place that turns a finished request into 0 or -errno
 * (404 ENOENT, 403 EACCES, 412 EEXIST, wrong region EINVAL, 501 ENOTSUP, the rest EIO) and
 * records the cause (HTTP status, S3 Code/Message, curl error, credential source - never a
 * secret) with rfs_store_set_error().
 *
 * Large objects. put() of more than cfg.multipart_threshold bytes (64 MiB) uses a multipart
 * upload: initiate, parts of cfg.part_size uploaded by up to ROAMFS_S3_PART_THREADS threads,
 * complete; any failure aborts the upload so no parts are left behind.
 *
 * Listings and error bodies are XML, read by a small tolerant scanner (xml_find) bounded by
 * the body length; bodies are capped (XML_CAP, ERR_BODY_CAP) while they are received.
 *
 * Concurrency: cfg, creds and cond are written only by s3_open() before the store is
 * returned; the handle pool is protected by pool_lock. No other shared state.
 */
#include "backends/s3.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backends/sigv4.h"
#include "fs/log.h"
#include "fs/util.h"

/* ---------- tuning ---------- */

#ifndef ROAMFS_S3_MULTIPART_THRESHOLD
#define ROAMFS_S3_MULTIPART_THRESHOLD (64ULL << 20) /* put() above this size goes multipart */
#endif
#ifndef ROAMFS_S3_PART_SIZE
#define ROAMFS_S3_PART_SIZE (16ULL << 20) /* multipart part size (S3 minimum: 5 MiB) */
#endif
#ifndef ROAMFS_S3_PART_THREADS
#define ROAMFS_S3_PART_THREADS 4 /* parts of one upload sent at once (the caller is one of them) */
#endif
#ifndef ROAMFS_S3_ATTEMPTS
#define ROAMFS_S3_ATTEMPTS 6 /* tries per request on transient failures */
#endif
#ifndef ROAMFS_S3_BACKOFF_MS
#define ROAMFS_S3_BACKOFF_MS 200 /* first retry delay; doubles per retry */
#endif
#ifndef ROAMFS_S3_BACKOFF_MAX_MS
#define ROAMFS_S3_BACKOFF_MAX_MS 8000
#endif
#ifndef ROAMFS_S3_POOL_MAX
#define ROAMFS_S3_POOL_MAX 72 /* idle curl handles (and their connections) kept: 64 fetches + uploads */
#endif
#define CONNECT_TIMEOUT_S 10
#define LOW_SPEED_BYTES 1024     /* abort a transfer slower than this ... */
#define LOW_SPEED_TIME_S 30      /* ... for this long */
#define XML_CAP (16u << 20)      /* listing and multipart replies */
#define ERR_BODY_CAP (64u << 10) /* error replies are cut here */
#define GET_CAP (8ULL << 30)     /* a whole-object GET larger than this is refused */
#define MAX_KEY 1024             /* S3 key limit, prefix included */

/* ---------- small string helpers ---------- */

static char *xstrdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void free_secret(char *s)
{
	if (s) {
		OPENSSL_cleanse(s, strlen(s));
		free(s);
	}
}

/* Percent-decodes s[0..n) into a new string ('+' stays '+'). NULL on bad escape or ENOMEM. */
static char *pct_decode(const char *s, size_t n)
{
	char *out = malloc(n + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '%') {
			if (n - i < 3) {
				free(out);
				return NULL;
			}
			int hi = rfs_hex_digit((unsigned char)s[i + 1]), lo = rfs_hex_digit((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				free(out);
				return NULL;
			}
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else {
			*o++ = s[i];
		}
	}
	*o = 0;
	return out;
}

/* Copies a server-provided string for a message: cut to fit, control characters as '?'. */
static void clean_copy(char *dst, size_t dlen, const char *src)
{
	size_t i = 0;
	for (; src && src[i] && i + 1 < dlen; i++)
		dst[i] = (unsigned char)src[i] < 0x20 || src[i] == 0x7f ? '?' : src[i];
	if (dlen)
		dst[i] = 0;
}

/* ---------- XML: a tolerant, bounded scanner for the few elements we need ---------- */

/* Finds the next element <name> (or <name attr...>, or <name/>) in [p, end). Sets
 * [*vs, *ve) to its content and *next past its end tag. Returns 1 found, 0 absent,
 * -EIO when an opening tag has no matching end. */
static int xml_find(const char *p, const char *end, const char *name, const char **vs, const char **ve,
		    const char **next)
{
	size_t nl = strlen(name);
	while (p < end) {
		const char *lt = memchr(p, '<', (size_t)(end - p));
		if (!lt)
			return 0;
		p = lt + 1;
		if ((size_t)(end - p) < nl + 1)
			return 0;
		if (memcmp(p, name, nl))
			continue;
		char c = p[nl];
		if (c != '>' && c != ' ' && c != '\t' && c != '\r' && c != '\n' && c != '/')
			continue;
		const char *gt = memchr(p + nl, '>', (size_t)(end - (p + nl)));
		if (!gt)
			return -EIO;
		if (gt[-1] == '/') { /* <name/> */
			*vs = *ve = gt + 1;
			*next = gt + 1;
			return 1;
		}
		const char *content = gt + 1;
		/* the end tag "</name>" */
		const char *q = content;
		while (q < end) {
			const char *lt2 = memchr(q, '<', (size_t)(end - q));
			if (!lt2 || (size_t)(end - lt2) < nl + 3)
				return -EIO;
			if (lt2[1] == '/' && !memcmp(lt2 + 2, name, nl) && lt2[2 + nl] == '>') {
				*vs = content;
				*ve = lt2;
				*next = lt2 + nl + 3;
				return 1;
			}
			q = lt2 + 1;
		}
		return -EIO;
	}
	return 0;
}

/* Decodes XML text [s, e) (the five entities and &#N; / &#xN;) into out. -EIO if malformed
 * or too long. */
static int xml_decode(const char *s, const char *e, char *out, size_t outlen)
{
	size_t o = 0;
	while (s < e) {
		char ch[4];
		size_t chn = 1;
		if (*s != '&') {
			ch[0] = *s++;
		} else {
			const char *semi = memchr(s, ';', (size_t)(e - s));
			if (!semi || semi - s > 12)
				return -EIO;
			size_t n = (size_t)(semi - s - 1);
			const char *ent = s + 1;
			if (n == 3 && !memcmp(ent, "amp", 3))
				ch[0] = '&';
			else if (n == 2 && !memcmp(ent, "lt", 2))
				ch[0] = '<';
			else if (n == 2 && !memcmp(ent, "gt", 2))
				ch[0] = '>';
			else if (n == 4 && !memcmp(ent, "quot", 4))
				ch[0] = '"';
			else if (n == 4 && !memcmp(ent, "apos", 4))
				ch[0] = '\'';
			else if (n >= 2 && ent[0] == '#') {
				unsigned long cp = 0;
				int hex = ent[1] == 'x' || ent[1] == 'X';
				size_t i = hex ? 2 : 1;
				if (i >= n)
					return -EIO;
				for (; i < n; i++) {
					int v = hex ? rfs_hex_digit((unsigned char)ent[i])
						    : (ent[i] >= '0' && ent[i] <= '9' ? ent[i] - '0' : -1);
					if (v < 0)
						return -EIO;
					cp = cp * (hex ? 16 : 10) + (unsigned long)v;
					if (cp > 0x10ffff)
						return -EIO;
				}
				if (cp == 0)
					return -EIO;
				/* UTF-8 */
				if (cp < 0x80) {
					ch[0] = (char)cp;
				} else if (cp < 0x800) {
					ch[0] = (char)(0xc0 | cp >> 6);
					ch[1] = (char)(0x80 | (cp & 0x3f));
					chn = 2;
				} else if (cp < 0x10000) {
					ch[0] = (char)(0xe0 | cp >> 12);
					ch[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
					ch[2] = (char)(0x80 | (cp & 0x3f));
					chn = 3;
				} else {
					ch[0] = (char)(0xf0 | cp >> 18);
					ch[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
					ch[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
					ch[3] = (char)(0x80 | (cp & 0x3f));
					chn = 4;
				}
			} else {
				return -EIO;
			}
			s = semi + 1;
		}
		if (o + chn >= outlen)
			return -EIO;
		memcpy(out + o, ch, chn);
		o += chn;
	}
	if (!outlen)
		return -EIO;
	out[o] = 0;
	return 0;
}

int rfs_s3_xml_text(const char *xml, size_t len, const char *name, char *out, size_t outlen)
{
	const char *vs, *ve, *next;
	if (outlen)
		out[0] = 0;
	int rc = xml_find(xml, xml + len, name, &vs, &ve, &next);
	if (rc < 0)
		return rc;
	if (rc == 0)
		return -ENOENT;
	rc = xml_decode(vs, ve, out, outlen);
	if (rc < 0 && outlen)
		out[0] = 0;
	return rc;
}

void rfs_s3_parse_error(const char *xml, size_t len, char *code, size_t codelen, char *msg, size_t msglen, char *region,
			size_t regionlen)
{
	char tmp[1024];
	struct {
		const char *name;
		char *dst;
		size_t dlen;
	} f[] = {{"Code", code, codelen}, {"Message", msg, msglen}, {"Region", region, regionlen}};
	for (size_t i = 0; i < 3; i++) {
		if (!f[i].dlen)
			continue;
		f[i].dst[0] = 0;
		if (xml && rfs_s3_xml_text(xml, len, f[i].name, tmp, sizeof(tmp)) == 0)
			clean_copy(f[i].dst, f[i].dlen, tmp);
	}
}

int rfs_s3_parse_list(const char *xml, size_t len, rfs_list_cb cb, void *arg, int *stopped, int *truncated, char *token,
		      size_t tokenlen)
{
	const char *p = xml, *end = xml + len, *vs, *ve, *next;
	char key[MAX_KEY * 2 + 1], num[32];
	*stopped = 0;
	*truncated = 0;
	if (tokenlen)
		token[0] = 0;
	/* the listing root must be there: an empty or foreign body is not an empty listing */
	int rc = xml_find(p, end, "ListBucketResult", &vs, &ve, &next);
	if (rc <= 0)
		return -EIO;
	const char *body = vs, *bend = ve;
	/* IsTruncated and NextContinuationToken appear before or after the Contents: look for
	 * them outside the Contents blocks only (a key can't contain '<', so no confusion). */
	rc = rfs_s3_xml_text(body, (size_t)(bend - body), "IsTruncated", num, sizeof(num));
	if (rc == 0)
		*truncated = !strcmp(num, "true");
	else if (rc != -ENOENT)
		return -EIO;
	rc = rfs_s3_xml_text(body, (size_t)(bend - body), "NextContinuationToken", token, tokenlen);
	if (rc < 0 && rc != -ENOENT)
		return -EIO;
	for (p = body; p < bend;) {
		rc = xml_find(p, bend, "Contents", &vs, &ve, &next);
		if (rc < 0)
			return -EIO;
		if (rc == 0)
			break;
		p = next;
		if (rfs_s3_xml_text(vs, (size_t)(ve - vs), "Key", key, sizeof(key)) < 0 || !key[0])
			return -EIO;
		if (rfs_s3_xml_text(vs, (size_t)(ve - vs), "Size", num, sizeof(num)) < 0 || !num[0])
			return -EIO;
		uint64_t size = 0;
		for (const char *d = num; *d; d++) {
			uint64_t dig = (uint64_t)(*d - '0');
			if (*d < '0' || *d > '9' || size > (UINT64_MAX - dig) / 10)
				return -EIO;
			size = size * 10 + dig;
		}
		if (cb(arg, key, size)) {
			*stopped = 1;
			return 0;
		}
	}
	return 0;
}

/* ---------- URL parsing ---------- */

static const char *provider_names[] = {"aws", "oss", "obs", "minio", "ceph", "other"};

void rfs_s3_config_free(struct rfs_s3_config *c)
{
	free(c->scheme);
	free(c->host);
	free(c->bucket);
	free(c->prefix);
	free(c->region);
	free(c->access_key);
	free_secret(c->secret_key);
	free_secret(c->session_token);
	free(c->profile);
	free(c->credentials_file);
	free(c->display_url);
	memset(c, 0, sizeof(*c));
}

static int valid_chars(const char *s, const char *extra)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr(extra, *s))
			return 0;
	return 1;
}

/* endpoint=http[s]://host[:port][/] -> scheme, host (default port dropped). */
static int parse_endpoint(struct rfs_s3_config *c, const char *ep, char *err, size_t errlen)
{
	const char *rest;
	if (!strncmp(ep, "https://", 8)) {
		c->scheme = strdup("https");
		rest = ep + 8;
	} else if (!strncmp(ep, "http://", 7)) {
		c->scheme = strdup("http");
		rest = ep + 7;
	} else {
		snprintf(err, errlen, "invalid endpoint '%s': give http://HOST[:PORT] or https://HOST[:PORT]", ep);
		return -EINVAL;
	}
	size_t n = strcspn(rest, "/");
	if (rest[n] && strcmp(rest + n, "/")) {
		snprintf(err, errlen, "invalid endpoint '%s': a path after the host is not supported", ep);
		return -EINVAL;
	}
	char *host = strndup(rest, n);
	if (!c->scheme || !host) {
		free(host);
		return -ENOMEM;
	}
	if (!valid_chars(host, ".-:[]_")) {
		snprintf(err, errlen, "invalid endpoint '%s': bad host name", ep);
		free(host);
		return -EINVAL;
	}
	char *colon = strrchr(host, ':');
	if (colon && !strchr(colon, ']')) {
		char *endp;
		long port = strtol(colon + 1, &endp, 10);
		if (*endp || port <= 0 || port > 65535) {
			snprintf(err, errlen, "invalid endpoint '%s': bad port", ep);
			free(host);
			return -EINVAL;
		}
		if ((port == 443 && !strcmp(c->scheme, "https")) || (port == 80 && !strcmp(c->scheme, "http")))
			*colon = 0;
	}
	c->host = host;
	return 0;
}

static int parse_bool(const char *name, const char *v, int *out, char *err, size_t errlen)
{
	if (!strcmp(v, "1") || !strcmp(v, "true") || !strcmp(v, "yes"))
		*out = 1;
	else if (!strcmp(v, "0") || !strcmp(v, "false") || !strcmp(v, "no"))
		*out = 0;
	else {
		snprintf(err, errlen, "invalid store URL parameter %s='%s': use 1 or 0", name, v);
		return -EINVAL;
	}
	return 0;
}

static int is_secret_param(const char *name, size_t n)
{
	return (n == 10 && !memcmp(name, "secret_key", 10)) || (n == 13 && !memcmp(name, "session_token", 13));
}

/* The URL with the values of secret parameters replaced by "***". */
static char *redact_url(const char *url)
{
	size_t n = strlen(url);
	char *out = malloc(2 * n + 4), *o = out; /* "***" can be longer than the value it hides */
	if (!out)
		return NULL;
	const char *q = strchr(url, '?');
	size_t head = q ? (size_t)(q - url) + 1 : n;
	memcpy(o, url, head);
	o += head;
	for (const char *p = q ? q + 1 : url + n; *p;) {
		size_t len = strcspn(p, "&");
		size_t nl = strcspn(p, "=&");
		if (nl < len && is_secret_param(p, nl)) {
			memcpy(o, p, nl + 1);
			o += nl + 1;
			memcpy(o, "***", 3);
			o += 3;
		} else {
			memcpy(o, p, len);
			o += len;
		}
		p += len;
		if (*p == '&')
			*o++ = *p++;
	}
	*o = 0;
	return out;
}

int rfs_s3_config_parse(const char *url, struct rfs_s3_config *c, char *err, size_t errlen)
{
	int rc = 0;
	char *endpoint = NULL, *style = NULL, *provider = NULL, *cond = NULL, *probe = NULL;
	memset(c, 0, sizeof(*c));
	c->max_keys = 1000;
	c->attempts = ROAMFS_S3_ATTEMPTS;
	c->multipart_threshold = ROAMFS_S3_MULTIPART_THRESHOLD;
	c->part_size = ROAMFS_S3_PART_SIZE;

	int scheme_provider = -1;
	const char *rest;
	if (!strncmp(url, "s3://", 5)) {
		rest = url + 5;
	} else if (!strncmp(url, "oss://", 6)) {
		rest = url + 6;
		scheme_provider = RFS_S3_OSS;
	} else if (!strncmp(url, "obs://", 6)) {
		rest = url + 6;
		scheme_provider = RFS_S3_OBS;
	} else {
		snprintf(err, errlen, "'%s' is not an s3://, oss:// or obs:// URL", url);
		return -EINVAL;
	}
	c->display_url = redact_url(url);
	if (!c->display_url)
		goto nomem;

	size_t pathlen = strcspn(rest, "?");
	size_t blen = strcspn(rest, "/?");
	c->bucket = strndup(rest, blen);
	if (!c->bucket)
		goto nomem;
	if (blen < 1 || blen > 255 || !valid_chars(c->bucket, ".-_")) {
		snprintf(err, errlen, "invalid bucket name '%s' in store URL '%s'", c->bucket, c->display_url);
		rc = -EINVAL;
		goto out;
	}
	/* prefix: decoded, no leading/trailing '/', then one '/' appended */
	const char *ps = rest + blen;
	size_t plen = pathlen - blen;
	while (plen && *ps == '/')
		ps++, plen--;
	while (plen && ps[plen - 1] == '/')
		plen--;
	char *pfx = pct_decode(ps, plen);
	if (!pfx) {
		snprintf(err, errlen, "invalid prefix in store URL '%s': bad %%-escape", c->display_url);
		rc = -EINVAL;
		goto out;
	}
	size_t pl = strlen(pfx);
	c->prefix = malloc(pl + 2);
	if (!c->prefix) {
		free(pfx);
		goto nomem;
	}
	snprintf(c->prefix, pl + 2, "%s%s", pfx, pl ? "/" : "");
	free(pfx);
	if (strlen(c->prefix) > MAX_KEY / 2) {
		snprintf(err, errlen, "prefix in store URL '%s' is too long", c->display_url);
		rc = -EINVAL;
		goto out;
	}

	/* parameters */
	const char *q = rest[pathlen] == '?' ? rest + pathlen + 1 : "";
	while (*q) {
		size_t len = strcspn(q, "&");
		size_t nl = strcspn(q, "=&");
		if (!len) {
			q++;
			continue;
		}
		char name[32];
		if (nl >= sizeof(name) || nl == 0) {
			snprintf(err, errlen, "invalid parameter '%.*s' in store URL '%s'", (int)(nl < 64 ? nl : 64), q,
				 c->display_url);
			rc = -EINVAL;
			goto out;
		}
		memcpy(name, q, nl);
		name[nl] = 0;
		char *v = nl < len ? pct_decode(q + nl + 1, len - nl - 1) : strdup("");
		if (!v) {
			snprintf(err, errlen, "invalid value of %s= in store URL '%s': bad %%-escape", name,
				 c->display_url);
			rc = -EINVAL;
			goto out;
		}
		q += len;
		if (*q == '&')
			q++;
		char **slot = NULL;
		int bv;
		if (!strcmp(name, "endpoint"))
			slot = &endpoint;
		else if (!strcmp(name, "region"))
			slot = &c->region;
		else if (!strcmp(name, "style"))
			slot = &style;
		else if (!strcmp(name, "provider"))
			slot = &provider;
		else if (!strcmp(name, "access_key"))
			slot = &c->access_key;
		else if (!strcmp(name, "secret_key") || !strcmp(name, "session_token")) {
			char **sp = !strcmp(name, "secret_key") ? &c->secret_key : &c->session_token;
			free_secret(*sp);
			*sp = v;
			continue;
		} else if (!strcmp(name, "profile"))
			slot = &c->profile;
		else if (!strcmp(name, "credentials_file"))
			slot = &c->credentials_file;
		else if (!strcmp(name, "conditional"))
			slot = &cond;
		else if (!strcmp(name, "probe"))
			slot = &probe;
		else if (!strcmp(name, "insecure") || !strcmp(name, "create_bucket")) {
			rc = parse_bool(name, v, &bv, err, errlen);
			free(v);
			if (rc < 0)
				goto out;
			*(name[0] == 'i' ? &c->insecure : &c->create_bucket) = bv;
			continue;
		} else if (!strcmp(name, "max_keys") || !strcmp(name, "retries")) {
			char *e;
			long n = strtol(v, &e, 10);
			long max = name[0] == 'm' ? 1000 : 19;
			if (*e || !*v || n < (name[0] == 'm' ? 1 : 0) || n > max) {
				snprintf(err, errlen, "invalid store URL parameter %s='%s': give %s", name, v,
					 name[0] == 'm' ? "1 to 1000" : "0 to 19");
				free(v);
				rc = -EINVAL;
				goto out;
			}
			if (name[0] == 'm')
				c->max_keys = (unsigned)n;
			else
				c->attempts = (int)n + 1;
			free(v);
			continue;
		} else if (!strcmp(name, "multipart_threshold") || !strcmp(name, "part_size")) {
			uint64_t sz;
			int mt = name[0] == 'm';
			if (rfs_parse_size(v, &sz) < 0 || sz < (5ULL << 20) || sz > (5ULL << 30)) {
				snprintf(err, errlen, "invalid store URL parameter %s='%s': give a size from 5M to 5G",
					 name, v);
				free(v);
				rc = -EINVAL;
				goto out;
			}
			*(mt ? &c->multipart_threshold : &c->part_size) = sz;
			free(v);
			continue;
		} else {
			snprintf(
			    err, errlen,
			    "unknown parameter '%s' in store URL '%s' (known: endpoint, region, style, provider, "
			    "profile, credentials_file, access_key, secret_key, session_token, insecure, "
			    "create_bucket, probe, conditional, max_keys, retries, multipart_threshold, part_size)",
			    name, c->display_url);
			free(v);
			rc = -EINVAL;
			goto out;
		}
		free(*slot);
		*slot = v;
	}

	/* provider */
	if (provider) {
		int found = -1;
		for (int i = 0; i < (int)(sizeof(provider_names) / sizeof(provider_names[0])); i++)
			if (!strcmp(provider, provider_names[i]))
				found = i;
		if (found < 0) {
			snprintf(err, errlen, "invalid provider '%s': use aws, oss, obs, minio, ceph or other",
				 provider);
			rc = -EINVAL;
			goto out;
		}
		if (scheme_provider >= 0 && found != scheme_provider) {
			snprintf(err, errlen, "provider=%s contradicts the %s:// scheme", provider,
				 provider_names[scheme_provider]);
			rc = -EINVAL;
			goto out;
		}
		c->provider = (enum rfs_s3_provider)found;
	} else if (scheme_provider >= 0) {
		c->provider = (enum rfs_s3_provider)scheme_provider;
	} else {
		c->provider = endpoint ? RFS_S3_OTHER : RFS_S3_AWS;
	}

	/* region */
	if (!c->region) {
		if (c->provider == RFS_S3_OSS || c->provider == RFS_S3_OBS) {
			snprintf(err, errlen, "store URL '%s' needs region=, e.g. %s", c->display_url,
				 c->provider == RFS_S3_OSS ? "region=cn-hangzhou" : "region=cn-north-4");
			rc = -EINVAL;
			goto out;
		}
		c->region = strdup("us-east-1");
		if (!c->region)
			goto nomem;
	}
	if (!valid_chars(c->region, "-_")) {
		snprintf(err, errlen, "invalid region '%s'", c->region);
		rc = -EINVAL;
		goto out;
	}

	/* endpoint */
	if (endpoint) {
		rc = parse_endpoint(c, endpoint, err, errlen);
		if (rc < 0)
			goto out;
	} else {
		char ep[256];
		switch (c->provider) {
		case RFS_S3_AWS:
			snprintf(ep, sizeof(ep), "https://s3.%s.amazonaws.com", c->region);
			break;
		case RFS_S3_OSS:
			snprintf(ep, sizeof(ep), "https://oss-%s.aliyuncs.com", c->region);
			break;
		case RFS_S3_OBS:
			snprintf(ep, sizeof(ep), "https://obs.%s.myhuaweicloud.com", c->region);
			break;
		default:
			snprintf(err, errlen, "store URL '%s' needs endpoint=URL for provider %s", c->display_url,
				 provider_names[c->provider]);
			rc = -EINVAL;
			goto out;
		}
		rc = parse_endpoint(c, ep, err, errlen);
		if (rc < 0)
			goto out;
	}

	/* addressing style */
	if (style) {
		if (!strcmp(style, "path"))
			c->virtual_style = 0;
		else if (!strcmp(style, "virtual"))
			c->virtual_style = 1;
		else {
			snprintf(err, errlen, "invalid style '%s': use path or virtual", style);
			rc = -EINVAL;
			goto out;
		}
	} else {
		c->virtual_style = c->provider == RFS_S3_AWS || c->provider == RFS_S3_OSS || c->provider == RFS_S3_OBS;
		/* a dotted bucket name does not match the *.s3 wildcard certificate */
		if (c->provider == RFS_S3_AWS && strchr(c->bucket, '.'))
			c->virtual_style = 0;
	}
	if (c->virtual_style && (strchr(c->bucket, '.') || strchr(c->bucket, '_')) && !strcmp(c->scheme, "https") &&
	    style)
		RFS_LOG(LOG_WARNING, "bucket '%s' with style=virtual over https: a dotted name fails TLS host checks",
			c->bucket);

	/* conditional create */
	c->cond = c->provider == RFS_S3_OSS ? RFS_S3_COND_OSS : RFS_S3_COND_IF_NONE_MATCH;
	if (cond) {
		if (!strcmp(cond, "if-none-match"))
			c->cond = RFS_S3_COND_IF_NONE_MATCH;
		else if (!strcmp(cond, "oss"))
			c->cond = RFS_S3_COND_OSS;
		else if (!strcmp(cond, "none"))
			c->cond = RFS_S3_COND_NONE;
		else {
			snprintf(err, errlen, "invalid conditional '%s': use if-none-match, oss or none", cond);
			rc = -EINVAL;
			goto out;
		}
	}
	c->probe = c->provider == RFS_S3_OBS || c->provider == RFS_S3_OTHER;
	if (probe) {
		rc = parse_bool("probe", probe, &c->probe, err, errlen);
		if (rc < 0)
			goto out;
	}
	if (c->part_size > c->multipart_threshold)
		c->part_size = c->multipart_threshold;
	goto out;

nomem:
	rc = -ENOMEM;
	snprintf(err, errlen, "out of memory");
out:
	free(endpoint);
	free(style);
	free(provider);
	free(cond);
	free(probe);
	if (rc < 0)
		rfs_s3_config_free(c);
	return rc;
}

/* ---------- credentials ---------- */

void rfs_s3_creds_free(struct rfs_s3_creds *c)
{
	free(c->access_key);
	free_secret(c->secret_key);
	free_secret(c->session_token);
	memset(c, 0, sizeof(*c));
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = 0;
	return s;
}

/* Reads [profile] of an AWS-style credentials file. Returns 0, -ENOENT (no file / no such
 * profile), or another -errno with err set. */
static int creds_from_file(const char *path, const char *profile, int strict, struct rfs_s3_creds *o, char *err,
			   size_t errlen)
{
	struct stat st;
	if (stat(path, &st) < 0) {
		if (errno == ENOENT && !strict)
			return -ENOENT;
		int e = errno;
		snprintf(err, errlen, "cannot read credentials file '%s': %s", path, strerror(e));
		return -e;
	}
	if (strict && (st.st_mode & 077)) {
		snprintf(err, errlen,
			 "credentials file '%s' is readable by group or others (mode %04o); refusing to use it "
			 "(run: chmod 600 '%s')",
			 path, (unsigned)(st.st_mode & 07777), path);
		return -EACCES;
	}
	char *body = NULL;
	size_t blen = 0;
	int rc = rfs_read_file(path, &body, &blen);
	if (rc < 0) {
		snprintf(err, errlen, "cannot read credentials file '%s': %s", path, strerror(-rc));
		return rc;
	}
	int in = 0, found = 0;
	char *save = NULL;
	for (char *line = strtok_r(body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *l = trim(line);
		if (!*l || *l == '#' || *l == ';')
			continue;
		if (*l == '[') {
			char *e = strchr(l, ']');
			if (!e)
				continue;
			*e = 0;
			char *name = trim(l + 1);
			if (!strncmp(name, "profile ", 8))
				name = trim(name + 8);
			in = !strcmp(name, profile);
			found |= in;
			continue;
		}
		if (!in)
			continue;
		char *eq = strchr(l, '=');
		if (!eq)
			continue;
		*eq = 0;
		char *k = trim(l), *v = trim(eq + 1);
		char **slot = !strcmp(k, "aws_access_key_id")       ? &o->access_key
			      : !strcmp(k, "aws_secret_access_key") ? &o->secret_key
			      : !strcmp(k, "aws_session_token")     ? &o->session_token
								    : NULL;
		if (slot) {
			free_secret(*slot);
			*slot = strdup(v);
		}
	}
	OPENSSL_cleanse(body, blen);
	free(body);
	if (!found) {
		rfs_s3_creds_free(o);
		if (strict) {
			snprintf(err, errlen, "profile '%s' not found in credentials file '%s'", profile, path);
			return -ENOENT;
		}
		return -ENOENT;
	}
	if (!o->access_key || !o->secret_key || !o->access_key[0] || !o->secret_key[0]) {
		rfs_s3_creds_free(o);
		snprintf(err, errlen,
			 "profile '%s' in credentials file '%s' lacks aws_access_key_id or "
			 "aws_secret_access_key",
			 profile, path);
		return -EINVAL;
	}
	snprintf(o->source, sizeof(o->source), "credentials file '%s', profile '%s'", path, profile);
	return 0;
}

int rfs_s3_creds_resolve(const struct rfs_s3_config *c, struct rfs_s3_creds *o, char *err, size_t errlen)
{
	memset(o, 0, sizeof(*o));
	/* 1. the URL */
	if (c->access_key || c->secret_key) {
		if (!c->access_key || !c->secret_key) {
			snprintf(err, errlen, "store URL gives %s without %s",
				 c->access_key ? "access_key" : "secret_key",
				 c->access_key ? "secret_key" : "access_key");
			return -EINVAL;
		}
		o->access_key = strdup(c->access_key);
		o->secret_key = strdup(c->secret_key);
		o->session_token = xstrdup(c->session_token);
		if (!o->access_key || !o->secret_key || (c->session_token && !o->session_token)) {
			rfs_s3_creds_free(o);
			return -ENOMEM;
		}
		snprintf(o->source, sizeof(o->source), "the access_key/secret_key parameters of the store URL");
		RFS_LOG(LOG_WARNING, "store URL carries secret_key=: it can leak through shell history, process "
				     "lists and the mount table; prefer AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a "
				     "credentials file");
		return 0;
	}
	/* 2. the environment */
	static const struct {
		int provider; /* -1: any */
		const char *id, *secret, *token;
	} envs[] = {
	    {RFS_S3_OSS, "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
	     "ALIBABA_CLOUD_SECURITY_TOKEN"},
	    {RFS_S3_OSS, "OSS_ACCESS_KEY_ID", "OSS_ACCESS_KEY_SECRET", "OSS_SESSION_TOKEN"},
	    {RFS_S3_OBS, "HUAWEICLOUD_SDK_AK", "HUAWEICLOUD_SDK_SK", "HUAWEICLOUD_SDK_SECURITY_TOKEN"},
	    {-1, "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"},
	};
	for (size_t i = 0; i < sizeof(envs) / sizeof(envs[0]); i++) {
		if (envs[i].provider >= 0 && envs[i].provider != (int)c->provider)
			continue;
		const char *id = getenv(envs[i].id), *sk = getenv(envs[i].secret), *tok = getenv(envs[i].token);
		if (!id || !id[0])
			continue;
		if (!sk || !sk[0]) {
			snprintf(err, errlen, "%s is set but %s is not", envs[i].id, envs[i].secret);
			return -EINVAL;
		}
		o->access_key = strdup(id);
		o->secret_key = strdup(sk);
		o->session_token = tok && tok[0] ? strdup(tok) : NULL;
		if (!o->access_key || !o->secret_key || (tok && tok[0] && !o->session_token)) {
			rfs_s3_creds_free(o);
			return -ENOMEM;
		}
		snprintf(o->source, sizeof(o->source), "environment variables %s/%s%s%s", envs[i].id, envs[i].secret,
			 o->session_token ? "/" : "", o->session_token ? envs[i].token : "");
		return 0;
	}
	/* 3. a credentials file */
	const char *profile = c->profile;
	if (!profile || !profile[0])
		profile = getenv("AWS_PROFILE");
	if (!profile || !profile[0])
		profile = "default";
	int rc;
	if (c->credentials_file) {
		rc = creds_from_file(c->credentials_file, profile, 1, o, err, errlen);
		return rc;
	}
	char path[PATH_MAX];
	const char *shared = getenv("AWS_SHARED_CREDENTIALS_FILE");
	const char *home = getenv("HOME");
	if (shared && shared[0])
		snprintf(path, sizeof(path), "%s", shared);
	else
		snprintf(path, sizeof(path), "%s/.aws/credentials", home && home[0] ? home : "/");
	rc = creds_from_file(path, profile, 0, o, err, errlen);
	if (rc != -ENOENT)
		return rc;
	if (c->profile) {
		snprintf(err, errlen, "profile '%s' not found in '%s'", c->profile, path);
		return -ENOENT;
	}
	const char *hint = c->provider == RFS_S3_OSS ? "ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET"
			   : c->provider == RFS_S3_OBS ? "HUAWEICLOUD_SDK_AK and HUAWEICLOUD_SDK_SK"
						       : "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY";
	snprintf(err, errlen,
		 "no credentials for store '%s': set %s, or add a [%s] section to '%s', or give "
		 "credentials_file=PATH in the store URL",
		 c->display_url, hint, profile, path);
	return -ENOKEY;
}

/* ---------- the store ---------- */

struct s3_store {
	struct rfs_store base; /* first: the methods pointer lives here */
	struct rfs_s3_config cfg;
	struct rfs_s3_creds creds;
	enum rfs_s3_cond cond; /* cfg.cond, or NONE after a failed probe */
	pthread_mutex_t pool_lock;
	CURL *pool[ROAMFS_S3_POOL_MAX]; /* idle handles, protected by pool_lock */
	int npool;                      /* protected by pool_lock */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static CURL *pool_get(struct s3_store *s)
{
	CURL *h = NULL;
	pthread_mutex_lock(&s->pool_lock);
	if (s->npool)
		h = s->pool[--s->npool];
	pthread_mutex_unlock(&s->pool_lock);
	return h ? h : curl_easy_init();
}

static void pool_put(struct s3_store *s, CURL *h)
{
	curl_easy_reset(h); /* options go, the connection cache stays */
	pthread_mutex_lock(&s->pool_lock);
	if (s->npool < ROAMFS_S3_POOL_MAX) {
		s->pool[s->npool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&s->pool_lock);
	if (h)
		curl_easy_cleanup(h);
}

/* One HTTP request and what came back. */
struct s3_req {
	/* in */
	const char *method;
	const char *key; /* full object key (prefix included); NULL: the bucket itself */
	struct rfs_sigv4_kv query[5];
	size_t nquery;
	struct rfs_sigv4_kv hdr[4]; /* extra signed headers */
	size_t nhdr;
	const uint8_t *body;
	size_t body_len;
	const char *content_type;
	struct rfs_buf *out; /* a 2xx body goes here, bounded by out->cap_limit; NULL: dropped */
	int conditional;     /* a conditional write: never repeated after an ambiguous failure */
	int ranged;          /* a GET with Range: bytes=range_off-(range_off+range_len-1) */
	uint64_t range_off, range_len;
	/* out */
	long status;
	CURLcode cc;
	char curl_err[CURL_ERROR_SIZE];
	char etag[160];
	uint64_t content_length;
	int have_length;
	char bucket_region[64];
	char code[64];
	char message[256];
	char region_hint[64];
	int attempts;
	int ambiguous; /* a conditional write failed in a way that leaves its effect unknown */
	int too_big;
	/* private */
	size_t upos;
	uint64_t seen; /* body bytes received (for a 200 reply to a ranged GET) */
	struct rfs_buf err_body;
};

static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
	struct s3_req *r = arg;
	size_t want = size * n, left = r->body_len - r->upos;
	if (want > left)
		want = left;
	if (want)
		memcpy(buf, r->body + r->upos, want);
	r->upos += want;
	return want;
}

static size_t on_write(char *p, size_t size, size_t n, void *arg)
{
	struct s3_req *r = arg;
	size_t len = size * n;
	if (r->status >= 200 && r->status < 300) {
		if (!r->out)
			return len;
		if (r->ranged && r->status == 200) {
			/* the server ignored Range and sends the whole object: keep our slice only */
			uint64_t from = r->seen, to = r->seen + len;
			uint64_t lo = r->range_off, hi = r->range_off + r->range_len;
			if (hi < lo)
				hi = UINT64_MAX;
			r->seen = to;
			if (to <= lo || from >= hi)
				return len;
			uint64_t a = from > lo ? from : lo, b = to < hi ? to : hi;
			p += a - from;
			len = (size_t)(b - a);
			if (rfs_buf_append(r->out, p, len) < 0) {
				r->too_big = 1;
				return 0;
			}
			return size * n;
		}
		if (rfs_buf_append(r->out, p, len) < 0) {
			r->too_big = 1;
			return 0; /* aborts the transfer */
		}
		return len;
	}
	size_t room = ERR_BODY_CAP - r->err_body.len;
	rfs_buf_append(&r->err_body, p, len < room ? len : room);
	return len;
}

static int header_is(const char *line, size_t len, const char *name, const char **val, size_t *vlen)
{
	size_t nl = strlen(name);
	if (len <= nl || line[nl] != ':' || strncasecmp(line, name, nl))
		return 0;
	const char *v = line + nl + 1, *e = line + len;
	while (v < e && (*v == ' ' || *v == '\t'))
		v++;
	while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
		e--;
	*val = v;
	*vlen = (size_t)(e - v);
	return 1;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct s3_req *r = arg;
	size_t len = size * n;
	const char *v;
	size_t vl;
	if (len > 5 && !memcmp(p, "HTTP/", 5)) {
		/* a new response (after 100 Continue, too): forget the previous one's headers */
		const char *sp = memchr(p, ' ', len);
		r->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		r->etag[0] = 0;
		r->have_length = 0;
		r->bucket_region[0] = 0;
	} else if (header_is(p, len, "ETag", &v, &vl)) {
		if (vl < sizeof(r->etag)) {
			memcpy(r->etag, v, vl);
			r->etag[vl] = 0;
		}
	} else if (header_is(p, len, "Content-Length", &v, &vl)) {
		char tmp[32];
		if (vl && vl < sizeof(tmp)) {
			memcpy(tmp, v, vl);
			tmp[vl] = 0;
			char *e;
			unsigned long long cl = strtoull(tmp, &e, 10);
			if (!*e) {
				r->content_length = cl;
				r->have_length = 1;
				/* reserve the body up front when it fits the cap */
				if (r->out && r->status >= 200 && r->status < 300 && cl <= SIZE_MAX &&
				    (!r->out->cap_limit || cl <= r->out->cap_limit))
					rfs_buf_reserve(r->out, (size_t)cl);
			}
		}
	} else if (header_is(p, len, "x-amz-bucket-region", &v, &vl)) {
		if (vl < sizeof(r->bucket_region)) {
			memcpy(r->bucket_region, v, vl);
			r->bucket_region[vl] = 0;
		}
	}
	return len;
}

static int add_header(struct curl_slist **l, const char *name, const char *value)
{
	char line[2048];
	if ((size_t)snprintf(line, sizeof(line), "%s: %s", name, value) >= sizeof(line))
		return -EINVAL;
	struct curl_slist *n = curl_slist_append(*l, line);
	if (!n)
		return -ENOMEM;
	*l = n;
	return 0;
}

/* Sends the request once on handle h. Returns 0 (look at r->cc and r->status) or -errno for a
 * local failure (out of memory, unsignable request). */
static int send_once(struct s3_store *s, struct s3_req *r, CURL *h, const char *payload_hash)
{
	const struct rfs_s3_config *c = &s->cfg;
	char host[512], path[MAX_KEY + 300];
	int rc = 0;
	struct curl_slist *hl = NULL;
	struct rfs_sigv4_result sig = {0};
	char *url = NULL;

	if (c->virtual_style) {
		snprintf(host, sizeof(host), "%s.%s", c->bucket, c->host);
		snprintf(path, sizeof(path), "/%s", r->key ? r->key : "");
	} else {
		snprintf(host, sizeof(host), "%s", c->host);
		if (r->key)
			snprintf(path, sizeof(path), "/%s/%s", c->bucket, r->key);
		else
			snprintf(path, sizeof(path), "/%s", c->bucket);
	}
	struct rfs_sigv4_creds cr = {s->creds.access_key, s->creds.secret_key, s->creds.session_token};
	struct rfs_sigv4_request sr = {.method = r->method,
				       .host = host,
				       .path = path,
				       .query = r->query,
				       .nquery = r->nquery,
				       .headers = r->hdr,
				       .nheaders = r->nhdr,
				       .payload_hash = payload_hash,
				       .now = time(NULL),
				       .region = c->region,
				       .service = "s3",
				       .add_content_sha256 = 1,
				       .creds = &cr};
	rc = rfs_sigv4_sign(&sr, &sig);
	if (rc < 0)
		goto out;
	size_t ulen = strlen(c->scheme) + strlen(host) + strlen(sig.uri) + strlen(sig.query) + 8;
	url = malloc(ulen);
	if (!url) {
		rc = -ENOMEM;
		goto out;
	}
	snprintf(url, ulen, "%s://%s%s%s%s", c->scheme, host, sig.uri, sig.query[0] ? "?" : "", sig.query);

	if ((rc = add_header(&hl, "Host", host)) < 0)
		goto out;
	for (size_t i = 0; i < r->nhdr; i++)
		if ((rc = add_header(&hl, r->hdr[i].name, r->hdr[i].value ? r->hdr[i].value : "")) < 0)
			goto out;
	for (int i = 0; i < sig.nheaders; i++) {
		struct curl_slist *n = curl_slist_append(hl, sig.headers[i]);
		if (!n) {
			rc = -ENOMEM;
			goto out;
		}
		hl = n;
	}
	if ((rc = add_header(&hl, "Expect", "")) < 0) /* no 100-continue round trip */
		goto out;
	if (!strcmp(r->method, "PUT") || !strcmp(r->method, "POST"))
		if ((rc = add_header(&hl, "Content-Type",
				     r->content_type ? r->content_type : "application/octet-stream")) < 0)
			goto out;
	if (!strcmp(r->method, "GET") || !strcmp(r->method, "HEAD"))
		if ((rc = add_header(&hl, "Accept-Encoding", "identity")) < 0)
			goto out;

	r->status = 0;
	r->etag[0] = 0;
	r->have_length = 0;
	r->bucket_region[0] = 0;
	r->too_big = 0;
	r->upos = 0;
	r->seen = 0;
	r->curl_err[0] = 0;
	r->err_body.len = 0;
	if (r->out)
		r->out->len = 0;

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)CONNECT_TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, (long)LOW_SPEED_BYTES);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)LOW_SPEED_TIME_S);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->curl_err);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	if (c->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (!strcmp(r->method, "GET")) {
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	} else if (!strcmp(r->method, "HEAD")) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(r->method, "PUT")) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, r);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
	} else if (!strcmp(r->method, "POST")) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? (const char *)r->body : "");
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
	} else {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
	}
	r->cc = curl_easy_perform(h);
	if (r->cc == CURLE_OK)
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
	r->code[0] = r->message[0] = r->region_hint[0] = 0;
	if (r->cc == CURLE_OK && r->status >= 300)
		rfs_s3_parse_error((const char *)r->err_body.data, r->err_body.len, r->code, sizeof(r->code),
				   r->message, sizeof(r->message), r->region_hint, sizeof(r->region_hint));
	RFS_LOG(LOG_DEBUG, "s3: %s %s%s%s -> %ld %s%s", r->method, path, sig.query[0] ? "?" : "", sig.query, r->status,
		r->cc ? curl_easy_strerror(r->cc) : "", r->code);
out:
	curl_slist_free_all(hl);
	rfs_sigv4_result_free(&sig);
	free(url);
	return rc;
}

/* "HTTP 503 SlowDown" or "Couldn't connect to server": for log lines. */
static const char *outcome(const struct s3_req *r, char *buf, size_t len)
{
	if (r->cc != CURLE_OK)
		snprintf(buf, len, "%s", curl_easy_strerror(r->cc));
	else
		snprintf(buf, len, "HTTP %ld%s%s", r->status, r->code[0] ? " " : "", r->code);
	return buf;
}

/* Curl failures after which the request certainly never reached the server. */
static int not_sent(const struct s3_req *r)
{
	return r->cc == CURLE_COULDNT_CONNECT || r->cc == CURLE_COULDNT_RESOLVE_HOST ||
	       r->cc == CURLE_COULDNT_RESOLVE_PROXY;
}

static int transient(const struct s3_req *r)
{
	switch (r->cc) {
	case CURLE_OK:
		break;
	case CURLE_WRITE_ERROR: /* our cap */
	case CURLE_URL_MALFORMAT:
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_OUT_OF_MEMORY:
		return 0;
	default:
		return 1; /* resets, timeouts, refused connections, partial transfers */
	}
	if (r->status >= 500 || r->status == 429)
		return 1;
	if (r->status == 400 && !strcmp(r->code, "RequestTimeout"))
		return 1;
	if (r->status == 409 && !strcmp(r->code, "ConditionalRequestConflict"))
		return 1;
	if (r->status == 503 || !strcmp(r->code, "SlowDown"))
		return 1;
	return 0;
}

static void backoff(int attempt)
{
	uint64_t step = (uint64_t)ROAMFS_S3_BACKOFF_MS << (attempt - 1 < 16 ? attempt - 1 : 16);
	if (step > ROAMFS_S3_BACKOFF_MAX_MS)
		step = ROAMFS_S3_BACKOFF_MAX_MS;
	uint32_t rnd;
	rfs_random(&rnd, sizeof(rnd));
	uint64_t ms = step / 2 + rnd % (step / 2 + 1);
	struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Sends r, retrying transient failures (see the top of the file). Returns 0 when a reply or
 * a final transport error is in r, or -errno for a local failure. */
static int s3_send(struct s3_store *s, struct s3_req *r)
{
	char ph[65];
	rfs_sigv4_payload_hash(r->body ? (const void *)r->body : "", r->body_len, ph);
	CURL *h = pool_get(s);
	if (!h)
		return -ENOMEM;
	r->err_body = (struct rfs_buf){0};
	int rc = 0, attempt;
	for (attempt = 1;; attempt++) {
		rc = send_once(s, r, h, ph);
		if (rc < 0)
			break;
		if (!transient(r))
			break;
		if (r->conditional && !not_sent(r)) {
			r->ambiguous = 1;
			break;
		}
		if (attempt >= s->cfg.attempts)
			break;
		char o[160];
		RFS_LOG(LOG_INFO, "s3: %s '%s': %s, retrying (attempt %d of %d)", r->method,
			r->key ? r->key : s->cfg.bucket, outcome(r, o, sizeof(o)), attempt + 1, s->cfg.attempts);
		backoff(attempt);
	}
	r->attempts = attempt;
	rfs_buf_free(&r->err_body);
	pool_put(s, h);
	return rc;
}

static const char *what_of(struct s3_store *s, const struct s3_req *r)
{
	return r->key ? r->key : s->cfg.bucket;
}

/* The one place where a finished request becomes 0 or -errno, and where the cause is kept
 * (STYLE.md item 4). op names the store call for the message. */
static int s3_result(struct s3_store *s, const char *op, const struct s3_req *r)
{
	const char *what = what_of(s, r);
	char tries[48] = "";
	if (r->attempts > 1)
		snprintf(tries, sizeof(tries), " after %d attempts", r->attempts);
	if (r->cc != CURLE_OK) {
		if (r->too_big) {
			rfs_store_set_error(&s->base, "%s '%s': the reply is larger than expected (%zu bytes at most)",
					    op, what, r->out ? r->out->cap_limit : (size_t)0);
			return -EIO;
		}
		const char *hint = "";
		if (r->cc == CURLE_PEER_FAILED_VERIFICATION || r->cc == CURLE_SSL_CACERT_BADFILE ||
		    r->cc == CURLE_SSL_CONNECT_ERROR)
			hint = "; check the CA certificates, or add insecure=1 to the store URL (unsafe)";
		else if (r->cc == CURLE_COULDNT_CONNECT || r->cc == CURLE_COULDNT_RESOLVE_HOST)
			hint = "; check endpoint= and that the server is up";
		rfs_store_set_error(&s->base, "%s '%s': %s://%s: %s%s%s%s%s%s", op, what, s->cfg.scheme, s->cfg.host,
				    curl_easy_strerror(r->cc), r->curl_err[0] ? " (" : "", r->curl_err,
				    r->curl_err[0] ? ")" : "", tries, hint);
		return -EIO;
	}
	long st = r->status;
	if (st >= 200 && st < 300)
		return 0;
	const char *code = r->code[0] ? r->code : "", *msg = r->message;
	switch (st) {
	case 404:
		if (!strcmp(code, "NoSuchBucket") || !r->key)
			rfs_store_set_error(&s->base,
					    "%s '%s': bucket '%s' does not exist at %s://%s (create it, or add "
					    "create_bucket=1 to the store URL)",
					    op, what, s->cfg.bucket, s->cfg.scheme, s->cfg.host);
		else if (!strcmp(code, "NoSuchUpload"))
			rfs_store_set_error(&s->base, "%s '%s': HTTP 404 NoSuchUpload: %s", op, what, msg);
		return -ENOENT;
	case 403: {
		const char *hint = !strcmp(code, "SignatureDoesNotMatch") ? "; check the secret key"
				   : !strcmp(code, "InvalidAccessKeyId")  ? "; the access key is not known to the store"
				   : !strcmp(code, "RequestTimeTooSkewed") ? "; the system clock is off"
				   : !strcmp(code, "AccessDenied") ? "; the key lacks permission for this bucket"
								   : "";
		rfs_store_set_error(&s->base, "%s '%s': HTTP 403 %s%s%s (credentials from %s%s)", op, what,
				    code[0] ? code : "Forbidden", msg[0] ? ": " : "", msg, s->creds.source, hint);
		return -EACCES;
	}
	case 412:
		return -EEXIST;
	case 409:
		if (!strcmp(code, "FileAlreadyExists") || !strcmp(code, "ObjectAlreadyExists"))
			return -EEXIST;
		break;
	case 301:
	case 307: {
		const char *right = r->bucket_region[0] ? r->bucket_region : r->region_hint;
		if (right[0]) {
			rfs_store_set_error(&s->base,
					    "%s '%s': bucket '%s' is in region '%s', not '%s' (use region=%s in the "
					    "store URL)",
					    op, what, s->cfg.bucket, right, s->cfg.region, right);
			return -EINVAL;
		}
		rfs_store_set_error(&s->base,
				    "%s '%s': HTTP %ld %s: the store redirects; check endpoint= and region= "
				    "(region '%s')",
				    op, what, st, code, s->cfg.region);
		return -EINVAL;
	}
	case 400:
		if (!strcmp(code, "AuthorizationHeaderMalformed") || !strcmp(code, "InvalidRegion") ||
		    !strcmp(code, "IllegalLocationConstraintException") || !strcmp(code, "InvalidLocationConstraint") ||
		    r->bucket_region[0]) {
			const char *right = r->bucket_region[0] ? r->bucket_region : r->region_hint;
			rfs_store_set_error(&s->base, "%s '%s': region '%s' is wrong for bucket '%s'%s%s%s (%s: %s)",
					    op, what, s->cfg.region, s->cfg.bucket,
					    right[0] ? "; the store expects '" : "", right, right[0] ? "'" : "", code,
					    msg);
			return -EINVAL;
		}
		break;
	case 501:
		rfs_store_set_error(&s->base, "%s '%s': HTTP 501 %s: %s (the store does not support this request)", op,
				    what, code, msg);
		return -ENOTSUP;
	}
	rfs_store_set_error(&s->base, "%s '%s': HTTP %ld%s%s%s%s%s", op, what, st, code[0] ? " " : "", code,
			    msg[0] ? ": " : "", msg, tries);
	return -EIO;
}

/* PREFIX + key into buf; checks the key like the file store does. */
static int full_key(struct s3_store *s, const char *key, char *buf, size_t len)
{
	if (!key || !key[0] || key[0] == '/')
		return -EINVAL;
	if ((size_t)snprintf(buf, len, "%s%s", s->cfg.prefix, key) >= len || strlen(buf) > MAX_KEY)
		return -ENAMETOOLONG;
	return 0;
}

/* A single PUT of the whole body (cond: with the conditional-create header). */
static void put_req(struct s3_store *s, struct s3_req *r, const char *fk, const void *data, size_t len, int cond)
{
	memset(r, 0, sizeof(*r));
	r->method = "PUT";
	r->key = fk;
	r->body = data;
	r->body_len = len;
	if (cond) {
		r->conditional = 1;
		if (s->cond == RFS_S3_COND_OSS)
			r->hdr[r->nhdr++] = (struct rfs_sigv4_kv){"x-oss-forbid-overwrite", "true"};
		else
			r->hdr[r->nhdr++] = (struct rfs_sigv4_kv){"If-None-Match", "*"};
	}
}

/* ---------- multipart upload ---------- */

struct mp_job {
	struct s3_store *s;
	const char *fk;
	const char *upload_id;
	const uint8_t *data;
	size_t len;
	size_t part_size;
	int nparts;
	char (*etags)[160];
	int next;   /* next part index, atomic */
	int failed; /* first error, atomic */
};

static void *mp_worker(void *arg)
{
	struct mp_job *j = arg;
	for (;;) {
		if (__atomic_load_n(&j->failed, __ATOMIC_RELAXED))
			break;
		int i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED);
		if (i >= j->nparts)
			break;
		size_t off = (size_t)i * j->part_size;
		size_t n = j->len - off < j->part_size ? j->len - off : j->part_size;
		char num[16];
		snprintf(num, sizeof(num), "%d", i + 1);
		struct s3_req r = {0};
		r.method = "PUT";
		r.key = j->fk;
		r.body = j->data + off;
		r.body_len = n;
		r.query[r.nquery++] = (struct rfs_sigv4_kv){"partNumber", num};
		r.query[r.nquery++] = (struct rfs_sigv4_kv){"uploadId", j->upload_id};
		int rc = s3_send(j->s, &r);
		if (rc == 0)
			rc = s3_result(j->s, "upload part", &r);
		if (rc == 0 && !r.etag[0]) {
			rfs_store_set_error(&j->s->base, "upload part %d of '%s': no ETag in the reply", i + 1, j->fk);
			rc = -EIO;
		}
		if (rc < 0) {
			int zero = 0;
			__atomic_compare_exchange_n(&j->failed, &zero, rc, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
			break;
		}
		memcpy(j->etags[i], r.etag, sizeof(r.etag));
	}
	return NULL;
}

static int xml_escape_append(struct rfs_buf *b, const char *s)
{
	int rc = 0;
	for (; *s && rc == 0; s++) {
		switch (*s) {
		case '&':
			rc = rfs_buf_append(b, "&amp;", 5);
			break;
		case '<':
			rc = rfs_buf_append(b, "&lt;", 4);
			break;
		case '>':
			rc = rfs_buf_append(b, "&gt;", 4);
			break;
		case '"':
			rc = rfs_buf_append(b, "&quot;", 6);
			break;
		default:
			rc = rfs_buf_append(b, s, 1);
		}
	}
	return rc;
}

static int multipart_put(struct s3_store *s, const char *fk, const uint8_t *data, size_t len)
{
	int rc;
	char upload_id[1024];
	struct rfs_buf reply = {.cap_limit = XML_CAP};
	struct rfs_buf body = {0};
	struct mp_job j = {0};

	/* initiate */
	struct s3_req r = {0};
	r.method = "POST";
	r.key = fk;
	r.query[r.nquery++] = (struct rfs_sigv4_kv){"uploads", ""};
	r.out = &reply;
	rc = s3_send(s, &r);
	if (rc == 0)
		rc = s3_result(s, "start multipart upload of", &r);
	if (rc < 0)
		goto out;
	if (rfs_s3_xml_text((const char *)reply.data, reply.len, "UploadId", upload_id, sizeof(upload_id)) < 0 ||
	    !upload_id[0]) {
		rfs_store_set_error(&s->base, "start multipart upload of '%s': no UploadId in the reply", fk);
		rc = -EIO;
		goto out;
	}

	/* parts */
	j.s = s;
	j.fk = fk;
	j.upload_id = upload_id;
	j.data = data;
	j.len = len;
	j.part_size = (size_t)s->cfg.part_size;
	j.nparts = (int)((len + j.part_size - 1) / j.part_size);
	if (j.nparts > 10000) {
		rfs_store_set_error(&s->base, "put '%s': %zu bytes need more than 10000 parts; raise part_size", fk,
				    len);
		rc = -EFBIG;
		goto out;
	}
	j.etags = calloc((size_t)j.nparts, sizeof(*j.etags));
	if (!j.etags) {
		rc = -ENOMEM;
		goto abort;
	}
	pthread_t th[ROAMFS_S3_PART_THREADS];
	int nth = 0;
	for (int i = 0; i < ROAMFS_S3_PART_THREADS - 1 && i < j.nparts - 1; i++) {
		if (pthread_create(&th[nth], NULL, mp_worker, &j) == 0)
			nth++;
	}
	mp_worker(&j); /* this thread works too */
	for (int i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	rc = j.failed;
	if (rc < 0)
		goto abort;

	/* complete */
	rc = rfs_buf_append(&body, "<CompleteMultipartUpload>", 25);
	for (int i = 0; i < j.nparts && rc == 0; i++) {
		char num[64];
		snprintf(num, sizeof(num), "<Part><PartNumber>%d</PartNumber><ETag>", i + 1);
		rc = rfs_buf_append(&body, num, strlen(num));
		if (rc == 0)
			rc = xml_escape_append(&body, j.etags[i]);
		if (rc == 0)
			rc = rfs_buf_append(&body, "</ETag></Part>", 14);
	}
	if (rc == 0)
		rc = rfs_buf_append(&body, "</CompleteMultipartUpload>", 26);
	if (rc < 0)
		goto abort;
	memset(&r, 0, sizeof(r));
	r.method = "POST";
	r.key = fk;
	r.query[r.nquery++] = (struct rfs_sigv4_kv){"uploadId", upload_id};
	r.body = body.data;
	r.body_len = body.len;
	r.content_type = "application/xml";
	r.out = &reply;
	rc = s3_send(s, &r);
	if (rc == 0)
		rc = s3_result(s, "complete multipart upload of", &r);
	if (rc == 0) {
		/* a 200 reply can still carry an <Error> */
		char code[64], msg[256], reg[8];
		rfs_s3_parse_error((const char *)reply.data, reply.len, code, sizeof(code), msg, sizeof(msg), reg,
				   sizeof(reg));
		const char *vs, *ve, *nx;
		const char *rd = (const char *)reply.data;
		if (code[0] || xml_find(rd, rd + reply.len, "CompleteMultipartUploadResult", &vs, &ve, &nx) != 1) {
			rfs_store_set_error(&s->base, "complete multipart upload of '%s': %s%s%s", fk,
					    code[0] ? code : "unexpected reply", msg[0] ? ": " : "", msg);
			rc = -EIO;
		}
	} else if (rc == -ENOENT && r.attempts > 1) {
		/* NoSuchUpload after a retry: the first attempt may have completed it */
		struct s3_req hr = {0};
		hr.method = "HEAD";
		hr.key = fk;
		if (s3_send(s, &hr) == 0 && hr.cc == CURLE_OK && hr.status == 200 && hr.have_length &&
		    hr.content_length == len)
			rc = 0;
		else
			rc = -EIO;
	}
	if (rc == 0)
		goto out;
abort:
	memset(&r, 0, sizeof(r));
	r.method = "DELETE";
	r.key = fk;
	r.query[r.nquery++] = (struct rfs_sigv4_kv){"uploadId", upload_id};
	char o[160];
	if (s3_send(s, &r) == 0 && (r.cc != CURLE_OK || r.status >= 300))
		RFS_LOG(LOG_WARNING,
			"s3: cannot abort multipart upload of '%s' (%s): its parts stay in the bucket "
			"until a lifecycle rule removes them",
			fk, outcome(&r, o, sizeof(o)));
out:
	free(j.etags);
	rfs_buf_free(&reply);
	rfs_buf_free(&body);
	return rc;
}

/* ---------- the six operations ---------- */

static int s3_put(struct rfs_store *st, const char *key, const void *data, size_t len)
{
	struct s3_store *s = (struct s3_store *)st;
	char fk[MAX_KEY + 1];
	int rc = full_key(s, key, fk, sizeof(fk));
	if (rc < 0)
		return rc;
	if (len > s->cfg.multipart_threshold)
		return multipart_put(s, fk, data, len);
	struct s3_req r;
	put_req(s, &r, fk, data, len, 0);
	rc = s3_send(s, &r);
	return rc < 0 ? rc : s3_result(s, "put", &r);
}

/* Reads fk back after an ambiguous conditional PUT: 0 if it holds exactly data, -EEXIST if it
 * holds something else, -ENOENT if it is absent, other -errno if it cannot be read. */
static int verify_put(struct s3_store *s, const char *fk, const void *data, size_t len)
{
	struct rfs_buf b = {.cap_limit = len + 1};
	struct s3_req r = {0};
	r.method = "GET";
	r.key = fk;
	r.out = &b;
	int rc = s3_send(s, &r);
	if (rc == 0 && r.cc == CURLE_WRITE_ERROR && r.too_big) {
		rc = -EEXIST; /* bigger than ours: someone else's */
	} else if (rc == 0) {
		rc = s3_result(s, "read back", &r);
		if (rc == 0)
			rc = b.len == len && (!len || !memcmp(b.data, data, len)) ? 0 : -EEXIST;
	}
	rfs_buf_free(&b);
	return rc;
}

static int s3_put_if_absent(struct rfs_store *st, const char *key, const void *data, size_t len)
{
	struct s3_store *s = (struct s3_store *)st;
	char fk[MAX_KEY + 1];
	int rc = full_key(s, key, fk, sizeof(fk));
	if (rc < 0)
		return rc;
	if (s->cond == RFS_S3_COND_NONE) {
		rfs_store_set_error(st,
				    "put_if_absent '%s': the store does not refuse overwrites (no conditional "
				    "PUT), so roamfs cannot commit safely to it; see docs/s3.md",
				    fk);
		return -ENOTSUP;
	}
	for (int round = 1;; round++) {
		struct s3_req r;
		put_req(s, &r, fk, data, len, 1);
		rc = s3_send(s, &r);
		if (rc < 0)
			return rc;
		if (!r.ambiguous)
			return s3_result(s, "put_if_absent", &r);
		/* the PUT may or may not have landed: the key decides */
		char o[160];
		RFS_LOG(LOG_INFO, "s3: conditional put of '%s' ended ambiguously (%s); reading it back", fk,
			outcome(&r, o, sizeof(o)));
		rc = verify_put(s, fk, data, len);
		if (rc != -ENOENT)
			return rc;
		if (round >= s->cfg.attempts) {
			rfs_store_set_error(st, "put_if_absent '%s': %d attempts ended without an answer (last: %s)",
					    fk, round, o);
			return -EIO;
		}
		backoff(round);
	}
}

static int s3_get(struct rfs_store *st, const char *key, uint64_t off, uint64_t len, struct rfs_buf *out)
{
	struct s3_store *s = (struct s3_store *)st;
	char fk[MAX_KEY + 1];
	int rc = full_key(s, key, fk, sizeof(fk));
	if (rc < 0)
		return rc;
	memset(out, 0, sizeof(*out));
	if (len == 0) {
		/* nothing to read, but the key must exist */
		struct s3_req r = {0};
		r.method = "HEAD";
		r.key = fk;
		rc = s3_send(s, &r);
		return rc < 0 ? rc : s3_result(s, "get", &r);
	}
	struct s3_req r = {0};
	char range[64];
	r.method = "GET";
	r.key = fk;
	r.out = out;
	int ranged = off > 0 || len != RFS_GET_TO_END;
	if (ranged) {
		if (len == RFS_GET_TO_END || off + len < off)
			snprintf(range, sizeof(range), "bytes=%" PRIu64 "-", off);
		else
			snprintf(range, sizeof(range), "bytes=%" PRIu64 "-%" PRIu64, off, off + len - 1);
		r.hdr[r.nhdr++] = (struct rfs_sigv4_kv){"Range", range};
		r.ranged = 1;
		r.range_off = off;
		r.range_len = len;
	}
	out->cap_limit = len != RFS_GET_TO_END && len < GET_CAP ? (size_t)len : (size_t)GET_CAP;
	rc = s3_send(s, &r);
	if (rc == 0 && r.cc == CURLE_OK && r.status == 416) {
		rfs_buf_free(out); /* the range starts at or past the end: a short (empty) read */
		out->cap_limit = 0;
		return 0;
	}
	if (rc == 0)
		rc = s3_result(s, "get", &r);
	if (rc < 0)
		rfs_buf_free(out);
	out->cap_limit = 0;
	return rc;
}

static int s3_head(struct rfs_store *st, const char *key, uint64_t *size)
{
	struct s3_store *s = (struct s3_store *)st;
	char fk[MAX_KEY + 1];
	int rc = full_key(s, key, fk, sizeof(fk));
	if (rc < 0)
		return rc;
	struct s3_req r = {0};
	r.method = "HEAD";
	r.key = fk;
	rc = s3_send(s, &r);
	if (rc == 0)
		rc = s3_result(s, "head", &r);
	if (rc == 0 && size) {
		if (!r.have_length) {
			rfs_store_set_error(st, "head '%s': no Content-Length in the reply", fk);
			return -EIO;
		}
		*size = r.content_length;
	}
	return rc;
}

struct list_ctx {
	size_t strip; /* length of cfg.prefix */
	rfs_list_cb cb;
	void *arg;
	char last[MAX_KEY * 2 + 1]; /* last key seen, to check the order */
	int bad_order;
};

static int list_one(void *arg, const char *key, uint64_t size)
{
	struct list_ctx *lc = arg;
	if (strlen(key) < lc->strip)
		return 0; /* outside our prefix: cannot happen with a prefix query */
	if (lc->last[0] && strcmp(key, lc->last) <= 0) {
		lc->bad_order = 1;
		return 1;
	}
	snprintf(lc->last, sizeof(lc->last), "%s", key);
	return lc->cb(lc->arg, key + lc->strip, size);
}

static int s3_list(struct rfs_store *st, const char *prefix, rfs_list_cb cb, void *arg)
{
	struct s3_store *s = (struct s3_store *)st;
	char fp[MAX_KEY + 1];
	if ((size_t)snprintf(fp, sizeof(fp), "%s%s", s->cfg.prefix, prefix ? prefix : "") >= sizeof(fp))
		return -ENAMETOOLONG;
	char maxk[16];
	snprintf(maxk, sizeof(maxk), "%u", s->cfg.max_keys);
	struct list_ctx lc = {.strip = strlen(s->cfg.prefix), .cb = cb, .arg = arg};
	char *token = calloc(1, 4096), *prev = calloc(1, 4096);
	struct rfs_buf b = {.cap_limit = XML_CAP};
	int rc = 0, pages = 0;
	if (!token || !prev) {
		rc = -ENOMEM;
		goto out;
	}
	for (;;) {
		struct s3_req r = {0};
		r.method = "GET";
		r.key = NULL;
		r.query[r.nquery++] = (struct rfs_sigv4_kv){"list-type", "2"};
		r.query[r.nquery++] = (struct rfs_sigv4_kv){"prefix", fp};
		r.query[r.nquery++] = (struct rfs_sigv4_kv){"max-keys", maxk};
		if (token[0])
			r.query[r.nquery++] = (struct rfs_sigv4_kv){"continuation-token", token};
		r.out = &b;
		rc = s3_send(s, &r);
		if (rc == 0)
			rc = s3_result(s, "list", &r);
		if (rc < 0)
			goto out;
		pages++;
		int stopped, truncated;
		memcpy(prev, token, 4096);
		rc = rfs_s3_parse_list((const char *)b.data, b.len, list_one, &lc, &stopped, &truncated, token, 4096);
		if (rc < 0) {
			rfs_store_set_error(st, "list '%s': malformed ListObjectsV2 reply (page %d, %zu bytes)", fp,
					    pages, b.len);
			goto out;
		}
		if (lc.bad_order) {
			rfs_store_set_error(st, "list '%s': the store returned keys out of order", fp);
			rc = -EIO;
			goto out;
		}
		if (stopped || !truncated)
			break;
		if (!token[0] || !strcmp(token, prev)) {
			rfs_store_set_error(st, "list '%s': truncated listing without a new continuation token", fp);
			rc = -EIO;
			goto out;
		}
	}
out:
	free(token);
	free(prev);
	rfs_buf_free(&b);
	return rc;
}

static int s3_del(struct rfs_store *st, const char *key)
{
	struct s3_store *s = (struct s3_store *)st;
	char fk[MAX_KEY + 1];
	int rc = full_key(s, key, fk, sizeof(fk));
	if (rc < 0)
		return rc;
	struct s3_req r = {0};
	r.method = "DELETE";
	r.key = fk;
	rc = s3_send(s, &r);
	return rc < 0 ? rc : s3_result(s, "delete", &r);
}

static void s3_close(struct rfs_store *st)
{
	struct s3_store *s = (struct s3_store *)st;
	for (int i = 0; i < s->npool; i++)
		curl_easy_cleanup(s->pool[i]);
	pthread_mutex_destroy(&s->pool_lock);
	pthread_mutex_destroy(&st->err_lock);
	rfs_s3_creds_free(&s->creds);
	rfs_s3_config_free(&s->cfg);
	free(st->url);
	free(s);
}

static const struct rfs_store_ops s3_ops = {
    .name = "s3",
    .put = s3_put,
    .put_if_absent = s3_put_if_absent,
    .get = s3_get,
    .head = s3_head,
    .list = s3_list,
    .del = s3_del,
    .close = s3_close,
};

/* ---------- open: check the bucket, create it if asked, probe conditional create ---------- */

static int check_bucket(struct s3_store *s, char *err, size_t errlen)
{
	/* a one-key listing rather than HEAD: its error replies have a body (Code, Region) */
	struct s3_req r = {0};
	struct rfs_buf b = {.cap_limit = XML_CAP};
	r.method = "GET";
	r.query[r.nquery++] = (struct rfs_sigv4_kv){"list-type", "2"};
	r.query[r.nquery++] = (struct rfs_sigv4_kv){"max-keys", "1"};
	r.query[r.nquery++] = (struct rfs_sigv4_kv){"prefix", s->cfg.prefix};
	r.out = &b;
	int rc = s3_send(s, &r);
	rfs_buf_free(&b);
	int missing = rc == 0 && r.cc == CURLE_OK && r.status == 404;
	if (rc == 0 && !(missing && s->cfg.create_bucket))
		rc = s3_result(s, "open bucket", &r);
	if (missing && s->cfg.create_bucket) {
		char body[512] = "";
		memset(&r, 0, sizeof(r));
		r.method = "PUT";
		if (s->cfg.provider == RFS_S3_AWS && strcmp(s->cfg.region, "us-east-1")) {
			snprintf(body, sizeof(body),
				 "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
				 "<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>",
				 s->cfg.region);
			r.body = (const uint8_t *)body;
			r.body_len = strlen(body);
			r.content_type = "application/xml";
		}
		rc = s3_send(s, &r);
		if (rc == 0)
			rc = s3_result(s, "create bucket", &r);
		if (rc == 0 || (r.status == 409 && !strcmp(r.code, "BucketAlreadyOwnedByYou"))) {
			RFS_LOG(LOG_NOTICE, "created bucket '%s' at %s://%s (create_bucket=1)", s->cfg.bucket,
				s->cfg.scheme, s->cfg.host);
			return 0;
		}
	}
	if (rc < 0) {
		char cause[512];
		rfs_store_error(&s->base, cause, sizeof(cause));
		snprintf(err, errlen, "cannot open store '%s': %s", s->cfg.display_url,
			 cause[0] ? cause : strerror(-rc));
	}
	return rc;
}

/* Writes a probe key twice with the conditional header. If the second write is accepted the
 * store ignores the condition, and put_if_absent is switched off (ENOTSUP), loudly. */
static void probe_conditional(struct s3_store *s)
{
	if (s->cond == RFS_S3_COND_NONE)
		return;
	uint8_t rnd[8];
	char hex[17], fk[MAX_KEY + 1];
	rfs_random(rnd, sizeof(rnd));
	rfs_hex(rnd, sizeof(rnd), hex);
	snprintf(fk, sizeof(fk), "%s.roamfs-probe-%s", s->cfg.prefix, hex);
	struct s3_req r;
	put_req(s, &r, fk, hex, 16, 1);
	if (s3_send(s, &r) < 0 || r.cc != CURLE_OK || r.status != 200) {
		char o[160];
		RFS_LOG(LOG_WARNING, "store %s: cannot probe conditional create (first PUT: %s); assuming it works",
			s->cfg.display_url, outcome(&r, o, sizeof(o)));
		return;
	}
	put_req(s, &r, fk, "second", 6, 1);
	int sent = s3_send(s, &r) == 0 && r.cc == CURLE_OK;
	if (sent && r.status >= 200 && r.status < 300) {
		s->cond = RFS_S3_COND_NONE;
		RFS_LOG(LOG_WARNING,
			"store %s: the store ACCEPTED a second conditional create of the same key (it ignores %s); "
			"put_if_absent is disabled (ENOTSUP): format without --force fails, and mounts fall back "
			"to one writer at a time (single-writer lease); or keep the log elsewhere with "
			"'format --meta'; see docs/s3.md",
			s->cfg.display_url,
			s->cfg.cond == RFS_S3_COND_OSS ? "x-oss-forbid-overwrite" : "If-None-Match");
	} else if (sent && (r.status == 412 || r.status == 409)) {
		RFS_LOG(LOG_DEBUG, "store %s: conditional create works (second create refused with HTTP %ld)",
			s->cfg.display_url, r.status);
	} else {
		char o[160];
		RFS_LOG(LOG_WARNING, "store %s: conditional create probe inconclusive (%s)", s->cfg.display_url,
			outcome(&r, o, sizeof(o)));
	}
	memset(&r, 0, sizeof(r));
	r.method = "DELETE";
	r.key = fk;
	s3_send(s, &r);
}

int rfs_s3_store_open(const char *url, struct rfs_store **out, char *err, size_t errlen)
{
	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK) {
		snprintf(err, errlen, "cannot initialise libcurl: %s", curl_easy_strerror(curl_init_rc));
		return -EIO;
	}
	struct s3_store *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->base.ops = &s3_ops;
	pthread_mutex_init(&s->base.err_lock, NULL);
	pthread_mutex_init(&s->pool_lock, NULL);
	int rc = rfs_s3_config_parse(url, &s->cfg, err, errlen);
	if (rc < 0)
		goto fail;
	rc = rfs_s3_creds_resolve(&s->cfg, &s->creds, err, errlen);
	if (rc < 0)
		goto fail;
	s->base.url = strdup(s->cfg.display_url);
	if (!s->base.url) {
		rc = -ENOMEM;
		goto fail;
	}
	s->cond = s->cfg.cond;
	if (s->cfg.insecure)
		RFS_LOG(LOG_WARNING, "store %s: TLS certificate verification is OFF (insecure=1)", s->cfg.display_url);
	rc = check_bucket(s, err, errlen);
	if (rc < 0)
		goto fail;
	if (s->cfg.probe)
		probe_conditional(s);
	if (s->cond == RFS_S3_COND_NONE && s->cfg.cond != RFS_S3_COND_NONE)
		; /* logged by the probe */
	else if (s->cond == RFS_S3_COND_NONE)
		RFS_LOG(LOG_WARNING, "store %s: conditional=none: put_if_absent is unsupported (ENOTSUP)",
			s->cfg.display_url);
	RFS_LOG(LOG_DEBUG, "store %s: bucket '%s' at %s://%s, %s style, region %s, credentials from %s",
		s->cfg.display_url, s->cfg.bucket, s->cfg.scheme, s->cfg.host,
		s->cfg.virtual_style ? "virtual" : "path", s->cfg.region, s->creds.source);
	*out = &s->base;
	return 0;
fail:
	s3_close(&s->base);
	return rc;
}
