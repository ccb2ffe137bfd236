/*
 * s3.h - the pieces of the s3 store that tests and fuzzers call directly: the store URL
 * parser, the credential lookup and the tolerant XML readers. The store itself is opened
 * through rfs_store_open() ("s3://", "oss://", "obs://"); see backends/s3.c and docs/s3.md.
 *
 * Store URL:
 *   s3://BUCKET[/PREFIX][?endpoint=URL&region=R&style=path|virtual&provider=aws|oss|obs|minio|
 *        ceph|other&profile=P&credentials_file=PATH&access_key=..&secret_key=..&
 *        session_token=..&insecure=1&create_bucket=1&probe=0|1&conditional=if-none-match|oss|none&
 *        max_keys=N&retries=N&multipart_threshold=SIZE&part_size=SIZE]
 *   oss://BUCKET[/PREFIX]?region=cn-hangzhou    (https://oss-REGION.aliyuncs.com, virtual style)
 *   obs://BUCKET[/PREFIX]?region=cn-north-4     (https://obs.REGION.myhuaweicloud.com)
 * Parameter values are percent-decoded ('+' stays '+', so secrets survive); unknown
 * parameters are an error, so that a typo does not silently change behaviour.
 *
 * Error handling: 0 or a negative errno; err gets a one-line message for the user (it never
 * contains a secret).
 *
 * Ownership: rfs_s3_config_parse() and rfs_s3_creds_resolve() fill caller-provided structs
 * whose strings they own; release them with the matching _free(), which also wipes secrets.
 */
#ifndef RFS_S3_H
#define RFS_S3_H

#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"

/* The store constructor, used by rfs_store_open() for s3://, oss:// and obs:// URLs. Parses the
 * URL, finds credentials, checks the bucket (creating it with create_bucket=1) and, when
 * asked (probe=1, default for obs and other), checks that conditional create works. */
int rfs_s3_store_open(const char *url, struct rfs_store **out, char *err, size_t errlen);

enum rfs_s3_provider { RFS_S3_AWS, RFS_S3_OSS, RFS_S3_OBS, RFS_S3_MINIO, RFS_S3_CEPH, RFS_S3_OTHER };

/* How put_if_absent asks the store to refuse an overwrite. */
enum rfs_s3_cond {
	RFS_S3_COND_IF_NONE_MATCH, /* If-None-Match: *  (AWS since 2024, MinIO, Ceph RGW) */
	RFS_S3_COND_OSS,           /* x-oss-forbid-overwrite: true */
	RFS_S3_COND_NONE,          /* the store cannot: put_if_absent gives -ENOTSUP */
};

struct rfs_s3_config {
	enum rfs_s3_provider provider;
	char *scheme; /* "http" or "https" */
	char *host;   /* endpoint host[:port], port left out when it is the default */
	char *bucket;
	char *prefix; /* "" or "dir/sub/" (always ends in '/') */
	char *region;
	int virtual_style; /* BUCKET.host/KEY instead of host/BUCKET/KEY */
	int insecure;      /* TLS verification off (insecure=1) */
	int create_bucket; /* create the bucket at open if it does not exist */
	int probe;         /* check at open that a second conditional create is refused */
	enum rfs_s3_cond cond;
	char *access_key;             /* from the URL (discouraged), else NULL */
	char *secret_key;             /* secret */
	char *session_token;          /* secret */
	char *profile;                /* profile= or NULL */
	char *credentials_file;       /* credentials_file= or NULL */
	unsigned max_keys;            /* ListObjectsV2 page size, 1..1000 */
	int attempts;                 /* tries per request, 1..20 */
	uint64_t multipart_threshold; /* put() of more than this many bytes uses multipart */
	uint64_t part_size;
	char *display_url; /* the URL with secret values replaced by "***" */
};

int rfs_s3_config_parse(const char *url, struct rfs_s3_config *cfg, char *err, size_t errlen);
void rfs_s3_config_free(struct rfs_s3_config *cfg);

struct rfs_s3_creds {
	char *access_key;
	char *secret_key;
	char *session_token; /* NULL: none */
	char source[256];    /* where they came from, for messages: names, never values */
};

/* Looks for credentials in order: the URL's access_key/secret_key; the environment
 * (ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET for oss, HUAWEICLOUD_SDK_AK/_SK for obs, then
 * AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN); the file named by
 * credentials_file= (refused if group/world-readable) or else AWS_SHARED_CREDENTIALS_FILE or
 * ~/.aws/credentials, section profile= / AWS_PROFILE / "default". */
int rfs_s3_creds_resolve(const struct rfs_s3_config *cfg, struct rfs_s3_creds *out, char *err, size_t errlen);
void rfs_s3_creds_free(struct rfs_s3_creds *c);

/* Reads one ListObjectsV2 page. Calls cb(arg, key, size) per <Contents>, in document order,
 * until cb returns non-zero (*stopped = 1). *truncated and token (NUL-terminated, "" if none)
 * describe the next page. A malformed or hostile body gives -EIO, never a crash: every read
 * is bounded by len, and xml need not be NUL-terminated. */
int rfs_s3_parse_list(const char *xml, size_t len, rfs_list_cb cb, void *arg, int *stopped, int *truncated, char *token,
		      size_t tokenlen);

/* Reads <Code>, <Message> and <Region> of an S3 error body (each "" when absent). Always
 * NUL-terminates the outputs; values are cut to fit and control characters replaced. */
void rfs_s3_parse_error(const char *xml, size_t len, char *code, size_t codelen, char *msg, size_t msglen, char *region,
			size_t regionlen);

/* Finds the text of the first <name> element (entities decoded) in xml[0..len). Returns 0,
 * -ENOENT (absent), or -EIO (malformed, or longer than outlen - 1). */
int rfs_s3_xml_text(const char *xml, size_t len, const char *name, char *out, size_t outlen);

#endif
