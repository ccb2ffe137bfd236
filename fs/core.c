/*
 * core.c - the filesystem core (see core.h for the contract and the lock order): the table
 * of open and dirty nodes, the virtual trash directory, attributes, opening and closing a
 * mount, status and warmup. The data path is in data.c, the namespace in namespace.c; what
 * the three files share is in core_int.h.
 */
#include "fs/core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "backends/backend.h"
#include "fs/cache.h"
#include "fs/core_int.h"
#include "fs/format.h"
#include "fs/log.h"
#include "fs/meta.h"
#include "fs/prefetch.h"
#include "fs/ranges.h"
#include "fs/wincache.h"
#include "sync/commit.h"

/* ---------- nodes ---------- */

static struct node *node_find_locked(struct rfs_fs *fs, uint64_t ino)
{
	for (struct node *n = fs->nodes[ino % NODE_BUCKETS]; n; n = n->hnext)
		if (n->ino == ino)
			return n;
	return NULL;
}

/* Returns the node for ino with a reference, creating it if create is set (else NULL if absent). */
struct node *core_node_get(struct rfs_fs *fs, uint64_t ino, int create)
{
	pthread_mutex_lock(&fs->nodes_lock);
	struct node *n = node_find_locked(fs, ino);
	if (!n && create) {
		n = calloc(1, sizeof(*n));
		if (n) {
			n->ino = ino;
			pthread_mutex_init(&n->lock, NULL);
			n->hnext = fs->nodes[ino % NODE_BUCKETS];
			fs->nodes[ino % NODE_BUCKETS] = n;
		}
	}
	if (n)
		n->refs++;
	pthread_mutex_unlock(&fs->nodes_lock);
	return n;
}

/* Drops a reference; frees the node when nobody holds or opens it and it is clean. */
void core_node_put(struct rfs_fs *fs, struct node *n)
{
	pthread_mutex_lock(&fs->nodes_lock);
	n->refs--;
	if (n->refs == 0 && n->opens == 0) {
		if (!__atomic_load_n(&n->dirty, __ATOMIC_ACQUIRE)) {
			struct node **pp = &fs->nodes[n->ino % NODE_BUCKETS];
			while (*pp != n)
				pp = &(*pp)->hnext;
			*pp = n->hnext;
			pthread_mutex_destroy(&n->lock);
			free(n->blocks);
			free(n);
		}
	}
	pthread_mutex_unlock(&fs->nodes_lock);
}

int core_node_is_open(struct rfs_fs *fs, uint64_t ino)
{
	pthread_mutex_lock(&fs->nodes_lock);
	struct node *n = node_find_locked(fs, ino);
	int open = n && n->opens > 0;
	pthread_mutex_unlock(&fs->nodes_lock);
	return open;
}

/* ---------- trash ---------- */

int core_trash_on(struct rfs_fs *fs)
{
	return fs->cfg.trash_seconds > 0;
}

static void trash_attr(struct rfs_fs *fs, struct rfs_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->ino = RFS_TRASH_INO;
	a->mode = S_IFDIR | 01777; /* sticky: everyone sees the trash, only owners take files out */
	a->nlink = 2;
	a->atime = a->mtime = a->ctime = fs->mount_time;
}

/* ---------- attributes ---------- */

void core_attr_to_stat(const struct rfs_attr *a, uint32_t block_size, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = a->mode;
	st->st_nlink = a->nlink;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_rdev = a->rdev;
	st->st_blksize = (blksize_t)(block_size < 1048576 ? block_size : 1048576);
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	st->st_atim.tv_sec = a->atime / 1000000000;
	st->st_atim.tv_nsec = a->atime % 1000000000;
	st->st_mtim.tv_sec = a->mtime / 1000000000;
	st->st_mtim.tv_nsec = a->mtime % 1000000000;
	st->st_ctim.tv_sec = a->ctime / 1000000000;
	st->st_ctim.tv_nsec = a->ctime % 1000000000;
}

/* Overlays what an open node knows that the DB does not yet. */
static void overlay(struct rfs_fs *fs, struct rfs_attr *a)
{
	struct node *n = core_node_get(fs, a->ino, 0);
	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	if (n->attr_dirty) {
		a->size = n->size;
		a->mtime = n->mtime;
		if (n->ctime > a->ctime)
			a->ctime = n->ctime;
		if (n->atime_set)
			a->atime = n->atime;
	}
	pthread_mutex_unlock(&n->lock);
	core_node_put(fs, n);
}

/* Reads attributes with the overlay applied. */
int core_get_attr(struct rfs_fs *fs, uint64_t ino, struct rfs_attr *a)
{
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_get_attr(fs->meta, ino, a);
	rfs_meta_unlock(fs->meta);
	if (rc == 0)
		overlay(fs, a);
	return rc;
}

int rfs_getattr(struct rfs_fs *fs, uint64_t ino, struct stat *st)
{
	struct rfs_attr a;
	if (ino == RFS_TRASH_INO) {
		trash_attr(fs, &a);
		core_attr_to_stat(&a, fs->format.block_size, st);
		return 0;
	}
	int rc = core_get_attr(fs, ino, &a);
	if (rc == 0)
		core_attr_to_stat(&a, fs->format.block_size, st);
	return rc;
}

int rfs_lookup(struct rfs_fs *fs, uint64_t parent, const char *name, struct stat *st)
{
	uint64_t ino;
	struct rfs_attr a;
	if (strlen(name) > NAME_MAX)
		return -ENAMETOOLONG;
	if (parent == RFS_ROOT_INO && core_trash_on(fs) && !strcmp(name, RFS_TRASH_NAME)) {
		trash_attr(fs, &a);
		core_attr_to_stat(&a, fs->format.block_size, st);
		return 0;
	}
	rfs_meta_lock(fs->meta);
	int rc = parent == RFS_TRASH_INO ? rfs_meta_trash_lookup(fs->meta, name, &ino)
					 : rfs_meta_lookup(fs->meta, parent, name, &ino);
	if (rc == 0)
		rc = rfs_meta_get_attr(fs->meta, ino, &a);
	rfs_meta_unlock(fs->meta);
	if (rc < 0)
		return rc;
	overlay(fs, &a);
	core_attr_to_stat(&a, fs->format.block_size, st);
	return 0;
}

int core_check_writable(struct rfs_fs *fs)
{
	return fs->cfg.read_only ? -EROFS : 0;
}

int rfs_statfs(struct rfs_fs *fs, struct statvfs *st)
{
	uint64_t inodes = 0, bytes = 0;
	rfs_meta_lock(fs->meta);
	rfs_meta_count_inodes(fs->meta, &inodes);
	rfs_meta_total_size(fs->meta, &bytes);
	rfs_meta_unlock(fs->meta);
	/* An object store has no fixed size: report 1 PiB, like other S3 filesystems do. */
	const uint64_t bsize = 4096, total = (1ULL << 50) / bsize, files = 1ULL << 32;
	memset(st, 0, sizeof(*st));
	st->f_bsize = bsize;
	st->f_frsize = bsize;
	st->f_blocks = total;
	uint64_t used = (bytes + bsize - 1) / bsize;
	st->f_bfree = st->f_bavail = used < total ? total - used : 0;
	st->f_files = files;
	st->f_ffree = st->f_favail = inodes < files ? files - inodes : 0;
	st->f_namemax = NAME_MAX;
	return 0;
}

/* ---------- lifecycle ---------- */

static int drop_orphan(void *arg, uint64_t ino)
{
	struct rfs_fs *fs = arg;
	int rc = rfs_meta_delete_inode(fs->meta, ino);
	return rc < 0 && rc != -ENOENT ? 1 : 0; /* a failure stops the scan (the commit then refuses) */
}

static int load_host_id(struct rfs_fs *fs)
{
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_local_get_text(fs->meta, "host_id", fs->host_id, sizeof(fs->host_id));
	if (rc == -ENOENT) {
		uint8_t rnd[8];
		rfs_random(rnd, sizeof(rnd));
		rfs_hex(rnd, sizeof(rnd), fs->host_id);
		rc = rfs_meta_local_set_text(fs->meta, "host_id", fs->host_id);
	}
	rfs_meta_unlock(fs->meta);
	return rc;
}

/* Frees every node (teardown: no other thread runs). */
static void nodes_free(struct rfs_fs *fs)
{
	for (size_t i = 0; i < NODE_BUCKETS; i++) {
		struct node *n = fs->nodes[i];
		while (n) {
			struct node *next = n->hnext;
			pthread_mutex_destroy(&n->lock);
			free(n->blocks);
			free(n);
			n = next;
		}
		fs->nodes[i] = NULL;
	}
}

int rfs_fs_open(const struct rfs_fs_config *cfg, struct rfs_fs **out, char *err, size_t errlen)
{
	struct rfs_fs *fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->lock_fd = -1;
	for (int a = 0; a < RFS_ARENAS; a++)
		fs->arena_fd[a] = -1;
	fs->cfg = *cfg;
	if (fs->cfg.flush_interval_ms <= 0)
		fs->cfg.flush_interval_ms = 1000;
	if (fs->cfg.sync_interval_ms <= 0)
		fs->cfg.sync_interval_ms = 1000;
	if (fs->cfg.trash_seconds == 0)
		fs->cfg.trash_seconds = RFS_TRASH_SECONDS;
	fs->mount_time = rfs_now_ns();
	pthread_mutex_init(&fs->flush_lock, NULL);
	pthread_mutex_init(&fs->free_lock, NULL);
	pthread_mutex_init(&fs->nodes_lock, NULL);
	pthread_mutex_init(&fs->bg_lock, NULL);
	pthread_mutex_init(&fs->sib_lock, NULL);
	pthread_mutex_init(&fs->space_lock, NULL);
	pthread_mutex_init(&fs->upload_err_lock, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&fs->bg_cond, &ca);
	pthread_condattr_destroy(&ca);
	int rc;
	fs->cache_dir = strdup(cfg->cache_dir);
	if (!fs->cache_dir) {
		rc = -ENOMEM;
		goto fail;
	}
	fs->cfg.cache_dir = fs->cache_dir;
	fs->cfg.store_url = NULL;

	rc = rfs_store_open(cfg->store_url, &fs->store, err, errlen);
	if (rc < 0)
		goto fail;
	fs->meta_store = fs->store;
	rc = rfs_format_read(fs->store, &fs->format, err, errlen);
	if (rc < 0)
		goto fail;
	if (fs->format.meta_url[0]) {
		/* the workspace keeps its log on another store (format --meta) */
		rc = rfs_store_open(fs->format.meta_url, &fs->meta_store, err, errlen);
		if (rc < 0) {
			fs->meta_store = NULL;
			goto fail;
		}
	}
	rc = rfs_mkdir_p(cfg->cache_dir, 0700);
	if (rc < 0) {
		snprintf(err, errlen, "cannot create cache directory '%s': %s", cfg->cache_dir, strerror(-rc));
		goto fail;
	}
	/* One daemon per cache dir: two would share the replica, the staging files and the host
	 * id. The lock lives as long as the daemon (`roamfs mount` forks before this open). */
	char lockp[PATH_MAX + 8];
	snprintf(lockp, sizeof(lockp), "%s/lock", cfg->cache_dir);
	fs->lock_fd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fs->lock_fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot open '%s': %s", lockp, strerror(-rc));
		goto fail;
	}
	if (flock(fs->lock_fd, LOCK_EX | LOCK_NB) < 0) {
		rc = errno == EWOULDBLOCK ? -EBUSY : -errno;
		snprintf(err, errlen,
			 "cache directory '%s' is in use by another roamfs daemon (see 'roamfs status'); "
			 "give this mount its own --cache-dir",
			 cfg->cache_dir);
		goto fail;
	}
	snprintf(fs->staging_dir, sizeof(fs->staging_dir), "%s/staging", cfg->cache_dir);
	rc = rfs_mkdir_p(fs->staging_dir, 0700);
	if (rc < 0) {
		snprintf(err, errlen, "cannot create staging directory '%s': %s", fs->staging_dir, strerror(-rc));
		goto fail;
	}
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/meta.db", cfg->cache_dir);
	if (access(path, F_OK) < 0) {
		/* a new host: start from the newest checkpoint instead of replaying the whole log */
		int64_t seq = rfs_snapshot_restore(fs->meta_store, path, fs->format.version);
		if (seq < 0)
			RFS_LOG(LOG_WARNING, "cannot read checkpoints (%s); replaying the whole log",
				strerror((int)-seq));
	}
	rc = rfs_meta_open(path, &fs->meta, err, errlen);
	if (rc < 0)
		goto fail;
	rfs_meta_set_exclusive(fs->meta);
	/* A cache dir belongs to one workspace: refuse to mix two. */
	char uuid[64] = "";
	rfs_meta_lock(fs->meta);
	int have = rfs_meta_local_get_text(fs->meta, "workspace", uuid, sizeof(uuid)) == 0;
	if (!have)
		rfs_meta_local_set_text(fs->meta, "workspace", fs->format.uuid);
	rfs_meta_unlock(fs->meta);
	if (have && strcmp(uuid, fs->format.uuid)) {
		snprintf(err, errlen,
			 "cache directory '%s' belongs to another workspace (%s, store has %s); "
			 "use a different --cache-dir",
			 cfg->cache_dir, uuid, fs->format.uuid);
		rc = -EEXIST;
		goto fail;
	}
	rc = load_host_id(fs);
	if (rc < 0) {
		snprintf(err, errlen, "cannot set up host identity in '%s'", path);
		goto fail;
	}
	rc = rfs_cache_open(cfg->cache_dir, cfg->cache_size, &fs->cache);
	if (rc < 0) {
		snprintf(err, errlen, "cannot open block cache in '%s': %s", cfg->cache_dir, strerror(-rc));
		goto fail;
	}
	rc = rfs_ranges_open(fs->cache, cfg->cache_dir, &fs->ranges);
	if (rc < 0) {
		snprintf(err, errlen, "cannot open the range index in '%s': %s", cfg->cache_dir, strerror(-rc));
		goto fail;
	}
	rc = rfs_wincache_open(RFS_WINCACHE_BYTES, &fs->wincache);
	if (rc < 0) {
		snprintf(err, errlen, "cannot allocate the window cache: %s", strerror(-rc));
		goto fail;
	}
	rc = rfs_sync_open(fs->meta_store, fs->meta, fs->host_id, fs->cfg.sync_interval_ms, &fs->sync);
	if (rc < 0)
		goto fail;
	rfs_sync_set_checkpoints(fs->sync, fs->cfg.snapshot_every > 0 ? fs->cfg.snapshot_every : RFS_SNAPSHOT_EVERY,
				 cfg->cache_dir);
	/* before this host writes anything to the log store that an older roamfs would misread */
	fs->format_guard = (struct rfs_format_guard){fs->store, &fs->format};
	rfs_sync_set_publish_guard(fs->sync, rfs_format_guard, &fs->format_guard);
	rc = rfs_sync_pull(fs->sync);
	if (rc < 0) {
		struct rfs_sync_stats ss;
		rfs_sync_get_stats(fs->sync, &ss);
		snprintf(err, errlen, "cannot catch up with the metadata log of '%s': %s", fs->store->url,
			 ss.last_error[0] ? ss.last_error : strerror(-rc));
		goto fail;
	}
	if (!fs->cfg.read_only) {
		rc = rfs_sync_probe(fs->sync);
		if (rc < 0) {
			char cause[256];
			rfs_store_error(fs->store, cause, sizeof(cause));
			snprintf(err, errlen, "cannot probe store '%s': %s", fs->store->url,
				 cause[0] ? cause : strerror(-rc));
			goto fail;
		}
		char holder[64] = "";
		rc = rc == 1 ? rfs_sync_acquire_lease(fs->sync, holder, sizeof(holder)) : 0;
		if (rc < 0) {
			snprintf(err, errlen, "cannot take the writer lease of '%s': %s", fs->store->url,
				 strerror(-rc));
			goto fail;
		}
		if (rc == 1) {
			fs->cfg.read_only = 1;
			fprintf(stderr,
				"roamfs: warning: store '%s' has no conditional create, so one host writes at a "
				"time; host %s holds the writer lease: mounting READ-ONLY and following its changes\n",
				fs->store->url, holder);
			RFS_LOG(LOG_WARNING, "host %s holds the writer lease: read-only", holder);
		}
		rc = 0;
	}
	if (rfs_meta_begin(fs->meta) == 0) { /* orphans left by a crash; retried next mount on failure */
		rfs_meta_orphans(fs->meta, drop_orphan, fs);
		rfs_meta_commit(fs->meta);
	}
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	rc = core_arenas_open(fs);
	if (rc < 0) {
		snprintf(err, errlen, "cannot open the staging arenas in '%s': %s", fs->staging_dir, strerror(-rc));
		goto fail;
	}
	/* staged writes are numbered epoch << 40 | count, the epoch one more per open, so that a
	 * truncate's marker orders them across daemons (data.c, do_truncate) */
	int64_t epoch = 0;
	rfs_meta_lock(fs->meta);
	rfs_meta_local_get_int(fs->meta, "stage_epoch", &epoch);
	rc = rfs_meta_local_set_int(fs->meta, "stage_epoch", epoch + 1);
	rfs_meta_unlock(fs->meta);
	if (rc < 0 && !fs->cfg.read_only) { /* a read-only mount stages nothing */
		snprintf(err, errlen, "cannot write the metadata database in '%s' (is the cache disk full?)",
			 cfg->cache_dir);
		goto fail;
	}
	fs->stage_seq = (uint64_t)(epoch + 1) << 40;
	rc = core_recover_staging(fs);
	if (rc >= 0) { /* every region older than a truncate marker is cut now */
		rfs_meta_lock(fs->meta);
		rfs_meta_local_delete_prefix(fs->meta, "trunc.");
		rfs_meta_unlock(fs->meta);
	}
	if (rc < 0) {
		snprintf(err, errlen,
			 "cannot recover the unsaved data in staging directory '%s': %s (see roamfs.log in "
			 "the cache dir; nothing there was deleted: fix the cache disk and mount again)",
			 fs->staging_dir, strerror(-rc));
		goto fail;
	}
	*out = fs;
	return 0;
fail:
	nodes_free(fs);
	core_arenas_close(fs, 0);
	rfs_sync_close(fs->sync);
	rfs_ranges_close(fs->ranges);
	rfs_cache_close(fs->cache);
	rfs_wincache_close(fs->wincache);
	rfs_meta_close(fs->meta);
	if (fs->meta_store && fs->meta_store != fs->store)
		rfs_store_close(fs->meta_store);
	rfs_store_close(fs->store);
	if (fs->lock_fd >= 0)
		close(fs->lock_fd);
	free(fs->cache_dir);
	free(fs);
	return rc;
}

void rfs_fs_set_invalidate(struct rfs_fs *fs, rfs_inval_cb cb, void *arg)
{
	rfs_sync_set_touch_hook(fs->sync, cb, arg);
}

int rfs_fs_start(struct rfs_fs *fs)
{
	if (fs->cfg.fetch_threads <= 0)
		fs->cfg.fetch_threads = RFS_PREFETCH_THREADS;
	/* each fetch holds a block: big blocks get fewer workers (64 MiB blocks: 4) */
	int by_memory = (int)(RFS_FETCH_MEMORY / fs->format.block_size);
	if (fs->cfg.fetch_threads > by_memory) {
		RFS_LOG(LOG_INFO, "%d parallel fetches of %u-byte blocks would hold %d MiB; using %d",
			fs->cfg.fetch_threads, fs->format.block_size,
			(int)(((uint64_t)fs->cfg.fetch_threads * fs->format.block_size) >> 20),
			by_memory > 1 ? by_memory : 1);
		fs->cfg.fetch_threads = by_memory > 1 ? by_memory : 1;
	}
	if (rfs_prefetch_start(fs->cfg.fetch_threads, core_prefetch_job, fs, &fs->prefetch) < 0)
		fs->prefetch = NULL; /* no readahead, still correct */
	int rc = pthread_create(&fs->bg_thread, NULL, core_bg_thread, fs);
	if (rc)
		return -rc;
	fs->bg_running = 1;
	core_bg_kick(fs); /* upload what recovery found */
	return rfs_sync_start(fs->sync);
}

int rfs_fs_close(struct rfs_fs *fs)
{
	rfs_prefetch_stop(fs->prefetch);
	fs->prefetch = NULL;
	if (fs->bg_running) {
		pthread_mutex_lock(&fs->bg_lock);
		fs->bg_stop = 1;
		pthread_cond_signal(&fs->bg_cond);
		pthread_mutex_unlock(&fs->bg_lock);
		pthread_join(fs->bg_thread, NULL);
	}
	int rc = 0;
	if (!fs->cfg.read_only) {
		for (int attempt = 0; attempt < 3; attempt++) {
			rc = core_flush_dirty(fs, 1);
			if (rc == 0)
				break;
		}
		if (rc < 0)
			RFS_LOG(LOG_ERR,
				"could not upload all data at unmount (%s); it stays in '%s' and is "
				"uploaded at the next mount with this cache dir",
				strerror(-rc), fs->staging_dir);
	}
	int src = rfs_sync_stop(fs->sync, 30000);
	if (src < 0) {
		RFS_LOG(LOG_ERR,
			"could not publish all metadata at unmount (%s); it is kept in the local "
			"database and published at the next mount with this cache dir",
			strerror(-src));
		rc = rc ? rc : src;
	}
	nodes_free(fs);
	/* shrunk to nothing only when surely nothing waits there */
	uint64_t sbytes = 0, sfiles = 1;
	int64_t soldest = 0;
	int empty =
	    !fs->cfg.read_only && rc == 0 && core_staged_summary(fs, &sbytes, &sfiles, &soldest) == 0 && sfiles == 0;
	core_arenas_close(fs, empty);
	rfs_sync_close(fs->sync);
	rfs_ranges_close(fs->ranges);
	rfs_cache_close(fs->cache);
	rfs_wincache_close(fs->wincache);
	rfs_meta_close(fs->meta);
	if (fs->meta_store && fs->meta_store != fs->store)
		rfs_store_close(fs->meta_store);
	rfs_store_close(fs->store);
	pthread_cond_destroy(&fs->bg_cond);
	pthread_mutex_destroy(&fs->bg_lock);
	pthread_mutex_destroy(&fs->sib_lock);
	pthread_mutex_destroy(&fs->space_lock);
	pthread_mutex_destroy(&fs->upload_err_lock);
	pthread_mutex_destroy(&fs->nodes_lock);
	pthread_mutex_destroy(&fs->flush_lock);
	pthread_mutex_destroy(&fs->free_lock);
	if (fs->lock_fd >= 0)
		close(fs->lock_fd); /* last: the cache dir is free for the next daemon */
	free(fs->cache_dir);
	free(fs);
	return rc;
}

/* ---------- status ---------- */

void rfs_fs_kick(struct rfs_fs *fs)
{
	core_bg_kick(fs);
	rfs_sync_kick(fs->sync);
}

void rfs_fs_set_identity(struct rfs_fs *fs, const char *mountpoint)
{
	char host[128] = "";
	gethostname(host, sizeof(host) - 1);
	rfs_sync_set_identity(fs->sync, host, mountpoint);
}

const char *rfs_fs_store_url(struct rfs_fs *fs)
{
	return fs->store->url;
}

int rfs_fs_get_status(struct rfs_fs *fs, struct rfs_fs_status *st)
{
	memset(st, 0, sizeof(*st));
	snprintf(st->store, sizeof(st->store), "%s", fs->store->url);
	snprintf(st->host_id, sizeof(st->host_id), "%s", fs->host_id);
	snprintf(st->cache_dir, sizeof(st->cache_dir), "%s", fs->cache_dir);
	st->read_only = fs->cfg.read_only;
	st->block_size = fs->format.block_size;
	struct rfs_sync_stats ss;
	rfs_sync_get_stats(fs->sync, &ss);
	st->applied_seq = ss.applied_seq;
	st->pending_changes = ss.pending;
	st->conflicts = ss.conflicts;
	st->last_commit_s = ss.last_commit_ms ? (rfs_monotonic_ms() - ss.last_commit_ms) / 1000 : -1;
	if (rfs_sync_store_head(fs->sync, &st->head_seq) < 0)
		st->head_seq = -1;
	/* staged data: what the staging arenas hold right now */
	uint64_t files = 0;
	int64_t oldest = 0;
	int staged_rc = core_staged_summary(fs, &st->dirty_bytes, &files, &oldest);
	st->dirty_files = files;
	st->oldest_dirty_s = oldest ? (rfs_now_ns() - oldest) / 1000000000LL : -1;
	if (st->oldest_dirty_s < -1)
		st->oldest_dirty_s = 0; /* the clock stepped back */
	/* a failing data upload first, and only while there is staged data it concerns (the
	 * file may have been deleted since) */
	char up[256] = "", arena[256] = "";
	if (staged_rc < 0) /* the counts above are too low: say so where the user looks */
		snprintf(arena, sizeof(arena),
			 "cannot read the staging arenas in '%s' (%s): staged data may be more than shown; "
			 "check the cache disk",
			 fs->staging_dir, strerror(-staged_rc));
	if (st->dirty_files || staged_rc < 0)
		core_upload_error(fs, up, sizeof(up));
	snprintf(st->last_error, sizeof(st->last_error), "%s%s%s%s%s", arena, arena[0] && up[0] ? "; " : "", up,
		 (arena[0] || up[0]) && ss.last_error[0] ? "; " : "", ss.last_error);
	struct rfs_cache_stats cs;
	rfs_cache_get_stats(fs->cache, &cs);
	st->cache_used = cs.used;
	st->cache_limit = cs.limit;
	st->cache_hits = cs.hits;
	st->cache_misses = cs.misses;
	st->cache_blocks = cs.blocks;
	for (int i = 0; i < RFS_REQ_KINDS && i < 5; i++)
		st->requests[i] = __atomic_load_n(&fs->store->requests[i], __ATOMIC_RELAXED);
	st->bytes_in = __atomic_load_n(&fs->store->bytes_in, __ATOMIC_RELAXED);
	st->bytes_out = __atomic_load_n(&fs->store->bytes_out, __ATOMIC_RELAXED);
	return 0;
}

struct host_list {
	char (*keys)[128];
	size_t n, cap;
};

static int collect_host(void *arg, const char *key, uint64_t size)
{
	(void)size;
	struct host_list *h = arg;
	if (h->n == h->cap) {
		size_t nc = h->cap ? h->cap * 2 : 16;
		char(*nk)[128] = realloc(h->keys, nc * sizeof(*nk));
		if (!nk)
			return 1;
		h->keys = nk;
		h->cap = nc;
	}
	snprintf(h->keys[h->n++], 128, "%s", key);
	return h->n >= 1000;
}

int rfs_fs_list_hosts(struct rfs_fs *fs, int max_age_s, int (*cb)(void *arg, const char *id, const char *body),
		      void *arg)
{
	struct host_list h = {0};
	int rc = rfs_store_list(fs->store, "hosts/", collect_host, &h);
	int64_t now = rfs_now_ns() / 1000000000;
	for (size_t i = 0; rc == 0 && i < h.n; i++) {
		struct rfs_buf b = {0};
		if (rfs_store_get(fs->store, h.keys[i], 0, 4096, &b) < 0)
			continue;
		char body[4097];
		memcpy(body, b.data, b.len);
		body[b.len] = 0;
		rfs_buf_free(&b);
		const char *t = strstr(body, "time=");
		long long when = t ? atoll(t + 5) : 0;
		if (now - when > max_age_s || strstr(body, "state=stopped"))
			continue;
		if (cb(arg, h.keys[i] + 6, body))
			break;
	}
	free(h.keys);
	return rc;
}

int rfs_fs_list_conflicts(struct rfs_fs *fs, int limit, int (*cb)(void *arg, int64_t time_ns, const char *what),
			  void *arg)
{
	rfs_meta_lock(fs->meta);
	int rc = rfs_meta_conflicts(fs->meta, limit, cb, arg);
	rfs_meta_unlock(fs->meta);
	return rc;
}

/* ---------- warmup ---------- */

struct hash_list {
	uint8_t (*h)[RFS_HASH_LEN];
	size_t n, cap;
};

static int collect_hash(void *arg, uint64_t idx, const uint8_t hash[RFS_HASH_LEN])
{
	(void)idx;
	struct hash_list *l = arg;
	if (l->n == l->cap) {
		size_t nc = l->cap ? l->cap * 2 : 1024;
		uint8_t(*nh)[RFS_HASH_LEN] = realloc(l->h, nc * RFS_HASH_LEN);
		if (!nh)
			return 1;
		l->h = nh;
		l->cap = nc;
	}
	memcpy(l->h[l->n++], hash, RFS_HASH_LEN);
	return 0;
}

static int cmp_hash(const void *a, const void *b)
{
	return memcmp(a, b, RFS_HASH_LEN);
}

int rfs_warmup(struct rfs_fs *fs, const uint64_t *inos, size_t n, int jobs,
	       void (*progress)(void *arg, uint64_t, uint64_t, uint64_t, uint64_t), void *arg,
	       struct rfs_warmup_result *res)
{
	struct hash_list l = {0};
	uint32_t *sizes = NULL;
	struct rfs_block_loc *locs = NULL; /* where each block is (rlen 0: unknown) */
	struct rfs_prefetch *pool = NULL;
	int rc = 0;
	memset(res, 0, sizeof(*res));
	rfs_meta_lock(fs->meta);
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = rfs_meta_bmap_each(fs->meta, inos[i], collect_hash, &l);
	rfs_meta_unlock(fs->meta);
	if (rc < 0)
		goto out;
	if (l.n)
		qsort(l.h, l.n, RFS_HASH_LEN, cmp_hash);
	size_t u = 0;
	for (size_t i = 0; i < l.n; i++)
		if (!u || memcmp(l.h[u - 1], l.h[i], RFS_HASH_LEN))
			memcpy(l.h[u++], l.h[i], RFS_HASH_LEN);
	l.n = u;
	sizes = calloc(l.n ? l.n : 1, sizeof(*sizes));
	locs = calloc(l.n ? l.n : 1, sizeof(*locs));
	if (!sizes || !locs) {
		rc = -ENOMEM;
		goto out;
	}
	uint64_t need = 0;
	rfs_meta_lock(fs->meta);
	for (size_t i = 0; i < l.n; i++) {
		if (rfs_meta_block_get(fs->meta, l.h[i], &locs[i]) == 0)
			sizes[i] = locs[i].rlen;
		res->bytes += sizes[i];
	}
	rfs_meta_unlock(fs->meta);
	res->blocks = l.n;
	for (size_t i = 0; i < l.n; i++) {
		if (core_block_cached(fs, l.h[i], &locs[i]))
			res->already_cached++;
		else
			need += sizes[i];
	}
	struct rfs_cache_stats cs;
	rfs_cache_get_stats(fs->cache, &cs);
	if (res->bytes > cs.limit)
		res->not_fitting_bytes = res->bytes - cs.limit;
	if (res->already_cached < l.n) {
		rc = rfs_prefetch_start(jobs, core_prefetch_job, fs, &pool);
		if (rc < 0)
			goto out;
		int64_t last = 0;
		for (size_t i = 0; i < l.n; i++) {
			if (!core_block_cached(fs, l.h[i], &locs[i]))
				rfs_prefetch_add_wait(pool, PF_WARM, l.h[i]);
			if (progress && rfs_monotonic_ms() - last >= 500) {
				last = rfs_monotonic_ms();
				uint64_t db = 0, dn = 0;
				for (size_t j = 0; j < l.n; j++)
					if (core_block_cached(fs, l.h[j], &locs[j])) {
						dn++;
						db += sizes[j];
					}
				progress(arg, dn, l.n, db, res->bytes);
			}
		}
		rfs_prefetch_wait_idle(pool);
	}
	uint64_t done = 0, done_bytes = 0;
	for (size_t i = 0; i < l.n; i++)
		if (core_block_cached(fs, l.h[i], &locs[i])) {
			done++;
			done_bytes += sizes[i];
		}
	res->fetched = done > res->already_cached ? done - res->already_cached : 0;
	if (done < l.n && !res->not_fitting_bytes)
		res->failed = l.n - done;
	if (progress)
		progress(arg, done, l.n, done_bytes, res->bytes);
out:
	rfs_prefetch_stop(pool);
	free(sizes);
	free(locs);
	free(l.h);
	return rc;
}
