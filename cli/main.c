/*
 * main.c - the `roamfs` command: format, mount, umount.
 * Every failure prints what failed, the subject, and what to do, and exits non-zero.
 */
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backends/backend.h"
#include "fs/core.h"
#include "fs/format.h"
#include "fs/log.h"
#include "fs/ops.h"
#include "fs/util.h"

#ifndef RFS_DEFAULT_CACHE_SIZE
#define RFS_DEFAULT_CACHE_SIZE "10G"
#endif
#define RFS_VERSION "0.1.0"

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("roamfs: error: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

static const char usage_main[] =
	"usage: roamfs COMMAND [ARGS]\n"
	"\n"
	"A shared workspace for GPU hosts: a FUSE filesystem whose data and metadata live in a\n"
	"store (a directory on NFS/NAS, or object storage) and are cached on local SSD.\n"
	"\n"
	"commands:\n"
	"  format STORE      create a workspace in STORE\n"
	"  mount STORE MP    mount the workspace at MP\n"
	"  umount MP         upload everything, then unmount MP\n"
	"  version           print the version\n"
	"\n"
	"STORE is file:///abs/dir or a plain directory path.\n"
	"'roamfs COMMAND --help' lists each command's options.\n";

static const char usage_format[] =
	"usage: roamfs format STORE [options]\n"
	"\n"
	"  --block-size N        block size, a power of two from 4K to 64M (default 4M)\n"
	"  --compression C       lz4 or none (default lz4)\n"
	"  --force               overwrite the format record of an existing workspace\n";

static const char usage_mount[] =
	"usage: roamfs mount STORE MOUNTPOINT [options]\n"
	"\n"
	"  --cache-dir DIR       local SSD cache and metadata (default /var/cache/roamfs/<id> for root,\n"
	"                        $XDG_CACHE_HOME/roamfs/<id> otherwise)\n"
	"  --cache-size SIZE     clean-block cache limit, e.g. 20G (default " RFS_DEFAULT_CACHE_SIZE ")\n"
	"  --flush-interval MS   how long closed files wait before upload (default 1000)\n"
	"  --sync-interval MS    how often metadata is published and pulled (default 1000)\n"
	"  -f                    stay in the foreground\n"
	"  -d                    debug logging to stderr (implies -f)\n"
	"  -o OPTS               mount options: allow_other, ro, ... and cache-dir=, cache-size=\n";

static const char usage_umount[] =
	"usage: roamfs umount MOUNTPOINT [--lazy]\n"
	"\n"
	"Waits until every file is uploaded and every change is in the store, then unmounts.\n"
	"  --lazy                detach even if files are still open (uploads finish when they close)\n";

static int wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
			return 1;
	return 0;
}

/* ---------- format ---------- */

static int cmd_format(int argc, char **argv)
{
	if (wants_help(argc, argv)) {
		fputs(usage_format, stdout);
		return 0;
	}
	static const struct option longopts[] = {{"block-size", required_argument, NULL, 'b'},
						 {"compression", required_argument, NULL, 'c'},
						 {"force", no_argument, NULL, 'F'},
						 {NULL, 0, NULL, 0}};
	struct rfs_format f = {.version = RFS_FORMAT_VERSION, .block_size = RFS_DEFAULT_BLOCK_SIZE, .compress = 1};
	int force = 0, c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		uint64_t v;
		switch (c) {
		case 'b':
			if (rfs_parse_size(optarg, &v) < 0 || v < RFS_MIN_BLOCK_SIZE || v > RFS_MAX_BLOCK_SIZE ||
			    (v & (v - 1)))
				die("invalid --block-size '%s': use a power of two from 4K to 64M, e.g. 4M", optarg);
			f.block_size = (uint32_t)v;
			break;
		case 'c':
			if (!strcmp(optarg, "lz4"))
				f.compress = 1;
			else if (!strcmp(optarg, "none"))
				f.compress = 0;
			else
				die("invalid --compression '%s': use lz4 or none", optarg);
			break;
		case 'F':
			force = 1;
			break;
		default:
			fputs(usage_format, stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fputs(usage_format, stderr);
		return 2;
	}
	char err[1024] = "";
	struct rfs_store *s;
	int rc = rfs_store_open(argv[optind], &s, err, sizeof(err));
	if (rc < 0)
		die("%s", err);
	uint8_t rnd[16];
	rfs_random(rnd, sizeof(rnd));
	rfs_hex(rnd, sizeof(rnd), f.uuid);
	rc = rfs_format_write(s, &f, force, err, sizeof(err));
	if (rc == 0)
		printf("formatted %s: workspace %s, block size %u, compression %s\n", s->url, f.uuid, f.block_size,
		       f.compress ? "lz4" : "none");
	rfs_store_close(s);
	if (rc < 0)
		die("%s", err);
	return 0;
}

/* ---------- mount registry: which daemon serves which mountpoint ---------- */

static void registry_dir(char *buf, size_t len)
{
	if (geteuid() == 0) {
		snprintf(buf, len, "/run/roamfs");
	} else {
		const char *x = getenv("XDG_RUNTIME_DIR");
		if (x && x[0])
			snprintf(buf, len, "%s/roamfs", x);
		else
			snprintf(buf, len, "/tmp/roamfs-%u", (unsigned)getuid());
	}
}

static void registry_path(const char *mountpoint, char *buf, size_t len)
{
	char dir[PATH_MAX];
	registry_dir(dir, sizeof(dir));
	uint8_t h[RFS_HASH_LEN];
	char hex[2 * RFS_HASH_LEN + 1];
	rfs_sha256(mountpoint, strlen(mountpoint), h);
	rfs_hex(h, 8, hex);
	snprintf(buf, len, "%s/%s.mount", dir, hex);
}

/* ---------- mount ---------- */

struct daemon_state {
	struct rfs_fs *fs;
	char cache_dir[PATH_MAX];
	char mountpoint[PATH_MAX];
	char store[PATH_MAX];
	char registry[PATH_MAX];
	int foreground;
};

static int daemon_started(void *arg)
{
	struct daemon_state *d = arg;
	char path[PATH_MAX + 32], body[3 * PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/roamfs.pid", d->cache_dir);
	int n = snprintf(body, sizeof(body), "%d\n", (int)getpid());
	rfs_write_file_atomic(path, body, (size_t)n, 0644);
	char dir[PATH_MAX];
	registry_dir(dir, sizeof(dir));
	rfs_mkdir_p(dir, 0700);
	n = snprintf(body, sizeof(body), "pid=%d\ncache=%s\nmountpoint=%s\nstore=%s\n", (int)getpid(), d->cache_dir,
		     d->mountpoint, d->store);
	rfs_write_file_atomic(d->registry, body, (size_t)n, 0600);
	snprintf(path, sizeof(path), "%s/last-exit", d->cache_dir);
	unlink(path);
	if (!d->foreground) {
		char logp[PATH_MAX + 32];
		snprintf(logp, sizeof(logp), "%s/roamfs.log", d->cache_dir);
		rfs_log_open(logp, 0, 1);
	}
	RFS_LOG(LOG_NOTICE, "mounted %s at %s (cache %s)", d->store, d->mountpoint, d->cache_dir);
	return rfs_fs_start(d->fs);
}

static void default_cache_dir(const char *store, char *buf, size_t len)
{
	uint8_t h[RFS_HASH_LEN];
	char hex[2 * RFS_HASH_LEN + 1];
	rfs_sha256(store, strlen(store), h);
	rfs_hex(h, 8, hex);
	if (geteuid() == 0) {
		snprintf(buf, len, "/var/cache/roamfs/%s", hex);
		return;
	}
	const char *x = getenv("XDG_CACHE_HOME");
	if (x && x[0])
		snprintf(buf, len, "%s/roamfs/%s", x, hex);
	else
		snprintf(buf, len, "%s/.cache/roamfs/%s", getenv("HOME") ? getenv("HOME") : "/tmp", hex);
}

/* Splits -o options into ours (cache-dir=, cache-size=) and the ones for FUSE. */
static void split_o(const char *in, char *fuse_opts, size_t flen, char *cache_dir, size_t clen, char *cache_size,
		    size_t slen, int *read_only)
{
	char *copy = strdup(in);
	if (!copy)
		die("out of memory");
	char *save = NULL;
	for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (!strncmp(t, "cache-dir=", 10)) {
			snprintf(cache_dir, clen, "%s", t + 10);
		} else if (!strncmp(t, "cache-size=", 11)) {
			snprintf(cache_size, slen, "%s", t + 11);
		} else if (!strcmp(t, "_netdev") || !strcmp(t, "nofail") || !strcmp(t, "auto") ||
			   !strcmp(t, "noauto") || !strcmp(t, "defaults") || !strcmp(t, "user") ||
			   !strcmp(t, "nouser")) {
			continue; /* fstab-only options */
		} else {
			if (!strcmp(t, "ro"))
				*read_only = 1;
			size_t cur = strlen(fuse_opts);
			snprintf(fuse_opts + cur, flen - cur, "%s%s", cur ? "," : "", t);
		}
	}
	free(copy);
}

static int cmd_mount(int argc, char **argv)
{
	if (wants_help(argc, argv)) {
		fputs(usage_mount, stdout);
		return 0;
	}
	static const struct option longopts[] = {{"cache-dir", required_argument, NULL, 'C'},
						 {"cache-size", required_argument, NULL, 'S'},
						 {"flush-interval", required_argument, NULL, 'I'},
						 {"sync-interval", required_argument, NULL, 'Y'},
						 {NULL, 0, NULL, 0}};
	char cache_dir[PATH_MAX] = "", cache_size[64] = RFS_DEFAULT_CACHE_SIZE, fuse_opts[2048] = "";
	int foreground = 0, debug = 0, read_only = 0, c;
	int flush_ms = 1000, sync_ms = 1000;
	optind = 1;
	while ((c = getopt_long(argc, argv, "fdo:", longopts, NULL)) != -1) {
		switch (c) {
		case 'C':
			snprintf(cache_dir, sizeof(cache_dir), "%s", optarg);
			break;
		case 'S':
			snprintf(cache_size, sizeof(cache_size), "%s", optarg);
			break;
		case 'I':
			flush_ms = atoi(optarg);
			if (flush_ms <= 0)
				die("invalid --flush-interval '%s': give milliseconds, e.g. 1000", optarg);
			break;
		case 'Y':
			sync_ms = atoi(optarg);
			if (sync_ms <= 0)
				die("invalid --sync-interval '%s': give milliseconds, e.g. 1000", optarg);
			break;
		case 'f':
			foreground = 1;
			break;
		case 'd':
			debug = 1;
			foreground = 1;
			break;
		case 'o':
			split_o(optarg, fuse_opts, sizeof(fuse_opts), cache_dir, sizeof(cache_dir), cache_size,
				sizeof(cache_size), &read_only);
			break;
		default:
			fputs(usage_mount, stderr);
			return 2;
		}
	}
	if (optind != argc - 2) {
		fputs(usage_mount, stderr);
		return 2;
	}
	const char *store = argv[optind];
	const char *mp_arg = argv[optind + 1];
	static struct daemon_state d;
	if (!realpath(mp_arg, d.mountpoint))
		die("mountpoint '%s' is not usable: %s (create the directory first)", mp_arg, strerror(errno));
	struct stat st;
	if (stat(d.mountpoint, &st) < 0 || !S_ISDIR(st.st_mode))
		die("mountpoint '%s' is not a directory", mp_arg);
	uint64_t csize;
	if (rfs_parse_size(cache_size, &csize) < 0 || csize < (1u << 20))
		die("invalid cache size '%s': give bytes with an optional K/M/G/T suffix, at least 1M", cache_size);
	if (!strncmp(store, "file://", 7) || !strstr(store, "://")) {
		const char *p = !strncmp(store, "file://", 7) ? store + 7 : store;
		char real[PATH_MAX];
		if (!realpath(p, real))
			die("store directory '%s' is not usable: %s (create it and run 'roamfs format' first)", p,
			    strerror(errno));
		snprintf(d.store, sizeof(d.store), "file://%s", real);
	} else {
		snprintf(d.store, sizeof(d.store), "%s", store);
	}
	if (!cache_dir[0])
		default_cache_dir(d.store, cache_dir, sizeof(cache_dir));
	if (rfs_mkdir_p(cache_dir, 0700) < 0)
		die("cannot create cache directory '%s': %s", cache_dir, strerror(errno));
	if (!realpath(cache_dir, d.cache_dir))
		die("cache directory '%s' is not usable: %s", cache_dir, strerror(errno));
	registry_path(d.mountpoint, d.registry, sizeof(d.registry));
	d.foreground = foreground;

	rfs_log_level = debug ? LOG_DEBUG : LOG_INFO;
	char logp[PATH_MAX + 32];
	snprintf(logp, sizeof(logp), "%s/roamfs.log", d.cache_dir);
	rfs_log_open(logp, 1, 0);

	struct rfs_fs_config cfg = {.store_url = d.store,
				    .cache_dir = d.cache_dir,
				    .cache_size = csize,
				    .flush_interval_ms = flush_ms,
				    .sync_interval_ms = sync_ms,
				    .read_only = read_only};
	char err[1024] = "";
	int rc = rfs_fs_open(&cfg, &d.fs, err, sizeof(err));
	if (rc < 0)
		die("%s", err[0] ? err : strerror(-rc));
	char fsname[PATH_MAX + 16];
	snprintf(fsname, sizeof(fsname), "roamfs:%s", d.store);
	for (char *p = fsname; *p; p++)
		if (*p == ',')
			*p = '_'; /* a comma would split the -o list */
	struct rfs_mount_opts mo = {.mountpoint = d.mountpoint,
				    .fsname = fsname,
				    .fuse_opts = fuse_opts,
				    .foreground = foreground,
				    .fuse_debug = 0,
				    .attr_timeout = 1.0,
				    .max_threads = 16};
	rc = rfs_fuse_run(d.fs, &mo, daemon_started, &d, err, sizeof(err));
	if (rc < 0) {
		rfs_fs_close(d.fs);
		die("%s", err);
	}
	RFS_LOG(LOG_NOTICE, "unmounted %s; uploading what is left", d.mountpoint);
	int crc = rfs_fs_close(d.fs);
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/last-exit", d.cache_dir);
	const char *status = crc == 0 ? "clean\n" : "pending: some data or metadata could not be uploaded; see roamfs.log\n";
	rfs_write_file_atomic(path, status, strlen(status), 0644);
	snprintf(path, sizeof(path), "%s/roamfs.pid", d.cache_dir);
	unlink(path);
	unlink(d.registry);
	RFS_LOG(LOG_NOTICE, "stopped (%s)", crc == 0 ? "everything uploaded" : "work left pending");
	rfs_log_close();
	return crc == 0 ? 0 : 1;
}

/* ---------- umount ---------- */

static int registry_read(const char *mountpoint, int *pid, char *cache, size_t clen)
{
	char path[PATH_MAX];
	registry_path(mountpoint, path, sizeof(path));
	char *body;
	if (rfs_read_file(path, &body, NULL) < 0)
		return -ENOENT;
	*pid = 0;
	cache[0] = 0;
	char *save = NULL;
	for (char *line = strtok_r(body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "pid=", 4))
			*pid = atoi(line + 4);
		else if (!strncmp(line, "cache=", 6))
			snprintf(cache, clen, "%s", line + 6);
	}
	free(body);
	return *pid > 0 ? 0 : -ENOENT;
}

static int run_fusermount(const char *mp, int lazy)
{
	pid_t p = fork();
	if (p < 0)
		return -errno;
	if (p == 0) {
		if (lazy)
			execlp("fusermount3", "fusermount3", "-u", "-z", mp, (char *)NULL);
		else
			execlp("fusermount3", "fusermount3", "-u", mp, (char *)NULL);
		_exit(127);
	}
	int status;
	if (waitpid(p, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EBUSY;
}

static int cmd_umount(int argc, char **argv)
{
	if (wants_help(argc, argv)) {
		fputs(usage_umount, stdout);
		return 0;
	}
	int lazy = 0;
	const char *mp_arg = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--lazy") || !strcmp(argv[i], "-l"))
			lazy = 1;
		else if (!mp_arg)
			mp_arg = argv[i];
		else {
			fputs(usage_umount, stderr);
			return 2;
		}
	}
	if (!mp_arg) {
		fputs(usage_umount, stderr);
		return 2;
	}
	char mp[PATH_MAX];
	if (!realpath(mp_arg, mp))
		snprintf(mp, sizeof(mp), "%s", mp_arg);
	int pid = 0;
	char cache[PATH_MAX];
	int known = registry_read(mp, &pid, cache, sizeof(cache)) == 0 && kill(pid, 0) == 0;
	int rc;
	if (geteuid() == 0) {
		rc = umount2(mp, lazy ? MNT_DETACH : 0) < 0 ? -errno : 0;
		if (rc == -EPERM || rc == -EINVAL)
			rc = run_fusermount(mp, lazy);
	} else {
		rc = run_fusermount(mp, lazy);
	}
	if (rc == -EBUSY)
		die("cannot unmount '%s': files are still open on it (close them, or use 'roamfs umount --lazy')", mp);
	if (rc < 0)
		die("cannot unmount '%s': %s (is it a roamfs mount?)", mp, strerror(-rc));
	if (!known) {
		printf("unmounted %s\n", mp);
		return 0;
	}
	/* The daemon uploads whatever is left after the kernel lets go: wait for it. */
	int64_t start = rfs_monotonic_ms(), last_note = start;
	while (kill(pid, 0) == 0) {
		struct timespec ts = {0, 50 * 1000000};
		nanosleep(&ts, NULL);
		int64_t now = rfs_monotonic_ms();
		if (now - last_note >= 5000) {
			fprintf(stderr, "roamfs: waiting for uploads to finish (%llds)...\n",
				(long long)((now - start) / 1000));
			last_note = now;
		}
	}
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/last-exit", cache);
	char *status = NULL;
	if (rfs_read_file(path, &status, NULL) == 0 && strncmp(status, "clean", 5)) {
		fprintf(stderr, "roamfs: error: unmounted '%s', but %s", mp, status);
		free(status);
		return 1;
	}
	free(status);
	printf("unmounted %s; everything is in the store\n", mp);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage_main, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	const char *cmd = argv[1];
	if (!strcmp(cmd, "format"))
		return cmd_format(argc - 1, argv + 1);
	if (!strcmp(cmd, "mount"))
		return cmd_mount(argc - 1, argv + 1);
	if (!strcmp(cmd, "umount") || !strcmp(cmd, "unmount"))
		return cmd_umount(argc - 1, argv + 1);
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("roamfs %s\n", RFS_VERSION);
		return 0;
	}
	fprintf(stderr, "roamfs: error: unknown command '%s'\n\n%s", cmd, usage_main);
	return 2;
}
