/*
 * Live tests of the s3 store against a real S3 server (in CI: Ceph RGW started by the ctest
 * fixture in tests/s3, see tests/s3/ceph.sh). Skipped (exit 77) unless an endpoint is given:
 *
 *   RFS_S3_ENDPOINT (or S3_ENDPOINT)   e.g. http://127.0.0.1:4600
 *   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY   credentials
 *   RFS_S3_BUCKET     bucket to use (default roamfs-unit; created if missing)
 *   RFS_S3_REGION     region (default AWS_REGION, else us-east-1)
 *   RFS_S3_PROVIDER   provider= for the URL (default ceph)
 *   RFS_S3_URL_EXTRA  more URL parameters, e.g. "&style=virtual" (with http://localhost:PORT)
 *
 * Every run works under a fresh random prefix and deletes what it wrote.
 */
#include <pthread.h>

#include "backends/backend.h"
#include "check.h"

static char base_url[1024]; /* s3://BUCKET/PREFIX?endpoint=..&region=..&provider=.. */
static char endpoint[512], bucket[128], region[64], provider[32], prefix[64];

static struct rfs_store *open_store(const char *extra)
{
	char url[2048], err[1024] = "";
	snprintf(url, sizeof(url), "%s%s", base_url, extra ? extra : "");
	struct rfs_store *s = NULL;
	int rc = rfs_store_open(url, &s, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "cannot open %s: %s\n", url, err);
		check_failures++;
		return NULL;
	}
	return s;
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

static void put_get_head(void)
{
	struct rfs_store *s = open_store(NULL);
	REQUIRE(s);
	uint8_t data[10000];
	fill(data, sizeof(data), 1);
	CHECK_OK(rfs_store_put(s, "obj/a", data, sizeof(data)));
	struct rfs_buf b;
	REQUIRE_OK(rfs_store_get(s, "obj/a", 0, RFS_GET_TO_END, &b));
	CHECK_EQ(b.len, sizeof(data));
	CHECK_MEM(b.data, data, sizeof(data));
	rfs_buf_free(&b);
	/* ranges: inside, at the end (short), past the end (empty), open-ended */
	REQUIRE_OK(rfs_store_get(s, "obj/a", 100, 50, &b));
	CHECK_EQ(b.len, 50);
	CHECK_MEM(b.data, data + 100, 50);
	rfs_buf_free(&b);
	REQUIRE_OK(rfs_store_get(s, "obj/a", 9990, 100, &b));
	CHECK_EQ(b.len, 10);
	CHECK_MEM(b.data, data + 9990, 10);
	rfs_buf_free(&b);
	REQUIRE_OK(rfs_store_get(s, "obj/a", 10000, 100, &b));
	CHECK_EQ(b.len, 0);
	rfs_buf_free(&b);
	REQUIRE_OK(rfs_store_get(s, "obj/a", 20000, RFS_GET_TO_END, &b));
	CHECK_EQ(b.len, 0);
	rfs_buf_free(&b);
	REQUIRE_OK(rfs_store_get(s, "obj/a", 9000, RFS_GET_TO_END, &b));
	CHECK_EQ(b.len, 1000);
	CHECK_MEM(b.data, data + 9000, 1000);
	rfs_buf_free(&b);
	uint64_t size = 0;
	CHECK_OK(rfs_store_head(s, "obj/a", &size));
	CHECK_EQ(size, sizeof(data));
	/* overwrite with put, an empty object */
	CHECK_OK(rfs_store_put(s, "obj/a", "", 0));
	CHECK_OK(rfs_store_head(s, "obj/a", &size));
	CHECK_EQ(size, 0);
	REQUIRE_OK(rfs_store_get(s, "obj/a", 0, RFS_GET_TO_END, &b));
	CHECK_EQ(b.len, 0);
	rfs_buf_free(&b);
	/* missing keys */
	CHECK_ERR(rfs_store_get(s, "obj/missing", 0, RFS_GET_TO_END, &b), ENOENT);
	CHECK_ERR(rfs_store_get(s, "obj/missing", 5, 5, &b), ENOENT);
	CHECK_ERR(rfs_store_get(s, "obj/missing", 0, 0, &b), ENOENT);
	CHECK_ERR(rfs_store_head(s, "obj/missing", &size), ENOENT);
	/* delete */
	CHECK_OK(rfs_store_delete(s, "obj/a"));
	CHECK_ERR(rfs_store_head(s, "obj/a", &size), ENOENT);
	CHECK_ERR(rfs_store_get(s, "", 0, 1, &b), EINVAL);
	CHECK_ERR(rfs_store_put(s, "/abs", "x", 1), EINVAL);
	rfs_store_close(s);
}

static void put_if_absent(void)
{
	struct rfs_store *s = open_store(NULL);
	REQUIRE(s);
	CHECK_OK(rfs_store_put_if_absent(s, "log/00000000000000000001", "first", 5));
	CHECK_ERR(rfs_store_put_if_absent(s, "log/00000000000000000001", "second", 6), EEXIST);
	CHECK_ERR(rfs_store_put_if_absent(s, "log/00000000000000000001", "first", 5), EEXIST);
	struct rfs_buf b;
	REQUIRE_OK(rfs_store_get(s, "log/00000000000000000001", 0, RFS_GET_TO_END, &b));
	CHECK_EQ(b.len, 5);
	CHECK_MEM(b.data, "first", 5);
	rfs_buf_free(&b);
	CHECK_OK(rfs_store_delete(s, "log/00000000000000000001"));
	rfs_store_close(s);

	/* a store that cannot refuse overwrites reports ENOTSUP, never a silent overwrite */
	s = open_store("&conditional=none");
	REQUIRE(s);
	CHECK_ERR(rfs_store_put_if_absent(s, "log/x", "x", 1), ENOTSUP);
	char err[512];
	rfs_store_error(s, err, sizeof(err));
	CHECK_CONTAINS(err, "does not refuse overwrites");
	rfs_store_close(s);

	/* the probe at open agrees that this store refuses a second create */
	s = open_store("&probe=1");
	REQUIRE(s);
	CHECK_OK(rfs_store_put_if_absent(s, "log/y", "y", 1));
	CHECK_ERR(rfs_store_put_if_absent(s, "log/y", "z", 1), EEXIST);
	CHECK_OK(rfs_store_delete(s, "log/y"));
	rfs_store_close(s);
}

/* Many threads racing put_if_absent on one key: exactly one wins. */
struct race {
	struct rfs_store *s;
	int id;
	int rc;
};

static void *race_one(void *arg)
{
	struct race *r = arg;
	char body[32];
	snprintf(body, sizeof(body), "writer %d", r->id);
	r->rc = rfs_store_put_if_absent(r->s, "race/slot", body, strlen(body));
	return NULL;
}

static void put_if_absent_race(void)
{
	struct rfs_store *s = open_store(NULL);
	REQUIRE(s);
	struct race r[8];
	pthread_t th[8];
	for (int i = 0; i < 8; i++) {
		r[i] = (struct race){s, i, 1};
		pthread_create(&th[i], NULL, race_one, &r[i]);
	}
	int wins = 0, winner = -1;
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		if (r[i].rc == 0) {
			wins++;
			winner = i;
		} else {
			CHECK_EQ(r[i].rc, -EEXIST);
		}
	}
	CHECK_EQ(wins, 1);
	struct rfs_buf b;
	REQUIRE_OK(rfs_store_get(s, "race/slot", 0, RFS_GET_TO_END, &b));
	char want[32];
	snprintf(want, sizeof(want), "writer %d", winner);
	CHECK_EQ(b.len, strlen(want));
	CHECK_MEM(b.data, want, strlen(want));
	rfs_buf_free(&b);
	CHECK_OK(rfs_store_delete(s, "race/slot"));
	rfs_store_close(s);
}

static const char *odd_keys[] = {
    "odd/with space",
    "odd/plus+sign",
    "odd/percent%20literal",
    "odd/tilde~and-dots..x",
    "odd/unicode-\xc3\xa9\xe2\x82\xac\xe4\xb8\xad\xf0\x9f\x98\x80",
    "odd/amp&eq=q?hash#star*paren()quote'\"",
    "odd/a//double/./slash",
    "odd/<xml>&entities;",
};
#define NODD (sizeof(odd_keys) / sizeof(odd_keys[0]))

struct seen {
	char keys[2000][64];
	uint64_t sizes[2000];
	int n;
	int stop_at;
};

static int seen_cb(void *arg, const char *key, uint64_t size)
{
	struct seen *sn = arg;
	if (sn->n < 2000) {
		snprintf(sn->keys[sn->n], sizeof(sn->keys[0]), "%s", key);
		sn->sizes[sn->n] = size;
	}
	sn->n++;
	return sn->stop_at && sn->n >= sn->stop_at;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void odd_keys_roundtrip(void)
{
	struct rfs_store *s = open_store(NULL);
	REQUIRE(s);
	for (size_t i = 0; i < NODD; i++) {
		char body[256];
		snprintf(body, sizeof(body), "body of %s", odd_keys[i]);
		if (!CHECK_OK(rfs_store_put(s, odd_keys[i], body, strlen(body))))
			fprintf(stderr, "  key '%s'\n", odd_keys[i]);
		struct rfs_buf b;
		if (!CHECK_OK(rfs_store_get(s, odd_keys[i], 0, RFS_GET_TO_END, &b)))
			continue;
		CHECK_EQ(b.len, strlen(body));
		CHECK_MEM(b.data, body, strlen(body));
		rfs_buf_free(&b);
		uint64_t size;
		CHECK_OK(rfs_store_head(s, odd_keys[i], &size));
		CHECK_EQ(size, strlen(body));
	}
	CHECK_OK(rfs_store_put_if_absent(s, "odd/cond with space+%", "c", 1));
	CHECK_ERR(rfs_store_put_if_absent(s, "odd/cond with space+%", "d", 1), EEXIST);
	CHECK_OK(rfs_store_delete(s, "odd/cond with space+%"));
	static struct seen sn;
	memset(&sn, 0, sizeof(sn));
	CHECK_OK(rfs_store_list(s, "odd/", seen_cb, &sn));
	const char *sorted[NODD];
	memcpy(sorted, odd_keys, sizeof(sorted));
	qsort(sorted, NODD, sizeof(sorted[0]), cmp_str);
	CHECK_EQ(sn.n, NODD);
	for (size_t i = 0; i < NODD && (int)i < sn.n; i++)
		CHECK_STR(sn.keys[i], sorted[i]);
	for (size_t i = 0; i < NODD; i++)
		CHECK_OK(rfs_store_delete(s, odd_keys[i]));
	rfs_store_close(s);
}

/* 1100 small objects written by 8 threads (pooled handles in parallel), then listed in
 * pages of 1000 (the S3 maximum) and of 7. */
#define NMANY 1100
struct many {
	struct rfs_store *s;
	int from, to, del;
	int failed;
};

static void *many_one(void *arg)
{
	struct many *m = arg;
	for (int i = m->from; i < m->to; i++) {
		char key[64], body[16];
		snprintf(key, sizeof(key), "many/%05d", i);
		int n = snprintf(body, sizeof(body), "%d", i);
		int rc = m->del ? rfs_store_delete(m->s, key) : rfs_store_put(m->s, key, body, (size_t)n);
		if (rc < 0)
			m->failed++;
	}
	return NULL;
}

static void run_many(struct rfs_store *s, int del)
{
	struct many m[8];
	pthread_t th[8];
	for (int t = 0; t < 8; t++) {
		m[t] = (struct many){s, t * NMANY / 8, (t + 1) * NMANY / 8, del, 0};
		pthread_create(&th[t], NULL, many_one, &m[t]);
	}
	for (int t = 0; t < 8; t++) {
		pthread_join(th[t], NULL);
		CHECK_EQ(m[t].failed, 0);
	}
}

static void list_pagination(void)
{
	struct rfs_store *s = open_store(NULL);
	REQUIRE(s);
	run_many(s, 0);
	static struct seen sn;
	memset(&sn, 0, sizeof(sn));
	CHECK_OK(rfs_store_list(s, "many/", seen_cb, &sn));
	CHECK_EQ(sn.n, NMANY);
	for (int i = 0; i < NMANY && i < sn.n; i++) {
		char key[64];
		snprintf(key, sizeof(key), "many/%05d", i);
		if (!CHECK_STR(sn.keys[i], key))
			break;
		char body[16];
		CHECK_EQ(sn.sizes[i], snprintf(body, sizeof(body), "%d", i));
	}
	/* small pages, prefix narrower than a "directory", early stop */
	struct rfs_store *s7 = open_store("&max_keys=7");
	if (s7) {
		memset(&sn, 0, sizeof(sn));
		CHECK_OK(rfs_store_list(s7, "many/001", seen_cb, &sn));
		CHECK_EQ(sn.n, 100); /* many/00100 .. many/00199 */
		CHECK_STR(sn.keys[0], "many/00100");
		CHECK_STR(sn.keys[99], "many/00199");
		memset(&sn, 0, sizeof(sn));
		sn.stop_at = 10;
		CHECK_OK(rfs_store_list(s7, "many/", seen_cb, &sn));
		CHECK_EQ(sn.n, 10);
		memset(&sn, 0, sizeof(sn));
		CHECK_OK(rfs_store_list(s7, "nothing-here/", seen_cb, &sn));
		CHECK_EQ(sn.n, 0);
		rfs_store_close(s7);
	}
	run_many(s, 1);
	memset(&sn, 0, sizeof(sn));
	CHECK_OK(rfs_store_list(s, "many/", seen_cb, &sn));
	CHECK_EQ(sn.n, 0);
	rfs_store_close(s);
}

static void multipart(void)
{
	struct rfs_store *s = open_store(NULL);
	REQUIRE(s);
	size_t n = (70u << 20) + 12345; /* above the 64 MiB threshold, a short last part */
	uint8_t *data = malloc(n);
	REQUIRE(data);
	fill(data, n, 7);
	CHECK_OK(rfs_store_put(s, "big/70m", data, n));
	uint64_t size = 0;
	CHECK_OK(rfs_store_head(s, "big/70m", &size));
	CHECK_EQ(size, n);
	struct rfs_buf b;
	/* across the first part boundary (16 MiB), and the tail */
	if (CHECK_OK(rfs_store_get(s, "big/70m", (16u << 20) - 100, 200, &b))) {
		CHECK_EQ(b.len, 200);
		CHECK_MEM(b.data, data + (16u << 20) - 100, 200);
		rfs_buf_free(&b);
	}
	if (CHECK_OK(rfs_store_get(s, "big/70m", 0, RFS_GET_TO_END, &b))) {
		CHECK_EQ(b.len, n);
		if (b.len == n)
			CHECK_MEM(b.data, data, n);
		rfs_buf_free(&b);
	}
	CHECK_OK(rfs_store_delete(s, "big/70m"));
	/* a smaller threshold splits a 12 MiB object into 5 MiB parts */
	struct rfs_store *s5 = open_store("&multipart_threshold=5M&part_size=5M");
	if (s5) {
		CHECK_OK(rfs_store_put(s5, "big/12m", data, 12u << 20));
		if (CHECK_OK(rfs_store_get(s5, "big/12m", 0, RFS_GET_TO_END, &b))) {
			CHECK_EQ(b.len, 12u << 20);
			if (b.len == 12u << 20)
				CHECK_MEM(b.data, data, 12u << 20);
			rfs_buf_free(&b);
		}
		CHECK_OK(rfs_store_delete(s5, "big/12m"));
		rfs_store_close(s5);
	}
	free(data);
	rfs_store_close(s);
}

static void errors(void)
{
	char url[2048], err[1024];
	struct rfs_store *s = NULL;
	/* a wrong secret: EACCES, the source named, the secret not */
	snprintf(url, sizeof(url), "%s&access_key=%s&secret_key=Wr0ngS3cretValue", base_url,
		 getenv("AWS_ACCESS_KEY_ID"));
	int rc = rfs_store_open(url, &s, err, sizeof(err));
	CHECK_EQ(rc, -EACCES);
	CHECK_CONTAINS(err, "403");
	CHECK_CONTAINS(err, "access_key/secret_key parameters");
	CHECK(!strstr(err, "Wr0ngS3cretValue"));
	if (rc == 0)
		rfs_store_close(s);
	/* an unknown access key */
	snprintf(url, sizeof(url), "%s&access_key=NOSUCHKEY&secret_key=x", base_url);
	CHECK_EQ(rfs_store_open(url, &s, err, sizeof(err)), -EACCES);
	/* a missing bucket, not created */
	snprintf(url, sizeof(url), "s3://roamfs-no-such-bucket-%s/p?endpoint=%s&region=%s&provider=%s", prefix,
		 endpoint, region, provider);
	CHECK_EQ(rfs_store_open(url, &s, err, sizeof(err)), -ENOENT);
	CHECK_CONTAINS(err, "create_bucket=1");
	/* nothing listening: EIO after the retries, quickly with retries=1 */
	snprintf(url, sizeof(url), "s3://b/p?endpoint=http://127.0.0.1:1&provider=%s&retries=1", provider);
	int64_t t0 = rfs_monotonic_ms();
	CHECK_EQ(rfs_store_open(url, &s, err, sizeof(err)), -EIO);
	CHECK_CONTAINS(err, "check endpoint=");
	CHECK_CONTAINS(err, "after 2 attempts");
	CHECK(rfs_monotonic_ms() - t0 < 5000);
}

static void cleanup_prefix(void)
{
	struct rfs_store *s = open_store(NULL);
	REQUIRE(s);
	static struct seen sn;
	memset(&sn, 0, sizeof(sn));
	CHECK_OK(rfs_store_list(s, "", seen_cb, &sn));
	for (int i = 0; i < sn.n && i < 2000; i++)
		rfs_store_delete(s, sn.keys[i]);
	if (sn.n)
		fprintf(stderr, "  note: %d key(s) left over under %s\n", sn.n, prefix);
	rfs_store_close(s);
}

int main(int argc, char **argv)
{
	check_init(argc, argv);
	const char *ep = getenv("RFS_S3_ENDPOINT");
	if (!ep || !ep[0])
		ep = getenv("S3_ENDPOINT");
	if (!ep || !ep[0]) {
		fprintf(stderr, "SKIP: set RFS_S3_ENDPOINT (and AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) to run\n");
		return 77;
	}
	const char *v;
	snprintf(endpoint, sizeof(endpoint), "%s", ep);
	snprintf(bucket, sizeof(bucket), "%s", (v = getenv("RFS_S3_BUCKET")) && v[0] ? v : "roamfs-unit");
	snprintf(region, sizeof(region), "%s",
		 (v = getenv("RFS_S3_REGION")) && v[0] ? v
		 : (v = getenv("AWS_REGION")) && v[0]  ? v
						       : "us-east-1");
	snprintf(provider, sizeof(provider), "%s", (v = getenv("RFS_S3_PROVIDER")) && v[0] ? v : "ceph");
	uint8_t rnd[6];
	rfs_random(rnd, sizeof(rnd));
	char hex[13];
	rfs_hex(rnd, sizeof(rnd), hex);
	snprintf(prefix, sizeof(prefix), "live-%s", hex);
	snprintf(base_url, sizeof(base_url), "s3://%s/%s?endpoint=%s&region=%s&provider=%s&create_bucket=1%s", bucket,
		 prefix, endpoint, region, provider, (v = getenv("RFS_S3_URL_EXTRA")) ? v : "");
	fprintf(stderr, "store %s\n", base_url);
	RUN(put_get_head);
	RUN(put_if_absent);
	RUN(put_if_absent_race);
	RUN(odd_keys_roundtrip);
	RUN(list_pagination);
	RUN(multipart);
	RUN(errors);
	RUN(cleanup_prefix);
	return check_done();
}
