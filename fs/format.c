#include "fs/format.h"

#include "fs/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FORMAT_KEY "roamfs.json"

int rfs_format_write(struct rfs_store *s, const struct rfs_format *f, int force, char *err, size_t errlen)
{
	char body[2048];
	char when[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (f->created[0] && !strchr(f->created, '"') && !strchr(f->created, '\\'))
		snprintf(when, sizeof(when), "%s", f->created);
	int n = snprintf(body, sizeof(body),
			 "{\"roamfs\": %d, \"uuid\": \"%s\", \"block_size\": %u, \"compression\": \"%s\", "
			 "\"created\": \"%s\"%s%s%s}\n",
			 RFS_FORMAT_VERSION, f->uuid, f->block_size, f->compress ? "lz4" : "none", when,
			 f->meta_url[0] ? ", \"meta\": \"" : "", f->meta_url, f->meta_url[0] ? "\"" : "");
	if (strchr(f->meta_url, '"') || strchr(f->meta_url, '\\')) {
		snprintf(err, errlen, "the --meta store URL must not contain quotes or backslashes");
		return -EINVAL;
	}
	int rc = force ? rfs_store_put(s, FORMAT_KEY, body, (size_t)n)
		       : rfs_store_put_if_absent(s, FORMAT_KEY, body, (size_t)n);
	if (rc == -EEXIST) {
		snprintf(err, errlen,
			 "store '%s' already holds a roamfs workspace; refusing to format it "
			 "(use --force to overwrite the format record; existing data stays in the store)",
			 s->url);
	} else if (rc < 0) {
		char cause[512];
		rfs_store_error(s, cause, sizeof(cause));
		snprintf(err, errlen, "cannot write the format record to '%s': %s", s->url,
			 cause[0] ? cause : strerror(-rc));
	}
	return rc;
}

/* Finds "key": and returns a pointer just past the colon and spaces, or NULL. */
static const char *json_field(const char *body, const char *key)
{
	char pat[64];
	snprintf(pat, sizeof(pat), "\"%s\"", key);
	const char *p = strstr(body, pat);
	if (!p)
		return NULL;
	p += strlen(pat);
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p != ':')
		return NULL;
	p++;
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

static int json_string(const char *body, const char *key, char *out, size_t len)
{
	const char *p = json_field(body, key);
	if (!p || *p != '"')
		return -EINVAL;
	p++;
	const char *e = strchr(p, '"');
	if (!e || (size_t)(e - p) >= len)
		return -EINVAL;
	memcpy(out, p, (size_t)(e - p));
	out[e - p] = 0;
	return 0;
}

static int json_int(const char *body, const char *key, long long *v)
{
	const char *p = json_field(body, key);
	if (!p)
		return -EINVAL;
	char *end;
	errno = 0;
	*v = strtoll(p, &end, 10);
	if (errno || end == p)
		return -EINVAL;
	return 0;
}

int rfs_format_read(struct rfs_store *s, struct rfs_format *f, char *err, size_t errlen)
{
	struct rfs_buf b = {0};
	int rc = rfs_store_get(s, FORMAT_KEY, 0, 64 * 1024, &b);
	if (rc == -ENOENT) {
		snprintf(err, errlen, "store '%s' holds no roamfs workspace (no %s); run 'roamfs format %s' first",
			 s->url, FORMAT_KEY, s->url);
		return rc;
	}
	if (rc < 0) {
		char cause[512];
		rfs_store_error(s, cause, sizeof(cause));
		snprintf(err, errlen, "cannot read the format record of '%s': %s", s->url,
			 cause[0] ? cause : strerror(-rc));
		return rc;
	}
	char *body = malloc(b.len + 1);
	if (!body) {
		rfs_buf_free(&b);
		return -ENOMEM;
	}
	memcpy(body, b.data, b.len);
	body[b.len] = 0;
	rfs_buf_free(&b);
	long long version = 0, bs = 0;
	char comp[16];
	memset(f, 0, sizeof(*f));
	if (json_int(body, "roamfs", &version) < 0 || json_string(body, "uuid", f->uuid, sizeof(f->uuid)) < 0 ||
	    json_int(body, "block_size", &bs) < 0 || json_string(body, "compression", comp, sizeof(comp)) < 0) {
		snprintf(err, errlen,
			 "the format record %s in '%s' is damaged; re-create it with 'roamfs format --force' only if "
			 "you know the block size",
			 FORMAT_KEY, s->url);
		rc = -EINVAL;
		goto out;
	}
	if (version < 1 || version > RFS_FORMAT_VERSION) {
		snprintf(err, errlen,
			 "store '%s' has workspace format version %lld, but this roamfs understands version %d; "
			 "upgrade roamfs",
			 s->url, version, RFS_FORMAT_VERSION);
		rc = -EPROTO;
		goto out;
	}
	if (bs < RFS_MIN_BLOCK_SIZE || bs > RFS_MAX_BLOCK_SIZE || (bs & (bs - 1))) {
		snprintf(err, errlen, "the format record of '%s' names an invalid block size %lld", s->url, bs);
		rc = -EINVAL;
		goto out;
	}
	if (json_string(body, "meta", f->meta_url, sizeof(f->meta_url)) < 0)
		f->meta_url[0] = 0;
	if (json_string(body, "created", f->created, sizeof(f->created)) < 0)
		f->created[0] = 0;
	f->version = (int)version;
	f->block_size = (uint32_t)bs;
	f->compress = !strcmp(comp, "lz4");
out:
	free(body);
	return rc;
}

int rfs_format_upgrade(struct rfs_store *s, struct rfs_format *f, char *err, size_t errlen)
{
	if (f->version >= RFS_FORMAT_VERSION)
		return 0;
	int rc = rfs_format_write(s, f, 1, err, errlen);
	if (rc < 0)
		return rc;
	RFS_LOG(LOG_NOTICE,
		"workspace '%s' upgraded from format %d to %d (blocks carry a fast checksum); roamfs "
		"versions that know only format %d can no longer mount it",
		s->url, f->version, RFS_FORMAT_VERSION, f->version);
	f->version = RFS_FORMAT_VERSION;
	return 0;
}

int rfs_format_guard(void *arg)
{
	struct rfs_format_guard *g = arg;
	char err[1024];
	int rc = rfs_format_upgrade(g->store, g->format, err, sizeof(err));
	if (rc < 0)
		RFS_LOG(LOG_ERR, "%s; nothing is written to the log until it can be upgraded", err);
	return rc;
}
