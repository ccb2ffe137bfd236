/* Unit tests for backends/backend.c and backends/file.c: the file store through rfs_store_*. */
#include <dirent.h>
#include <pthread.h>
#include <sys/stat.h>

#include "backends/backend.h"
#include "check.h"

struct fixture {
	char dir[4096];
	struct rfs_store *s;
};

static int setup(struct fixture *f)
{
	f->s = NULL;
	if (check_tmpdir(f->dir, sizeof(f->dir)) < 0)
		return -1;
	char err[512] = "";
	int rc = rfs_store_open(f->dir, &f->s, err, sizeof(err));
	if (!CHECK_OK(rc)) {
		fprintf(stderr, "  %s\n", err);
		check_rmtree(f->dir);
		return -1;
	}
	return 0;
}

static void teardown(struct fixture *f)
{
	rfs_store_close(f->s);
	check_rmtree(f->dir);
}

/* get into a fresh buffer and compare with want. */
static int get_equals(struct rfs_store *s, const char *key, uint64_t off, uint64_t len, const char *want)
{
	struct rfs_buf b = {0};
	int rc = rfs_store_get(s, key, off, len, &b);
	int ok = CHECK_OK(rc) && CHECK_EQ(b.len, strlen(want)) && (b.len == 0 || !memcmp(b.data, want, b.len));
	if (!ok)
		fprintf(stderr, "  get %s off %llu len %llu\n", key, (unsigned long long)off, (unsigned long long)len);
	rfs_buf_free(&b);
	return ok;
}

static void store_open_urls(void)
{
	char dir[4096], err[512], url[4200];
	REQUIRE(check_tmpdir(dir, sizeof(dir)) == 0);
	char real[4096];
	REQUIRE(realpath(dir, real) != NULL);
	char want[4200];
	snprintf(want, sizeof(want), "file://%s", real);

	struct rfs_store *s = NULL;
	snprintf(url, sizeof(url), "file://%s", dir);
	if (CHECK_OK(rfs_store_open(url, &s, err, sizeof(err)))) {
		CHECK_STR(s->url, want);
		CHECK_STR(s->ops->name, "file");
		rfs_store_close(s);
	}
	s = NULL;
	snprintf(url, sizeof(url), "%s/.", dir); /* a plain path, not canonical */
	if (CHECK_OK(rfs_store_open(url, &s, err, sizeof(err)))) {
		CHECK_STR(s->url, want);
		rfs_store_close(s);
	}

	/* errors come with a message naming the store */
	s = NULL;
	err[0] = 0;
	snprintf(url, sizeof(url), "file://%s/missing", dir);
	CHECK_ERR(rfs_store_open(url, &s, err, sizeof(err)), ENOENT);
	CHECK_CONTAINS(err, "/missing");
	CHECK(s == NULL);
	snprintf(url, sizeof(url), "%s/afile", dir);
	CHECK_OK(rfs_write_file_atomic(url, "x", 1, 0600));
	err[0] = 0;
	CHECK_ERR(rfs_store_open(url, &s, err, sizeof(err)), ENOTDIR);
	CHECK_CONTAINS(err, "afile");
	err[0] = 0;
	CHECK_ERR(rfs_store_open("ftp://host/x", &s, err, sizeof(err)), EPROTONOSUPPORT);
	CHECK_CONTAINS(err, "ftp");

	/* test parameters: both kept in the URL; a request waits latency_ms; unknown ones refused */
	s = NULL;
	snprintf(url, sizeof(url), "file://%s?conditional=ignore&latency_ms=30", dir);
	if (CHECK_OK(rfs_store_open(url, &s, err, sizeof(err)))) {
		snprintf(want, sizeof(want), "file://%s?conditional=ignore&latency_ms=30", real);
		CHECK_STR(s->url, want);
		int64_t t0 = rfs_monotonic_ms();
		uint64_t size;
		CHECK_ERR(rfs_store_head(s, "nothing", &size), ENOENT);
		CHECK(rfs_monotonic_ms() - t0 >= 30);
		rfs_store_close(s);
	}
	err[0] = 0;
	snprintf(url, sizeof(url), "file://%s?latency_ms=abc", dir);
	CHECK_ERR(rfs_store_open(url, &s, err, sizeof(err)), EINVAL);
	CHECK_CONTAINS(err, "latency_ms=abc");
	/* mibps: a GET of 2 MiB at 20 MiB/s takes 100 ms */
	s = NULL;
	snprintf(url, sizeof(url), "file://%s?mibps=20", dir);
	if (CHECK_OK(rfs_store_open(url, &s, err, sizeof(err)))) {
		snprintf(want, sizeof(want), "file://%s?mibps=20", real);
		CHECK_STR(s->url, want);
		size_t big = 2u << 20;
		char *body = calloc(1, big);
		struct rfs_buf b = {0};
		if (CHECK(body != NULL) && CHECK_OK(rfs_store_put(s, "data/big", body, big))) {
			int64_t t0 = rfs_monotonic_ms();
			CHECK_OK(rfs_store_get(s, "data/big", 0, RFS_GET_TO_END, &b));
			CHECK_EQ(b.len, big);
			CHECK(rfs_monotonic_ms() - t0 >= 100);
		}
		rfs_buf_free(&b);
		free(body);
		rfs_store_close(s);
	}
	snprintf(url, sizeof(url), "file://%s?mibps=0", dir);
	CHECK_ERR(rfs_store_open(url, &s, err, sizeof(err)), EINVAL);
	CHECK_CONTAINS(err, "mibps=0");
	snprintf(url, sizeof(url), "file://%s?speed=fast", dir);
	CHECK_ERR(rfs_store_open(url, &s, err, sizeof(err)), EINVAL);
	CHECK_CONTAINS(err, "speed=fast");
	rfs_store_close(NULL);
	check_rmtree(dir);
}

static void store_put_get_ranges(void)
{
	struct fixture f;
	REQUIRE(setup(&f) == 0);
	const char *body = "0123456789abcdef";
	CHECK_OK(rfs_store_put(f.s, "data/ab/pack1", body, 16));
	get_equals(f.s, "data/ab/pack1", 0, RFS_GET_TO_END, body);
	get_equals(f.s, "data/ab/pack1", 0, 16, body);
	get_equals(f.s, "data/ab/pack1", 0, 3, "012");
	get_equals(f.s, "data/ab/pack1", 10, 4, "abcd");
	get_equals(f.s, "data/ab/pack1", 10, RFS_GET_TO_END, "abcdef");
	get_equals(f.s, "data/ab/pack1", 12, 100, "cdef"); /* runs past the end: short */
	get_equals(f.s, "data/ab/pack1", 15, 2, "f");
	get_equals(f.s, "data/ab/pack1", 16, 5, "");   /* at the end */
	get_equals(f.s, "data/ab/pack1", 1000, 5, ""); /* past the end */
	get_equals(f.s, "data/ab/pack1", 1000, RFS_GET_TO_END, "");
	get_equals(f.s, "data/ab/pack1", 4, 0, "");

	/* overwrite, and an empty object */
	CHECK_OK(rfs_store_put(f.s, "data/ab/pack1", "new", 3));
	get_equals(f.s, "data/ab/pack1", 0, RFS_GET_TO_END, "new");
	CHECK_OK(rfs_store_put(f.s, "empty", "", 0));
	get_equals(f.s, "empty", 0, RFS_GET_TO_END, "");

	struct rfs_buf b = {0};
	CHECK_ERR(rfs_store_get(f.s, "data/ab/none", 0, RFS_GET_TO_END, &b), ENOENT);
	CHECK_ERR(rfs_store_get(f.s, "nodir/none", 0, RFS_GET_TO_END, &b), ENOENT);
	rfs_buf_free(&b);

	/* a big object */
	size_t big = 3 << 20;
	uint8_t *data = malloc(big);
	rfs_random(data, big);
	CHECK_OK(rfs_store_put(f.s, "data/cd/big", data, big));
	b = (struct rfs_buf){0};
	if (CHECK_OK(rfs_store_get(f.s, "data/cd/big", 1000, 1 << 20, &b))) {
		CHECK_EQ(b.len, 1 << 20);
		CHECK_MEM(b.data, data + 1000, 1 << 20);
	}
	rfs_buf_free(&b);
	free(data);

	CHECK(f.s->requests[RFS_REQ_PUT] >= 4);
	CHECK(f.s->requests[RFS_REQ_GET] >= 10);
	teardown(&f);
}

static void store_head(void)
{
	struct fixture f;
	REQUIRE(setup(&f) == 0);
	CHECK_OK(rfs_store_put(f.s, "a/b/c", "12345", 5));
	uint64_t size = 0;
	CHECK_OK(rfs_store_head(f.s, "a/b/c", &size));
	CHECK_EQ(size, 5);
	CHECK_OK(rfs_store_head(f.s, "a/b/c", NULL));
	CHECK_ERR(rfs_store_head(f.s, "a/b/d", &size), ENOENT);
	CHECK_ERR(rfs_store_head(f.s, "x/y", &size), ENOENT);
	teardown(&f);
}

struct listing {
	char keys[32][64];
	uint64_t sizes[32];
	int n, stop_after;
};

static int list_cb(void *arg, const char *key, uint64_t size)
{
	struct listing *l = arg;
	if (l->n < 32) {
		snprintf(l->keys[l->n], sizeof(l->keys[0]), "%s", key);
		l->sizes[l->n] = size;
	}
	l->n++;
	return l->stop_after && l->n >= l->stop_after;
}

/* Lists prefix and compares with the expected keys (NULL-terminated). */
static void expect_list(struct rfs_store *s, const char *prefix, const char *const *want)
{
	struct listing l = {0};
	if (!CHECK_OK(rfs_store_list(s, prefix, list_cb, &l)))
		return;
	int n = 0;
	while (want[n])
		n++;
	if (!CHECK_EQ(l.n, n)) {
		fprintf(stderr, "  prefix \"%s\":", prefix);
		for (int i = 0; i < l.n && i < 32; i++)
			fprintf(stderr, " %s", l.keys[i]);
		fprintf(stderr, "\n");
		return;
	}
	for (int i = 0; i < n; i++) {
		CHECK_STR(l.keys[i], want[i]);
		CHECK_EQ(l.sizes[i], strlen(want[i])); /* each object holds its own key */
	}
}

static void store_list_sorted_prefix(void)
{
	struct fixture f;
	REQUIRE(setup(&f) == 0);
	/* put in a scrambled order; each object's content is its key */
	static const char *const keys[] = {
	    "log/00000000000000000010",
	    "data/cd/zz",
	    "roamfs.json",
	    "log/00000000000000000002",
	    "data/ab/y",
	    "logx",
	    "data/ab/x",
	    "log/00000000000000000001",
	    "data/a",
	    "data/ab/sub/deep",
	};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		CHECK_OK(rfs_store_put(f.s, keys[i], keys[i], strlen(keys[i])));
	/* a temp file left by a crashed put is never listed */
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s/log/.tmp-deadbeef", f.dir);
	CHECK_OK(rfs_write_file_atomic(tmp, "junk", 4, 0600));

	static const char *const all[] = {"data/a",
					  "data/ab/sub/deep",
					  "data/ab/x",
					  "data/ab/y",
					  "data/cd/zz",
					  "log/00000000000000000001",
					  "log/00000000000000000002",
					  "log/00000000000000000010",
					  "logx",
					  "roamfs.json",
					  NULL};
	expect_list(f.s, "", all);
	static const char *const log[] = {"log/00000000000000000001", "log/00000000000000000002",
					  "log/00000000000000000010", NULL};
	expect_list(f.s, "log/", log);
	static const char *const log_any[] = {"log/00000000000000000001", "log/00000000000000000002",
					      "log/00000000000000000010", "logx", NULL};
	expect_list(f.s, "log", log_any);
	static const char *const log_1[] = {"log/00000000000000000010", NULL};
	expect_list(f.s, "log/0000000000000000001", log_1);
	static const char *const data_a[] = {"data/a", "data/ab/sub/deep", "data/ab/x", "data/ab/y", NULL};
	expect_list(f.s, "data/a", data_a);
	static const char *const data_ab[] = {"data/ab/sub/deep", "data/ab/x", "data/ab/y", NULL};
	expect_list(f.s, "data/ab/", data_ab);
	static const char *const one[] = {"roamfs.json", NULL};
	expect_list(f.s, "roamfs.json", one);
	static const char *const none[] = {NULL};
	expect_list(f.s, "nothing/", none);
	expect_list(f.s, "data/ab/x/", none);
	expect_list(f.s, "zzz", none);

	/* the callback can stop early */
	struct listing l = {.stop_after = 2};
	CHECK_OK(rfs_store_list(f.s, "log/", list_cb, &l));
	CHECK_EQ(l.n, 2);
	CHECK_STR(l.keys[1], "log/00000000000000000002");
	teardown(&f);
}

static void store_put_if_absent(void)
{
	struct fixture f;
	REQUIRE(setup(&f) == 0);
	CHECK_OK(rfs_store_put_if_absent(f.s, "log/00000000000000000001", "first", 5));
	CHECK_ERR(rfs_store_put_if_absent(f.s, "log/00000000000000000001", "second!", 7), EEXIST);
	get_equals(f.s, "log/00000000000000000001", 0, RFS_GET_TO_END, "first");
	/* no temp file left behind by the losing put */
	struct listing l = {0};
	CHECK_OK(rfs_store_list(f.s, "", list_cb, &l));
	CHECK_EQ(l.n, 1);
	char path[4200];
	snprintf(path, sizeof(path), "%s/log", f.dir);
	DIR *d = opendir(path);
	int files = 0;
	if (CHECK(d != NULL)) {
		struct dirent *de;
		while ((de = readdir(d)))
			files += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
		closedir(d);
	}
	CHECK_EQ(files, 1);
	/* a plain put overwrites regardless */
	CHECK_OK(rfs_store_put(f.s, "log/00000000000000000001", "third", 5));
	get_equals(f.s, "log/00000000000000000001", 0, RFS_GET_TO_END, "third");
	teardown(&f);
}

static void store_delete(void)
{
	struct fixture f;
	REQUIRE(setup(&f) == 0);
	CHECK_OK(rfs_store_put(f.s, "data/ab/p", "xyz", 3));
	CHECK_OK(rfs_store_delete(f.s, "data/ab/p"));
	struct rfs_buf b = {0};
	CHECK_ERR(rfs_store_get(f.s, "data/ab/p", 0, RFS_GET_TO_END, &b), ENOENT);
	rfs_buf_free(&b);
	CHECK_ERR(rfs_store_head(f.s, "data/ab/p", NULL), ENOENT);
	CHECK_ERR(rfs_store_delete(f.s, "data/ab/p"), ENOENT);
	struct listing l = {0};
	CHECK_OK(rfs_store_list(f.s, "", list_cb, &l));
	CHECK_EQ(l.n, 0);
	/* after a delete the key can be created again, also with put_if_absent */
	CHECK_OK(rfs_store_put_if_absent(f.s, "data/ab/p", "again", 5));
	get_equals(f.s, "data/ab/p", 0, RFS_GET_TO_END, "again");
	teardown(&f);
}

static void store_bad_keys(void)
{
	struct fixture f;
	REQUIRE(setup(&f) == 0);
	/* a file next to the store that an escaping key would reach */
	char outside[4200];
	snprintf(outside, sizeof(outside), "%s/../rfs-unit-victim-%d", f.dir, (int)getpid());
	static const char *const bad[] = {"..", "../x", "a/../b", "a/..", "/etc/passwd", "", "data/../../x"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *k = bad[i];
		struct rfs_buf b = {0};
		uint64_t size;
		int ok = CHECK_ERR(rfs_store_put(f.s, k, "x", 1), EINVAL);
		ok &= CHECK_ERR(rfs_store_put_if_absent(f.s, k, "x", 1), EINVAL);
		ok &= CHECK_ERR(rfs_store_get(f.s, k, 0, RFS_GET_TO_END, &b), EINVAL);
		ok &= CHECK_ERR(rfs_store_head(f.s, k, &size), EINVAL);
		ok &= CHECK_ERR(rfs_store_delete(f.s, k), EINVAL);
		if (!ok)
			fprintf(stderr, "  key \"%s\"\n", k);
		rfs_buf_free(&b);
	}
	char key[64];
	snprintf(key, sizeof(key), "../rfs-unit-victim-%d", (int)getpid());
	CHECK_ERR(rfs_store_put(f.s, key, "x", 1), EINVAL);
	struct stat st;
	CHECK(stat(outside, &st) < 0 && errno == ENOENT);
	struct listing l = {0};
	CHECK_OK(rfs_store_list(f.s, "", list_cb, &l));
	CHECK_EQ(l.n, 0);
	teardown(&f);
}

static void store_error_detail(void)
{
	struct fixture f;
	REQUIRE(setup(&f) == 0);
	char e[512];
	rfs_store_error(f.s, e, sizeof(e));
	CHECK_STR(e, "");
	CHECK_OK(rfs_store_put(f.s, "plain", "x", 1));
	/* "plain" is an object, so "plain/x" cannot get a directory */
	CHECK_ERR(rfs_store_put(f.s, "plain/x", "y", 1), ENOTDIR);
	rfs_store_error(f.s, e, sizeof(e));
	CHECK_CONTAINS(e, "plain");
	teardown(&f);
}

#define RACERS 8
#define ROUNDS 20

struct racer {
	struct rfs_store *s;
	pthread_barrier_t *start;
	int id;
	int rc[ROUNDS];
};

static void *race(void *arg)
{
	struct racer *r = arg;
	for (int round = 0; round < ROUNDS; round++) {
		char key[64], body[64];
		snprintf(key, sizeof(key), "log/%020d", round + 1);
		snprintf(body, sizeof(body), "racer %d round %d", r->id, round);
		pthread_barrier_wait(r->start);
		r->rc[round] = rfs_store_put_if_absent(r->s, key, body, strlen(body));
	}
	return NULL;
}

static void store_put_if_absent_race(void)
{
	struct fixture f;
	REQUIRE(setup(&f) == 0);
	pthread_barrier_t start;
	pthread_barrier_init(&start, NULL, RACERS);
	struct racer r[RACERS];
	pthread_t t[RACERS];
	for (int i = 0; i < RACERS; i++) {
		r[i] = (struct racer){.s = f.s, .start = &start, .id = i};
		CHECK(pthread_create(&t[i], NULL, race, &r[i]) == 0);
	}
	for (int i = 0; i < RACERS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start);
	for (int round = 0; round < ROUNDS; round++) {
		int winners = 0, winner = -1, losers = 0;
		for (int i = 0; i < RACERS; i++) {
			if (r[i].rc[round] == 0) {
				winners++;
				winner = i;
			} else if (r[i].rc[round] == -EEXIST) {
				losers++;
			} else {
				CHECK_ERR(r[i].rc[round], EEXIST);
			}
		}
		if (!CHECK_EQ(winners, 1) || !CHECK_EQ(losers, RACERS - 1)) {
			fprintf(stderr, "  round %d\n", round);
			continue;
		}
		char key[64], body[64];
		snprintf(key, sizeof(key), "log/%020d", round + 1);
		snprintf(body, sizeof(body), "racer %d round %d", winner, round);
		get_equals(f.s, key, 0, RFS_GET_TO_END, body); /* the winner's bytes, whole */
	}
	/* exactly one object per round, no temp files */
	struct listing l = {0};
	CHECK_OK(rfs_store_list(f.s, "", list_cb, &l));
	CHECK_EQ(l.n, ROUNDS);
	char path[4200];
	snprintf(path, sizeof(path), "%s/log", f.dir);
	DIR *d = opendir(path);
	int files = 0;
	if (CHECK(d != NULL)) {
		struct dirent *de;
		while ((de = readdir(d)))
			files += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
		closedir(d);
	}
	CHECK_EQ(files, ROUNDS);
	teardown(&f);
}

int main(int argc, char **argv)
{
	check_init(argc, argv);
	RUN(store_open_urls);
	RUN(store_put_get_ranges);
	RUN(store_head);
	RUN(store_list_sorted_prefix);
	RUN(store_put_if_absent);
	RUN(store_delete);
	RUN(store_bad_keys);
	RUN(store_error_detail);
	RUN(store_put_if_absent_race);
	return check_done();
}
