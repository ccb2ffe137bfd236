#include "sync/commit.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <lz4.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs/log.h"

#define LOG_MAGIC "RFSLOG2"
#define MAX_RECORD (256u << 20) /* a record bigger than this is refused as corrupt */
#ifndef RFS_SYNC_COALESCE_MS
#define RFS_SYNC_COALESCE_MS 300
#endif
#ifndef RFS_LEASE_SECONDS
#define RFS_LEASE_SECONDS 60 /* a writer lease lasts this long unless renewed (every third of it) */
#endif
#ifndef RFS_SNAPSHOTS_KEPT
#define RFS_SNAPSHOTS_KEPT 3 /* checkpoints kept in snap/; older ones are deleted */
#endif
#ifndef RFS_GUARD_RETRY_MS
#define RFS_GUARD_RETRY_MS 10000 /* a failing publish guard is tried again after this long */
#endif
#ifndef RFS_HEARTBEAT_MS
#define RFS_HEARTBEAT_MS 30000 /* how often hosts/<id> is rewritten: a few PUTs per hour */
#endif

struct rfs_sync {
	struct rfs_store *store;
	struct rfs_meta *meta;
	char host_id[64];
	int interval_ms;

	pthread_mutex_t commit_lock; /* serialises commits and pulls; taken before the meta lock */
	pthread_mutex_t lock;        /* protects the fields below */
	pthread_cond_t cond;
	int running, stopping, kicked;
	pthread_t thread;
	int64_t commits, pulls_applied, last_commit_ms;
	int64_t last_pull_ms; /* atomic: CLOCK_BOOTTIME of the last finished pull */
	char last_error[256];
	int64_t conflicts;
	/* changesets applied from other hosts, waiting for the sync thread to report them to
	 * touch_cb (kernel invalidations must not run under our locks or in a request) */
	struct rfs_buf *touched;
	size_t ntouched, captouched;
	char hostname[128], mountpoint[1024]; /* set before start */
	int64_t last_heartbeat_ms;            /* sync thread only */
	int lost_slot;                        /* commit_lock: the last put lost its slot to another host */
	int lease_mode;                       /* the store cannot refuse overwrites: single writer (set at mount) */
	int have_lease;                       /* we are that writer */
	int64_t lease_renewed_ms;
	int64_t snap_every;         /* set before start */
	char snap_tmp[1024];        /* set before start */
	int64_t snap_checked;       /* sync thread: applied/snap_every at the last check */
	rfs_publish_guard_cb guard; /* commit_lock; NULL once it has passed */
	int64_t guard_failed_ms;    /* commit_lock: when it last failed (0: not failing) */
	void *guard_arg;
	pthread_mutex_t hook_lock; /* held while calling touch_cb and while changing it */
	rfs_touch_cb touch_cb;     /* protected by hook_lock */
	void *touch_arg;           /* protected by hook_lock */
};

static void set_error(struct rfs_sync *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct rfs_sync *s, const char *fmt, ...)
{
	va_list ap;
	pthread_mutex_lock(&s->lock);
	va_start(ap, fmt);
	vsnprintf(s->last_error, sizeof(s->last_error), fmt, ap);
	va_end(ap);
	RFS_LOG(LOG_WARNING, "sync: %s", s->last_error);
	pthread_mutex_unlock(&s->lock);
}

static void seq_key(int64_t seq, char *buf, size_t len)
{
	snprintf(buf, len, "log/%020" PRId64, seq);
}

int rfs_sync_open(struct rfs_store *store, struct rfs_meta *meta, const char *host_id, int interval_ms,
		  struct rfs_sync **out)
{
	struct rfs_sync *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->store = store;
	s->meta = meta;
	snprintf(s->host_id, sizeof(s->host_id), "%s", host_id);
	s->interval_ms = interval_ms > 0 ? interval_ms : 1000;
	pthread_mutex_init(&s->commit_lock, NULL);
	pthread_mutex_init(&s->hook_lock, NULL);
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cond, &ca);
	pthread_condattr_destroy(&ca);
	*out = s;
	return 0;
}

void rfs_sync_close(struct rfs_sync *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ntouched; i++)
		rfs_buf_free(&s->touched[i]);
	free(s->touched);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	pthread_mutex_destroy(&s->commit_lock);
	pthread_mutex_destroy(&s->hook_lock);
	free(s);
}

#define record rfs_log_record

int rfs_log_record_parse(const struct rfs_buf *b, struct rfs_log_record *r)
{
	memset(r, 0, sizeof(*r));
	const char *nl = memchr(b->data, '\n', b->len < 512 ? b->len : 512);
	if (!nl)
		return -EINVAL;
	char head[512];
	size_t hl = (size_t)(nl - (const char *)b->data);
	memcpy(head, b->data, hl);
	head[hl] = 0;
	char magic[16], sum[65];
	unsigned long long raw_len, stored_len;
	long long seq, t;
	if (sscanf(head, "%15s %lld %64s %32s %63s %lld %llu %llu %64s", magic, &seq, r->prev, r->commit_id, r->host,
		   &t, &raw_len, &stored_len, sum) != 9 ||
	    strcmp(magic, LOG_MAGIC))
		return -EINVAL;
	size_t body = b->len - hl - 1;
	if (stored_len != body || raw_len > MAX_RECORD)
		return -EINVAL;
	r->seq = seq;
	r->time_ns = t;
	r->cs = malloc(raw_len ? raw_len : 1);
	if (!r->cs)
		return -ENOMEM;
	const char *payload = (const char *)nl + 1;
	if (raw_len == stored_len) {
		memcpy(r->cs, payload, raw_len);
	} else {
		int n = LZ4_decompress_safe(payload, (char *)r->cs, (int)stored_len, (int)raw_len);
		if (n < 0 || (unsigned long long)n != raw_len) {
			free(r->cs);
			r->cs = NULL;
			return -EINVAL;
		}
	}
	r->cs_len = raw_len;
	/* C4: the changeset must be exactly what its author hashed before SQLite parses it (a
	 * damaged changeset can make SQLite's reader misbehave; a damaged value would apply) */
	uint8_t h[RFS_HASH_LEN];
	char got[2 * RFS_HASH_LEN + 1];
	rfs_sha256(r->cs, r->cs_len, h);
	rfs_hex(h, RFS_HASH_LEN, got);
	if (strcmp(got, sum)) {
		free(r->cs);
		r->cs = NULL;
		return -EINVAL;
	}
	rfs_sha256(b->data, b->len, h);
	rfs_hex(h, RFS_HASH_LEN, r->hash);
	return 0;
}

static int build_record(const struct rfs_buf *cs, int64_t seq, const char *prev, const char *commit_id,
			const char *host, struct rfs_buf *out)
{
	int bound = LZ4_compressBound((int)cs->len);
	char *comp = malloc((size_t)bound);
	if (!comp)
		return -ENOMEM;
	int clen = LZ4_compress_default((const char *)cs->data, comp, (int)cs->len, bound);
	const char *payload = comp;
	size_t plen = (size_t)clen;
	if (clen <= 0 || (size_t)clen >= cs->len) {
		payload = (const char *)cs->data;
		plen = cs->len;
	}
	char head[512];
	uint8_t sum[RFS_HASH_LEN];
	char sumhex[2 * RFS_HASH_LEN + 1];
	rfs_sha256(cs->data, cs->len, sum);
	rfs_hex(sum, RFS_HASH_LEN, sumhex);
	int hl = snprintf(head, sizeof(head), "%s %" PRId64 " %s %s %s %" PRId64 " %zu %zu %s\n", LOG_MAGIC, seq, prev,
			  commit_id, host, rfs_now_ns(), cs->len, plen, sumhex);
	int rc = rfs_buf_append(out, head, (size_t)hl);
	if (rc == 0)
		rc = rfs_buf_append(out, payload, plen);
	free(comp);
	return rc;
}

static const char zero_hash[] = "0000000000000000000000000000000000000000000000000000000000000000";

static void local_position(struct rfs_sync *s, int64_t *applied, char *head_hash)
{
	if (rfs_meta_local_get_int(s->meta, "applied_seq", applied) < 0)
		*applied = 0;
	if (rfs_meta_local_get_text(s->meta, "head_hash", head_hash, 65) < 0)
		snprintf(head_hash, 65, "%s", zero_hash);
}

/* Applies one fetched record. Caller holds commit_lock. */
static int apply_record(struct rfs_sync *s, const struct record *r)
{
	int rc = rfs_meta_begin_unrecorded(s->meta);
	if (rc < 0)
		return rc;
	char inflight[128] = "";
	rfs_meta_local_get_text(s->meta, "inflight", inflight, sizeof(inflight));
	char our_id[33] = "";
	long long upto = 0;
	if (inflight[0])
		sscanf(inflight, "%32s %lld", our_id, &upto);
	if (our_id[0] && !strcmp(our_id, r->commit_id)) {
		/* C3: our own record whose reply we never saw: it is committed. Our changes are
		 * already in the local DB; drop them from pending exactly once. */
		rc = rfs_meta_pending_delete_upto(s->meta, upto);
		if (rc == 0)
			rc = rfs_meta_local_set_text(s->meta, "inflight", "");
	} else {
		rc = rfs_meta_apply_remote(s->meta, r->cs, r->cs_len, s->host_id);
		if (rc > 0) {
			pthread_mutex_lock(&s->lock);
			s->conflicts += rc;
			pthread_mutex_unlock(&s->lock);
		}
		if (rc >= 0) {
			rc = 0;
			/* before the mount is served (catching up at mount) the kernel has cached
			 * nothing: no invalidations to send */
			if (s->running) {
				pthread_mutex_lock(&s->lock);
				if (s->ntouched == s->captouched) {
					size_t nc = s->captouched ? s->captouched * 2 : 8;
					struct rfs_buf *nb = realloc(s->touched, nc * sizeof(*nb));
					if (nb) {
						s->touched = nb;
						s->captouched = nc;
					}
				}
				if (s->ntouched < s->captouched) {
					struct rfs_buf *b = &s->touched[s->ntouched];
					memset(b, 0, sizeof(*b));
					if (rfs_buf_append(b, r->cs, r->cs_len) == 0)
						s->ntouched++;
				}
				pthread_mutex_unlock(&s->lock);
			}
		}
	}
	if (rc == 0)
		rc = rfs_meta_local_set_int(s->meta, "applied_seq", r->seq);
	if (rc == 0)
		rc = rfs_meta_local_set_text(s->meta, "head_hash", r->hash);
	if (rc < 0) {
		rfs_meta_rollback(s->meta);
		return rc;
	}
	return rfs_meta_commit(s->meta);
}

/* A host catching up (a fresh cache dir at mount, a host back from suspend) needs every
 * record after its position, and each GET is a round trip (10-50 ms on a cloud store): one
 * at a time, 2,000 records would take a minute. So records are fetched in windows of
 * parallel GETs that double while every slot of the window exists (1, 1, 2, 4, ... up to
 * PULL_WINDOW_MAX) and are applied in order. A pull that finds nothing or one record costs
 * what it did before (one GET that misses, or one that hits and one that misses); a
 * catch-up wastes at most one window of misses at its end. */
#define PULL_WINDOW_MAX 32

struct log_fetch {
	struct rfs_store *store;
	char key[64];
	struct rfs_buf b;
	int rc;
};

static void *log_fetch_run(void *arg)
{
	struct log_fetch *f = arg;
	f->rc = rfs_store_get(f->store, f->key, 0, RFS_GET_TO_END, &f->b);
	return NULL;
}

/* Fetches n consecutive slots from seq, in parallel when n > 1. */
static void fetch_window(struct rfs_sync *s, int64_t seq, struct log_fetch *f, int n)
{
	pthread_t th[PULL_WINDOW_MAX];
	int started[PULL_WINDOW_MAX] = {0};
	for (int i = 0; i < n; i++) {
		f[i].store = s->store;
		seq_key(seq + i, f[i].key, sizeof(f[i].key));
		memset(&f[i].b, 0, sizeof(f[i].b));
		f[i].rc = -EIO;
		if (i == 0 || pthread_create(&th[i], NULL, log_fetch_run, &f[i]) != 0)
			continue;
		started[i] = 1;
	}
	for (int i = 0; i < n; i++)
		if (!started[i])
			log_fetch_run(&f[i]); /* slot 0 in this thread; others if no thread could start */
	for (int i = 0; i < n; i++)
		if (started[i])
			pthread_join(th[i], NULL);
}

/* Caller holds commit_lock. */
static int pull_locked(struct rfs_sync *s)
{
	int applied_n = 0, window = 1, full_windows = 0, rc = 0;
	struct log_fetch f[PULL_WINDOW_MAX];
	for (;;) {
		int64_t applied;
		char head_hash[65];
		rfs_meta_lock(s->meta);
		local_position(s, &applied, head_hash);
		rfs_meta_unlock(s->meta);
		fetch_window(s, applied + 1, f, window);
		int stop = 0;
		for (int i = 0; i < window && !stop; i++) {
			const char *key = f[i].key;
			struct record r;
			stop = 1;
			if (f[i].rc == -ENOENT)
				break; /* the end of the log (a later slot cannot be filled before it) */
			if (f[i].rc < 0) {
				set_error(s, "cannot read log record %s: %s", key, strerror(-f[i].rc));
				rc = f[i].rc;
				break;
			}
			if (rfs_log_record_parse(&f[i].b, &r) < 0) {
				set_error(s, "log record %s is damaged; not applying it or anything after it", key);
				rc = -EIO;
				break;
			}
			if (r.seq != applied + 1 + i || strcmp(r.prev, head_hash)) {
				set_error(s,
					  "log record %s does not continue the hash chain (expected prev %.12s, got "
					  "%.12s); stopping sync: this replica must be rebuilt from the store",
					  key, head_hash, r.prev);
				free(r.cs);
				rc = -EIO;
				break;
			}
			rc = apply_record(s, &r);
			free(r.cs);
			if (rc < 0) {
				set_error(s, "cannot apply log record %s: %s", key, strerror(-rc));
				break;
			}
			snprintf(head_hash, sizeof(head_hash), "%s", r.hash);
			applied_n++;
			stop = 0;
		}
		for (int i = 0; i < window; i++)
			rfs_buf_free(&f[i].b);
		if (rc < 0)
			return rc;
		if (stop) /* the log ended in this window, or something failed */
			break;
		if (++full_windows >= 2 && window < PULL_WINDOW_MAX)
			window *= 2;
	}
	__atomic_store_n(&s->last_pull_ms, rfs_monotonic_ms(), __ATOMIC_RELEASE);
	if (applied_n) {
		pthread_mutex_lock(&s->lock);
		s->pulls_applied += applied_n;
		pthread_mutex_unlock(&s->lock);
		if (s->running)
			rfs_sync_kick(s); /* the sync thread reports what changed */
		RFS_LOG(LOG_DEBUG, "sync: applied %d log records", applied_n);
	}
	return applied_n;
}

int rfs_sync_pull(struct rfs_sync *s)
{
	pthread_mutex_lock(&s->commit_lock);
	int rc = pull_locked(s);
	pthread_mutex_unlock(&s->commit_lock);
	return rc;
}

void rfs_sync_set_publish_guard(struct rfs_sync *s, rfs_publish_guard_cb cb, void *arg)
{
	pthread_mutex_lock(&s->commit_lock);
	s->guard = cb;
	s->guard_arg = arg;
	s->guard_failed_ms = 0;
	pthread_mutex_unlock(&s->commit_lock);
}

/* Runs the publish guard just before a first write to the log store. A failure shows in
 * `roamfs status` and is retried at most every RFS_GUARD_RETRY_MS (each try is a write to
 * the store). Caller holds commit_lock. */
static int pass_guard(struct rfs_sync *s)
{
	if (!s->guard)
		return 0;
	int64_t now = rfs_monotonic_ms();
	if (s->guard_failed_ms && now - s->guard_failed_ms < RFS_GUARD_RETRY_MS)
		return -EAGAIN;
	int rc = s->guard(s->guard_arg);
	if (rc == 0) {
		s->guard = NULL;
		s->guard_failed_ms = 0;
	} else {
		s->guard_failed_ms = now;
		set_error(s,
			  "cannot upgrade the workspace's format record (%s); nothing is published until "
			  "it can be: see roamfs.log",
			  strerror(-rc));
	}
	return rc;
}

/* Publishes everything pending when called, as one record (group commit: changes made
 * while the record is being written wait for the next round, so a metadata storm costs one
 * record per round, not one per change). A lost slot is retried after the rebase. Caller
 * holds commit_lock. Returns 0 when everything that was pending at the call is published. */
static int commit_locked(struct rfs_sync *s)
{
	int rc;
	int64_t lo = 0, until = 0;
	rfs_meta_lock(s->meta);
	rc = rfs_meta_pending_range(s->meta, &lo, &until);
	rfs_meta_unlock(s->meta);
	if (rc < 0 || until == 0)
		return rc;
	for (int attempt = 0; attempt < 100; attempt++) {
		if (attempt) {
			/* done once nothing at or below `until` is pending (rebased rows get new ids,
			 * but a rebase only happens after a lost slot, which always retries) */
			rfs_meta_lock(s->meta);
			int64_t hi;
			rc = rfs_meta_pending_range(s->meta, &lo, &hi);
			rfs_meta_unlock(s->meta);
			if (rc < 0)
				return rc;
			if (lo == 0 || (lo > until && !s->lost_slot))
				return 0;
		}
		s->lost_slot = 0;
		struct rfs_buf cs = {0}, rec = {0};
		int64_t upto = 0, count = 0, applied;
		char head_hash[65];
		uint8_t idb[16];
		char commit_id[33];
		rfs_random(idb, sizeof(idb));
		rfs_hex(idb, sizeof(idb), commit_id);

		rfs_meta_lock(s->meta);
		rc = rfs_meta_pending_collect(s->meta, &cs, &upto, &count);
		local_position(s, &applied, head_hash);
		if (rc == 0 && count) {
			char inflight[128];
			snprintf(inflight, sizeof(inflight), "%s %lld", commit_id, (long long)upto);
			rc = rfs_meta_local_set_text(s->meta, "inflight", inflight); /* C3 */
		}
		rfs_meta_unlock(s->meta);
		if (rc < 0 || !count) {
			rfs_buf_free(&cs);
			return rc;
		}
		if (cs.len == 0) {
			/* changes that cancelled out: nothing to publish */
			rfs_meta_lock(s->meta);
			rfs_meta_pending_delete_upto(s->meta, upto);
			rfs_meta_local_set_text(s->meta, "inflight", "");
			rfs_meta_unlock(s->meta);
			rfs_buf_free(&cs);
			continue;
		}
		rc = build_record(&cs, applied + 1, head_hash, commit_id, s->host_id, &rec);
		rfs_buf_free(&cs);
		if (rc < 0) {
			rfs_buf_free(&rec);
			return rc;
		}
		char key[64];
		seq_key(applied + 1, key, sizeof(key));
		if (s->lease_mode && !s->have_lease) {
			rfs_buf_free(&rec);
			set_error(s, "cannot publish %s: this host does not hold the writer lease", key);
			return -EROFS;
		}
		if ((rc = pass_guard(s)) < 0) { /* only now: this host really writes a record */
			rfs_buf_free(&rec);
			return rc;
		}
		if (s->lease_mode) {
			/* single writer: no conditional create to rely on; the slot must be empty */
			rc = rfs_store_head(s->store, key, NULL);
			rc = rc == 0 ? -EEXIST : rc == -ENOENT ? rfs_store_put(s->store, key, rec.data, rec.len) : rc;
		} else {
			rc = rfs_store_put_if_absent(s->store, key, rec.data, rec.len);
		}
		rfs_buf_free(&rec);
		if (rc == 0)
			rfs_crash_point("after-log-put"); /* committed, local bookkeeping not yet done */
		if (rc == -EEXIST)
			s->lost_slot = 1;
		if (rc == 0 || rc == -EEXIST || rc == -EIO || rc == -ETIMEDOUT) {
			/* Whatever the reply said, the slot now decides (C2, C3): pull it. If it holds
			 * our commit id, apply_record recognises it and clears pending. */
			int p = pull_locked(s);
			if (p < 0)
				return p;
			if (rc == 0) {
				pthread_mutex_lock(&s->lock);
				s->commits++;
				s->last_commit_ms = rfs_monotonic_ms();
				s->last_error[0] = 0;
				pthread_mutex_unlock(&s->lock);
			}
			if (rc == -EIO || rc == -ETIMEDOUT) {
				/* unknown outcome: if the slot did not hold our record, the put failed */
				int64_t l2 = 0, h2 = 0;
				rfs_meta_lock(s->meta);
				rfs_meta_pending_range(s->meta, &l2, &h2);
				rfs_meta_unlock(s->meta);
				if (l2 && l2 <= until && !s->lost_slot) {
					char cause[256];
					rfs_store_error(s->store, cause, sizeof(cause));
					set_error(s, "cannot publish %s: %s; will retry", key,
						  cause[0] ? cause : strerror(-rc));
					return rc;
				}
			}
			continue; /* done, or we lost the slot to another host: check and go again */
		}
		char cause[256];
		rfs_store_error(s->store, cause, sizeof(cause));
		set_error(s, "cannot publish %s: %s; will retry", key, cause[0] ? cause : strerror(-rc));
		return rc;
	}
	return -EAGAIN;
}

int rfs_sync_commit_now(struct rfs_sync *s)
{
	pthread_mutex_lock(&s->commit_lock);
	int rc = commit_locked(s);
	pthread_mutex_unlock(&s->commit_lock);
	return rc;
}

static void report_touched(struct rfs_sync *s)
{
	for (;;) {
		pthread_mutex_lock(&s->lock);
		if (!s->ntouched) {
			pthread_mutex_unlock(&s->lock);
			return;
		}
		struct rfs_buf b = s->touched[--s->ntouched];
		pthread_mutex_unlock(&s->lock);
		pthread_mutex_lock(&s->hook_lock);
		if (s->touch_cb)
			rfs_meta_changeset_touched(b.data, b.len, s->touch_cb, s->touch_arg);
		pthread_mutex_unlock(&s->hook_lock);
		rfs_buf_free(&b);
	}
}

void rfs_sync_set_touch_hook(struct rfs_sync *s, rfs_touch_cb cb, void *arg)
{
	pthread_mutex_lock(&s->hook_lock);
	s->touch_cb = cb;
	s->touch_arg = arg;
	pthread_mutex_unlock(&s->hook_lock);
}

int rfs_sync_pull_if_older(struct rfs_sync *s, int max_age_ms)
{
	int64_t last = __atomic_load_n(&s->last_pull_ms, __ATOMIC_ACQUIRE);
	if (rfs_monotonic_ms() - last < max_age_ms)
		return 0;
	return rfs_sync_pull(s);
}

void rfs_sync_set_identity(struct rfs_sync *s, const char *hostname, const char *mountpoint)
{
	snprintf(s->hostname, sizeof(s->hostname), "%s", hostname);
	snprintf(s->mountpoint, sizeof(s->mountpoint), "%s", mountpoint);
}

static void heartbeat(struct rfs_sync *s, int stopping)
{
	int64_t applied = 0;
	char head_hash[65];
	rfs_meta_lock(s->meta);
	local_position(s, &applied, head_hash);
	rfs_meta_unlock(s->meta);
	char key[128], body[1536];
	snprintf(key, sizeof(key), "hosts/%s", s->host_id);
	int n = snprintf(body, sizeof(body), "host=%s\nmountpoint=%s\nseq=%lld\ntime=%lld\nstate=%s\n", s->hostname,
			 s->mountpoint, (long long)applied, (long long)(rfs_now_ns() / 1000000000),
			 stopping ? "stopped" : "mounted");
	if (rfs_store_put(s->store, key, body, (size_t)n) < 0)
		RFS_LOG(LOG_DEBUG, "heartbeat %s failed", key);
	s->last_heartbeat_ms = rfs_monotonic_ms();
}

int rfs_sync_store_head(struct rfs_sync *s, int64_t *head)
{
	int64_t lo, hi, step = 1;
	char head_hash[65], key[64];
	rfs_meta_lock(s->meta);
	local_position(s, &lo, head_hash);
	rfs_meta_unlock(s->meta);
	/* lo exists (or is 0); find hi that does not exist, then bisect */
	for (;;) {
		hi = lo + step;
		seq_key(hi, key, sizeof(key));
		int rc = rfs_store_head(s->store, key, NULL);
		if (rc == -ENOENT)
			break;
		if (rc < 0)
			return rc;
		lo = hi;
		step *= 2;
	}
	while (hi - lo > 1) {
		int64_t mid = lo + (hi - lo) / 2;
		seq_key(mid, key, sizeof(key));
		int rc = rfs_store_head(s->store, key, NULL);
		if (rc == 0)
			lo = mid;
		else if (rc == -ENOENT)
			hi = mid;
		else
			return rc;
	}
	*head = lo;
	return 0;
}

/* RFSSNAP2: written by format-2 roamfs. A format-1 checkpoint in a format-2 workspace is not
 * used: a format-1 daemon still running after the upgrade drops the 7-column blocks changes
 * it applies, so its checkpoints may lack rows (the log is replayed instead, once). */
#define SNAP_MAGIC "RFSSNAP2"
#define SNAP_MAGIC_V1 "RFSSNAP1"

void rfs_sync_set_checkpoints(struct rfs_sync *s, int64_t every, const char *tmp_dir)
{
	s->snap_every = every;
	snprintf(s->snap_tmp, sizeof(s->snap_tmp), "%s", tmp_dir);
}

struct snap_scan {
	int64_t newest;
};

static int snap_scan_cb(void *arg, const char *key, uint64_t size)
{
	(void)size;
	struct snap_scan *sc = arg;
	long long seq;
	if (sscanf(key, "snap/%lld.db.lz4", &seq) == 1 && seq > sc->newest)
		sc->newest = seq;
	return 0;
}

struct snap_list {
	int64_t seqs[4096];
	size_t n;
};

static int snap_list_cb(void *arg, const char *key, uint64_t size)
{
	(void)size;
	struct snap_list *l = arg;
	long long seq;
	if (sscanf(key, "snap/%lld.db.lz4", &seq) == 1 && l->n < 4096)
		l->seqs[l->n++] = seq;
	return 0;
}

/* Deletes all but the newest RFS_SNAPSHOTS_KEPT checkpoints. Log records are never deleted:
 * a pruned slot could be reopened by a host that was away longer than any retention (it
 * would see the slot empty and commit into it, forking the log); records are small, and a
 * new host reads only the newest checkpoint and the records after it. */
static void prune_snapshots(struct rfs_store *store)
{
	struct snap_list *l = calloc(1, sizeof(*l));
	if (!l)
		return;
	if (rfs_store_list(store, "snap/", snap_list_cb, l) == 0 && l->n > RFS_SNAPSHOTS_KEPT) {
		/* keys list in ascending order (20-digit seqs) */
		for (size_t i = 0; i + RFS_SNAPSHOTS_KEPT < l->n; i++) {
			char key[64];
			snprintf(key, sizeof(key), "snap/%020lld.db.lz4", (long long)l->seqs[i]);
			if (rfs_store_delete(store, key) == 0)
				RFS_LOG(LOG_INFO, "pruned old checkpoint %s", key);
		}
	}
	free(l);
}

static int64_t newest_snapshot(struct rfs_store *store)
{
	struct snap_scan sc = {0};
	int rc = rfs_store_list(store, "snap/", snap_scan_cb, &sc);
	return rc < 0 ? rc : sc.newest;
}

int64_t rfs_sync_checkpoint(struct rfs_sync *s, int force)
{
	if (!s->snap_every && !force)
		return 0;
	int64_t applied = 0;
	rfs_meta_lock(s->meta);
	rfs_meta_local_get_int(s->meta, "applied_seq", &applied);
	rfs_meta_unlock(s->meta);
	if (!force) {
		if (applied / s->snap_every <= s->snap_checked)
			return 0;
		int64_t newest = newest_snapshot(s->store);
		if (newest < 0)
			return newest;
		if (applied - newest < s->snap_every) {
			s->snap_checked = applied / s->snap_every;
			return 0;
		}
	}
	pthread_mutex_lock(&s->commit_lock);
	int rc = pass_guard(s); /* a checkpoint carries this version's schema */
	pthread_mutex_unlock(&s->commit_lock);
	if (rc < 0)
		return rc == -EAGAIN ? 0 : rc; /* waiting to retry the guard: not due yet */
	char path[1100];
	snprintf(path, sizeof(path), "%s/checkpoint.db", s->snap_tmp);
	int64_t seq = 0;
	rc = rfs_meta_export(s->meta, path, &seq);
	if (rc < 0) {
		unlink(path);
		return rc == -EAGAIN ? 0 : rc; /* local changes pending: try at a later record */
	}
	char *db = NULL;
	size_t len = 0;
	rc = rfs_read_file(path, &db, &len);
	unlink(path);
	if (rc < 0)
		return rc;
	int bound = LZ4_compressBound((int)len);
	struct rfs_buf obj = {0};
	char head[128];
	int hl = snprintf(head, sizeof(head), "%s %lld %zu\n", SNAP_MAGIC, (long long)seq, len);
	rc = rfs_buf_reserve(&obj, (size_t)hl + (size_t)bound);
	if (rc == 0) {
		rfs_buf_append(&obj, head, (size_t)hl);
		int c = LZ4_compress_default(db, (char *)obj.data + obj.len, (int)len, bound);
		if (c <= 0)
			rc = -EIO;
		else
			obj.len += (size_t)c;
	}
	free(db);
	if (rc == 0) {
		char key[64];
		snprintf(key, sizeof(key), "snap/%020lld.db.lz4", (long long)seq);
		rc = rfs_store_put_if_absent(s->store, key, obj.data, obj.len);
		if (rc == -EEXIST)
			rc = 0; /* another host wrote the same checkpoint */
		if (rc == 0)
			RFS_LOG(LOG_INFO, "wrote checkpoint %s (%zu bytes of metadata)", key, len);
		if (rc == 0)
			prune_snapshots(s->store);
	}
	rfs_buf_free(&obj);
	if (rc < 0)
		return rc;
	if (s->snap_every)
		s->snap_checked = seq / s->snap_every;
	return seq;
}

int64_t rfs_snapshot_restore(struct rfs_store *store, const char *db_path, int format_version)
{
	int64_t newest = newest_snapshot(store);
	if (newest <= 0)
		return newest;
	char key[64];
	snprintf(key, sizeof(key), "snap/%020lld.db.lz4", (long long)newest);
	struct rfs_buf b = {0};
	int rc = rfs_store_get(store, key, 0, RFS_GET_TO_END, &b);
	if (rc < 0)
		return rc;
	const char *nl = memchr(b.data, '\n', b.len < 128 ? b.len : 128);
	long long seq = 0;
	unsigned long long raw = 0;
	char magic[16] = "";
	if (!nl || sscanf((const char *)b.data, "%15s %lld %llu", magic, &seq, &raw) != 3 ||
	    (strcmp(magic, SNAP_MAGIC) && strcmp(magic, SNAP_MAGIC_V1)) || seq != newest || raw > (4ULL << 30)) {
		RFS_LOG(LOG_ERR, "checkpoint %s is damaged; replaying the whole log instead", key);
		rfs_buf_free(&b);
		return 0;
	}
	if (!strcmp(magic, SNAP_MAGIC_V1) && format_version >= 2) {
		RFS_LOG(LOG_NOTICE,
			"checkpoint %s was written by a format-1 roamfs after the workspace became format 2; "
			"replaying the whole log instead",
			key);
		rfs_buf_free(&b);
		return 0;
	}
	char *db = malloc(raw ? raw : 1);
	if (!db) {
		rfs_buf_free(&b);
		return -ENOMEM;
	}
	size_t off = (size_t)(nl - (const char *)b.data) + 1;
	int n = LZ4_decompress_safe((const char *)b.data + off, db, (int)(b.len - off), (int)raw);
	rfs_buf_free(&b);
	if (n < 0 || (unsigned long long)n != raw) {
		free(db);
		RFS_LOG(LOG_ERR, "checkpoint %s does not decompress; replaying the whole log instead", key);
		return 0;
	}
	rc = rfs_write_file_atomic(db_path, db, raw, 0600);
	free(db);
	if (rc < 0)
		return rc;
	RFS_LOG(LOG_INFO, "bootstrapped metadata from checkpoint %s; replaying the log after it", key);
	return seq;
}

int rfs_sync_probe(struct rfs_sync *s)
{
	char key[128];
	uint8_t rnd[8];
	char hex[17];
	rfs_random(rnd, sizeof(rnd));
	rfs_hex(rnd, sizeof(rnd), hex);
	snprintf(key, sizeof(key), "hosts/.probe-%s-%s", s->host_id, hex);
	int r1 = rfs_store_put_if_absent(s->store, key, "1", 1);
	int r2 = r1 == 0 ? rfs_store_put_if_absent(s->store, key, "2", 1) : r1;
	if (r1 == 0)
		rfs_store_delete(s->store, key);
	if (r1 == -ENOTSUP || r2 == 0 || r2 == -ENOTSUP) {
		s->lease_mode = 1;
		RFS_LOG(LOG_WARNING,
			"store %s does not refuse a second create of the same key (no conditional "
			"PUT): only one host at a time can write this workspace (single-writer lease); others "
			"mount read-only and follow",
			s->store->url);
		return 1;
	}
	if (r1 < 0)
		return r1;
	return r2 == -EEXIST ? 0 : r2;
}

static int lease_read(struct rfs_sync *s, char *holder, size_t len, int64_t *expires)
{
	struct rfs_buf b = {0};
	int rc = rfs_store_get(s->store, "lease", 0, 4096, &b);
	if (rc < 0)
		return rc;
	char body[4097];
	memcpy(body, b.data, b.len);
	body[b.len] = 0;
	rfs_buf_free(&b);
	const char *h = strstr(body, "host="), *e = strstr(body, "expires=");
	if (!h || !e)
		return -ENOENT; /* a damaged lease counts as none */
	snprintf(holder, len, "%.*s", (int)strcspn(h + 5, "\n"), h + 5);
	*expires = atoll(e + 8);
	return 0;
}

static int lease_write(struct rfs_sync *s)
{
	char body[256];
	int n = snprintf(body, sizeof(body), "host=%s\nhostname=%s\nexpires=%lld\n", s->host_id, s->hostname,
			 (long long)(rfs_now_ns() / 1000000000 + RFS_LEASE_SECONDS));
	int rc = rfs_store_put(s->store, "lease", body, (size_t)n);
	if (rc == 0)
		s->lease_renewed_ms = rfs_monotonic_ms();
	return rc;
}

int rfs_sync_acquire_lease(struct rfs_sync *s, char *holder, size_t len)
{
	if (!s->lease_mode)
		return 0;
	int64_t expires = 0;
	int rc = lease_read(s, holder, len, &expires);
	if (rc == 0 && strcmp(holder, s->host_id) && expires > rfs_now_ns() / 1000000000)
		return 1;
	if (rc < 0 && rc != -ENOENT)
		return rc;
	rc = lease_write(s);
	if (rc < 0)
		return rc;
	/* No compare-and-swap on such a store: write, wait, read back; the last writer wins and
	 * everyone else sees that it is not them. */
	struct timespec ts = {1, 0};
	nanosleep(&ts, NULL);
	rc = lease_read(s, holder, len, &expires);
	if (rc < 0)
		return rc;
	if (strcmp(holder, s->host_id))
		return 1;
	s->have_lease = 1;
	RFS_LOG(LOG_NOTICE, "holding the single-writer lease of %s", s->store->url);
	return 0;
}

/* Whether this host has changes waiting to be published. */
static int has_pending(struct rfs_sync *s)
{
	int64_t lo = 0, until = 0;
	rfs_meta_lock(s->meta);
	int rc = rfs_meta_pending_range(s->meta, &lo, &until);
	rfs_meta_unlock(s->meta);
	return rc < 0 || until > 0;
}

static void *sync_thread(void *arg)
{
	struct rfs_sync *s = arg;
	int64_t last_round = 0;
	/* The thread wakes every interval: local changes are published within one, and the
	 * heartbeat and lease keep their pace. Only the pull is halved while the workspace is
	 * idle (the last round pulled nothing, had nothing to publish and was not kicked): an
	 * idle host costs one GET per two intervals. open() still pulls first when the last
	 * pull is older than 200 ms (rfs_open in fs/data.c), so a file opened here is as fresh as
	 * before; attributes and listings of names another host changed may lag by up to two
	 * intervals. Any activity restores a pull per interval. */
	int idle = 0, skipped = 0;
	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		if (!s->kicked) {
			struct timespec ts;
			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += s->interval_ms / 1000;
			ts.tv_nsec += (long)(s->interval_ms % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&s->cond, &s->lock, &ts);
		}
		if (s->stopping)
			break;
		pthread_mutex_unlock(&s->lock);
		/* at most one background round per RFS_SYNC_COALESCE_MS: a storm of small changes
		 * becomes a few records (fsync and `roamfs sync` commit at once, not through here) */
		int64_t wait = last_round + RFS_SYNC_COALESCE_MS - rfs_monotonic_ms();
		if (wait > 0) {
			struct timespec ts = {0, (long)wait * 1000000};
			nanosleep(&ts, NULL);
		}
		pthread_mutex_lock(&s->lock);
		int busy = s->kicked;
		s->kicked = 0;
		pthread_mutex_unlock(&s->lock);
		last_round = rfs_monotonic_ms();
		pthread_mutex_lock(&s->commit_lock);
		int pending = has_pending(s);
		busy |= pending;
		if (busy || !idle || skipped) {
			busy |= pull_locked(s) != 0; /* records applied, or an error to retry soon */
			skipped = 0;
		} else {
			skipped = 1; /* idle: every other round pulls */
		}
		if (pending) /* a change made since is published next round */
			commit_locked(s);
		pthread_mutex_unlock(&s->commit_lock);
		idle = !busy;
		report_touched(s);
		if (rfs_monotonic_ms() - s->last_heartbeat_ms >= RFS_HEARTBEAT_MS)
			heartbeat(s, 0);
		if (s->have_lease && rfs_monotonic_ms() - s->lease_renewed_ms >= RFS_LEASE_SECONDS * 1000 / 3 &&
		    lease_write(s) < 0)
			set_error(s, "cannot renew the writer lease of %s", s->store->url);
		if (s->snap_every) {
			int64_t cp = rfs_sync_checkpoint(s, 0);
			if (cp < 0)
				RFS_LOG(LOG_WARNING, "cannot write a checkpoint: %s", strerror((int)-cp));
		}
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

int rfs_sync_start(struct rfs_sync *s)
{
	heartbeat(s, 0);
	int rc = pthread_create(&s->thread, NULL, sync_thread, s);
	if (rc)
		return -rc;
	s->running = 1;
	return 0;
}

void rfs_sync_kick(struct rfs_sync *s)
{
	pthread_mutex_lock(&s->lock);
	s->kicked = 1;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

int rfs_sync_stop(struct rfs_sync *s, int timeout_ms)
{
	if (s->running) {
		pthread_mutex_lock(&s->lock);
		s->stopping = 1;
		pthread_cond_signal(&s->cond);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->thread, NULL);
		s->running = 0;
	}
	int64_t deadline = rfs_monotonic_ms() + timeout_ms;
	int rc;
	for (;;) {
		rc = rfs_sync_commit_now(s);
		if (rc == 0 || rfs_monotonic_ms() >= deadline)
			break;
		struct timespec ts = {0, 200 * 1000000};
		nanosleep(&ts, NULL);
	}
	if (s->hostname[0])
		heartbeat(s, 1);
	if (s->have_lease && rc == 0) {
		rfs_store_delete(s->store, "lease"); /* the next host can write at once */
		s->have_lease = 0;
	}
	return rc;
}

void rfs_sync_get_stats(struct rfs_sync *s, struct rfs_sync_stats *st)
{
	rfs_meta_lock(s->meta);
	if (rfs_meta_local_get_int(s->meta, "applied_seq", &st->applied_seq) < 0)
		st->applied_seq = 0;
	if (rfs_meta_pending_count(s->meta, &st->pending) < 0)
		st->pending = -1;
	rfs_meta_unlock(s->meta);
	pthread_mutex_lock(&s->lock);
	st->commits = s->commits;
	st->pulls_applied = s->pulls_applied;
	st->conflicts = s->conflicts;
	st->last_commit_ms = s->last_commit_ms;
	snprintf(st->last_error, sizeof(st->last_error), "%s", s->last_error);
	pthread_mutex_unlock(&s->lock);
}
