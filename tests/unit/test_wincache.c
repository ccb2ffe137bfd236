/* Unit tests for fs/wincache.c: in-memory pack ranges (find/begin/done/put, coverage,
 * LRU eviction under the byte bound, failed fetches, a reader waiting for a fetch). */
#include <pthread.h>
#include <unistd.h>

#include "check.h"
#include "fs/wincache.h"

/* Loads [start, end) of pack with bytes (offset & 0xff), as a fetch would. */
static struct rfs_win *load(struct rfs_wincache *c, const char *pack, uint64_t start, uint64_t end)
{
	struct rfs_win *w = rfs_wincache_begin(c, pack, start, end);
	if (!w)
		return NULL;
	struct rfs_buf b = {0};
	for (uint64_t o = start; o < end; o++) {
		uint8_t x = (uint8_t)o;
		rfs_buf_append(&b, &x, 1);
	}
	rfs_wincache_done(c, w, &b, 0);
	CHECK_EQ(b.len, 0); /* taken over */
	rfs_buf_free(&b);
	return w;
}

static void wincache_find_covers_only_inside(void)
{
	struct rfs_wincache *c;
	REQUIRE_OK(rfs_wincache_open(1 << 20, &c));
	CHECK(rfs_wincache_find(c, "p1", 10, 5) == NULL);
	struct rfs_win *w = load(c, "p1", 100, 200);
	REQUIRE(w != NULL);
	rfs_wincache_put(c, w);
	struct rfs_win *a = rfs_wincache_find(c, "p1", 150, 50);
	CHECK(a != NULL);
	if (a) {
		const uint8_t *d = rfs_wincache_data(a, 150, 50);
		CHECK(d != NULL && d[0] == 150 && d[49] == 199);
		CHECK(rfs_wincache_data(a, 150, 51) == NULL); /* past the fetched bytes */
		rfs_wincache_put(c, a);
	}
	CHECK(rfs_wincache_find(c, "p1", 150, 51) == NULL); /* past the end */
	CHECK(rfs_wincache_find(c, "p1", 99, 2) == NULL);   /* before the start */
	CHECK(rfs_wincache_find(c, "p2", 150, 1) == NULL);  /* another pack */
	rfs_wincache_close(c);
}

static void wincache_evicts_least_recently_used(void)
{
	struct rfs_wincache *c;
	REQUIRE_OK(rfs_wincache_open(250, &c)); /* room for two 100-byte ranges */
	rfs_wincache_put(c, load(c, "a", 0, 100));
	rfs_wincache_put(c, load(c, "b", 0, 100));
	struct rfs_win *w = rfs_wincache_find(c, "a", 0, 1); /* a is now the most recent */
	REQUIRE(w != NULL);
	rfs_wincache_put(c, w);
	rfs_wincache_put(c, load(c, "c", 0, 100));
	w = rfs_wincache_find(c, "b", 0, 1);
	CHECK(w == NULL);
	rfs_wincache_put(c, w);
	w = rfs_wincache_find(c, "a", 0, 1);
	CHECK(w != NULL);
	rfs_wincache_put(c, w);
	w = rfs_wincache_find(c, "c", 0, 1);
	CHECK(w != NULL);
	/* a held range is never evicted, even over the bound */
	rfs_wincache_put(c, load(c, "d", 0, 100));
	rfs_wincache_put(c, load(c, "e", 0, 100));
	CHECK(rfs_wincache_data(w, 0, 100) != NULL);
	rfs_wincache_put(c, w);
	rfs_wincache_close(c);
}

static void wincache_failed_fetch_is_dropped(void)
{
	struct rfs_wincache *c;
	REQUIRE_OK(rfs_wincache_open(1 << 20, &c));
	struct rfs_win *w = rfs_wincache_begin(c, "p", 0, 100);
	REQUIRE(w != NULL);
	struct rfs_buf b = {0};
	rfs_wincache_done(c, w, &b, -EIO);
	CHECK(rfs_wincache_data(w, 0, 1) == NULL);
	rfs_wincache_put(c, w);
	CHECK(rfs_wincache_find(c, "p", 0, 1) == NULL);
	w = load(c, "p", 0, 100); /* a later fetch of the same range works */
	CHECK(w != NULL);
	rfs_wincache_put(c, w);
	rfs_wincache_close(c);
}

struct waiter {
	struct rfs_wincache *c;
	struct rfs_win *got;
};

static void *wait_find(void *arg)
{
	struct waiter *wt = arg;
	wt->got = rfs_wincache_find(wt->c, "p", 10, 10);
	return NULL;
}

static void wincache_reader_waits_for_fetch(void)
{
	struct rfs_wincache *c;
	REQUIRE_OK(rfs_wincache_open(1 << 20, &c));
	struct rfs_win *w = rfs_wincache_begin(c, "p", 0, 100);
	REQUIRE(w != NULL);
	/* an overlapping fetch waits for this one, then tells its caller to look again */
	struct waiter wt = {c, NULL};
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, wait_find, &wt) == 0);
	usleep(50 * 1000);
	CHECK(wt.got == NULL); /* still waiting */
	struct rfs_buf b = {0};
	for (int i = 0; i < 100; i++) {
		uint8_t x = (uint8_t)i;
		rfs_buf_append(&b, &x, 1);
	}
	rfs_wincache_done(c, w, &b, 0);
	pthread_join(t, NULL);
	CHECK(wt.got == w);
	if (wt.got) {
		const uint8_t *d = rfs_wincache_data(wt.got, 10, 10);
		CHECK(d != NULL && d[0] == 10);
		rfs_wincache_put(c, wt.got);
	}
	rfs_wincache_put(c, w);
	rfs_wincache_close(c);
}

int main(int argc, char **argv)
{
	check_init(argc, argv);
	RUN(wincache_find_covers_only_inside);
	RUN(wincache_evicts_least_recently_used);
	RUN(wincache_failed_fetch_is_dropped);
	RUN(wincache_reader_waits_for_fetch);
	return check_done();
}
