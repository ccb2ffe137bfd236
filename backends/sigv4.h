/*
 * sigv4.h - AWS Signature Version 4 for HTTP requests (header-based auth).
 *
 * Calling sequence: fill a struct rfs_sigv4_request with the request as it will be sent (raw,
 * un-encoded path and query values), call rfs_sigv4_sign(), then send the request with
 *   URL   = scheme "://" host result.uri ["?" result.query]
 *   and every line of result.headers[0 .. result.nheaders) added as a request header,
 * next to the extra headers that were signed (req.headers). The signer is a pure function:
 * no clock, no environment, no network; the caller passes the time and the credentials.
 *
 * Encoding rules (the ones S3 uses): every byte of the path outside A-Z a-z 0-9 - . _ ~ and '/'
 * becomes %XX (uppercase hex), once; the path is not normalised ("a//b", ".." stay as they are),
 * which is what S3 object keys need. Query names and values are encoded the same way with '/'
 * encoded too, then sorted by name and value. Header names are lowercased, values trimmed and
 * inner runs of spaces collapsed; headers with the same name are joined with ','.
 *
 * Error handling: returns 0, -EINVAL (missing field, header name with odd characters),
 * or -ENOMEM.
 *
 * Ownership: the request's strings stay the caller's. The result owns its strings; release
 * them with rfs_sigv4_result_free() (safe on a zeroed or already freed result). Secrets are
 * never copied into the result except as the derived signature.
 */
#ifndef RFS_SIGV4_H
#define RFS_SIGV4_H

#include <stddef.h>
#include <time.h>

#define RFS_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define RFS_SIGV4_UNSIGNED "UNSIGNED-PAYLOAD"

struct rfs_sigv4_kv {
	const char *name;
	const char *value; /* NULL means "" */
};

struct rfs_sigv4_creds {
	const char *access_key;
	const char *secret_key;
	const char *session_token; /* NULL or "": none */
};

struct rfs_sigv4_request {
	const char *method;               /* "GET", "PUT", ... */
	const char *host;                 /* Host header value, with ":port" when not default */
	const char *path;                 /* raw path starting with '/', e.g. "/bucket/a b+c" */
	const struct rfs_sigv4_kv *query; /* raw names and values, any order */
	size_t nquery;
	const struct rfs_sigv4_kv *headers; /* extra headers to sign and send (not Host) */
	size_t nheaders;
	const char *payload_hash; /* lowercase hex SHA-256 of the body, or UNSIGNED */
	time_t now;               /* signing time, UTC seconds */
	const char *region;
	const char *service;    /* "s3" or, for the test suite, "service" */
	int add_content_sha256; /* also send and sign x-amz-content-sha256 (S3) */
	const struct rfs_sigv4_creds *creds;
};

#define RFS_SIGV4_MAX_ADD 4

struct rfs_sigv4_result {
	char *uri;               /* encoded path, for the request line */
	char *query;             /* canonical query (no '?'), "" if none */
	char *canonical_request; /* for debugging and the tests */
	char *authorization;     /* value of the Authorization header */
	char amz_date[17];       /* YYYYMMDDTHHMMSSZ */
	/* "Name: value" lines to add: x-amz-date, [x-amz-content-sha256], [x-amz-security-token],
	 * Authorization (in that order). */
	char *headers[RFS_SIGV4_MAX_ADD];
	int nheaders;
};

int rfs_sigv4_sign(const struct rfs_sigv4_request *req, struct rfs_sigv4_result *out);
void rfs_sigv4_result_free(struct rfs_sigv4_result *r);

/* Lowercase hex SHA-256 of data, for payload_hash. out holds 65 bytes. */
void rfs_sigv4_payload_hash(const void *data, size_t len, char out[65]);

/* Percent-encodes s the SigV4 way into a malloc'd string the caller frees (NULL: out of
 * memory). keep_slash: leave '/' as is (paths) or encode it (query names and values). */
char *rfs_sigv4_encode(const char *s, int keep_slash);

#endif
