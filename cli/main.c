/*
 * main.c - the `roamfs` command: format, mount, umount.
 * Every failure prints what failed, the subject, and what to do, and exits non-zero.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <ftw.h>
#include <poll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backends/backend.h"
#include "cli/admin.h"
#include "fs/control.h"
#include "fs/core.h"
#include "fs/format.h"
#include "fs/log.h"
#include "fs/ops.h"
#include "fs/util.h"

#ifndef RFS_DEFAULT_CACHE_SIZE
#define RFS_DEFAULT_CACHE_SIZE "10G"
#endif
#define RFS_VERSION "0.1.0"
#ifndef RFS_KERNEL_READAHEAD_KB
#define RFS_KERNEL_READAHEAD_KB 16384 /* kernel readahead on the mount: 16 MiB */
#endif

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
    "  status [MP]       what is synced, pending, cached; peers; errors (--json)\n"
    "  sync [MP]         upload and commit now (--wait: until nothing is pending)\n"
    "  warmup PATH...    bring files into the local SSD cache (--jobs N)\n"
    "  fsck STORE        check the store: log, packs, blocks; which files lose data (--repair)\n"
    "  gc STORE          delete packs no file uses, after a grace period (--dry-run)\n"
    "  version           print the version\n"
    "\n"
    "STORE is file:///abs/dir (or a plain directory path), s3://BUCKET/PREFIX?endpoint=URL&region=R,\n"
    "oss://BUCKET/PREFIX?region=R or obs://BUCKET/PREFIX?region=R (docs/s3.md).\n"
    "'roamfs COMMAND --help' lists each command's options.\n";

static const char usage_format[] =
    "usage: roamfs format STORE [options]\n"
    "\n"
    "  --block-size N        block size, a power of two from 4K to 64M (default 4M)\n"
    "  --compression C       lz4 or none (default lz4)\n"
    "  --force               overwrite the format record of an existing workspace\n"
    "  --meta STORE          keep the metadata log (log/, snap/, hosts/) on another store, e.g. an\n"
    "                        NFS directory next to a bucket without conditional create (Huawei OBS)\n";

static const char usage_mount[] =
    "usage: roamfs mount STORE MOUNTPOINT [options]\n"
    "\n"
    "  --cache-dir DIR       local SSD cache and metadata (default /var/cache/roamfs/<id> for root,\n"
    "                        $XDG_CACHE_HOME/roamfs/<id> otherwise)\n"
    "  --cache-size SIZE     clean-block cache limit, e.g. 20G (default " RFS_DEFAULT_CACHE_SIZE ")\n"
    "  --flush-interval MS   how often data of files still open for writing is checked for upload\n"
    "                        (default 1000; it goes after 5 s; closed files go within 0.3 s)\n"
    "  --sync-interval MS    how often metadata is published and pulled (default 1000)\n"
    "  --checkpoint-every N  write a metadata checkpoint every N log records (default 2000)\n"
    "  --trash-days D        keep deleted files in MOUNTPOINT/.trash for D days (default 1; 0: off)\n"
    "  --parallel-fetches N  block fetches in flight for readahead and prefetch, 1 to 64 (default 16);\n"
    "                        one store connection brings ~100 MB/s, so a fast network wants more;\n"
    "                        each fetch holds a block of memory (4 MiB by default; at most 256 MiB\n"
    "                        in all: bigger blocks get fewer)\n"
    "  -f                    stay in the foreground\n"
    "  -d                    debug logging to stderr (implies -f)\n"
    "  -o OPTS               mount options: allow_other, ro, ... and cache-dir=, cache-size=,\n"
    "                        parallel-fetches=\n";

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
						 {"meta", required_argument, NULL, 'M'},
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
		case 'M': {
			char merr[1024];
			struct rfs_store *ms;
			if (rfs_store_open(optarg, &ms, merr, sizeof(merr)) < 0)
				die("--meta store: %s", merr);
			snprintf(f.meta_url, sizeof(f.meta_url), "%s", ms->url);
			rfs_store_close(ms);
			break;
		}
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
	char socket[PATH_MAX];
	int foreground;
	struct rfs_control *control;
};

/* A FUSE mount's backing device starts with the kernel's default 128 KiB readahead, so a
 * sequential reader sends 128 KiB requests however large max_pages is. Raise it (root only;
 * silently skipped otherwise): fewer, larger reads for model files and datasets. */
static void raise_readahead(const char *mountpoint)
{
	/* the device number comes from mountinfo: a stat() of the mount point would wait for
	 * this very daemon, which does not serve requests yet */
	if (geteuid() != 0)
		return;
	FILE *mi = fopen("/proc/self/mountinfo", "re");
	if (!mi)
		return;
	char line[8192], devno[64] = "";
	while (fgets(line, sizeof(line), mi)) {
		char dev[64], mp[4096];
		if (sscanf(line, "%*s %*s %63s %*s %4095s", dev, mp) == 2 && !strcmp(mp, mountpoint))
			snprintf(devno, sizeof(devno), "%s", dev); /* the last mount there wins */
	}
	fclose(mi);
	if (!devno[0])
		return;
	char path[128];
	snprintf(path, sizeof(path), "/sys/class/bdi/%s/read_ahead_kb", devno);
	FILE *f = fopen(path, "we");
	if (!f)
		return;
	fprintf(f, "%d\n", RFS_KERNEL_READAHEAD_KB);
	if (fclose(f) != 0)
		RFS_LOG(LOG_DEBUG, "cannot raise readahead in %s", path);
}

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
	n = snprintf(body, sizeof(body), "pid=%d\ncache=%s\nmountpoint=%s\nstore=%s\nsocket=%s\n", (int)getpid(),
		     d->cache_dir, d->mountpoint, d->store, d->socket);
	rfs_write_file_atomic(d->registry, body, (size_t)n, 0600);
	snprintf(path, sizeof(path), "%s/last-exit", d->cache_dir);
	unlink(path);
	if (!d->foreground) {
		char logp[PATH_MAX + 32];
		snprintf(logp, sizeof(logp), "%s/roamfs.log", d->cache_dir);
		rfs_log_open(logp, 0, 1);
	}
	RFS_LOG(LOG_NOTICE, "mounted %s at %s (cache %s)", d->store, d->mountpoint, d->cache_dir);
	rfs_fs_set_identity(d->fs, d->mountpoint);
	raise_readahead(d->mountpoint);
	int rc = rfs_fs_start(d->fs);
	if (rc < 0)
		return rc;
	rc = rfs_control_start(d->fs, d->socket, d->mountpoint, &d->control);
	if (rc < 0)
		RFS_LOG(LOG_WARNING, "control socket '%s' unavailable (%s): status and sync will not reach this mount",
			d->socket, strerror(-rc));
	return 0;
}

/* Forks the daemon. The parent waits for its readiness byte (ops.h) and exits 0 on 0, else 1;
 * until then the child keeps the terminal and the process group, so its errors (die) reach
 * the user and Ctrl-C during a long catch-up stops both. Returns the child's end of the pipe. */
static int daemon_fork(void)
{
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		die("cannot create a pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0)
		die("cannot fork the daemon: %s", strerror(errno));
	if (pid > 0) {
		close(fds[1]);
		char ok = 1;
		ssize_t r = read(fds[0], &ok, 1);
		if (r == 1 && ok == 0)
			_exit(0);
		int st = 0;
		if (r == 0 && waitpid(pid, &st, 0) == pid && WIFSIGNALED(st))
			fprintf(
			    stderr,
			    "roamfs: error: the mount process died from signal %d (%s) before it reported the "
			    "mount live; if the mount point still shows in /proc/mounts, run 'fusermount3 -u' on it\n",
			    WTERMSIG(st), strsignal(WTERMSIG(st)));
		_exit(1);
	}
	close(fds[0]);
	return fds[1];
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

/* Parses --parallel-fetches / -o parallel-fetches=. */
static int parse_fetches(const char *v)
{
	char *end;
	long n = strtol(v, &end, 10);
	if (!isdigit((unsigned char)v[0]) || *end || n < 1 || n > 64)
		die("invalid parallel-fetches '%s': give a number from 1 to 64, e.g. 32", v);
	return (int)n;
}

/* Splits -o options into ours (cache-dir=, cache-size=, parallel-fetches=) and the ones for
 * FUSE. */
static void split_o(const char *in, char *fuse_opts, size_t flen, char *cache_dir, size_t clen, char *cache_size,
		    size_t slen, int *read_only, int *fetches)
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
		} else if (!strncmp(t, "parallel-fetches=", 17)) {
			*fetches = parse_fetches(t + 17);
		} else if (!strcmp(t, "_netdev") || !strcmp(t, "nofail") || !strcmp(t, "auto") ||
			   !strcmp(t, "noauto") || !strcmp(t, "defaults") || !strcmp(t, "user") ||
			   !strcmp(t, "nouser") || !strcmp(t, "users") || !strcmp(t, "owner") || !strncmp(t, "x-", 2) ||
			   !strncmp(t, "comment=", 8)) {
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

static int is_roamfs_mount(const char *mp);

static int cmd_mount(int argc, char **argv)
{
	if (wants_help(argc, argv)) {
		fputs(usage_mount, stdout);
		return 0;
	}
	static const struct option longopts[] = {
	    {"cache-dir", required_argument, NULL, 'C'},        {"cache-size", required_argument, NULL, 'S'},
	    {"flush-interval", required_argument, NULL, 'I'},   {"sync-interval", required_argument, NULL, 'Y'},
	    {"checkpoint-every", required_argument, NULL, 'K'}, {"trash-days", required_argument, NULL, 'T'},
	    {"parallel-fetches", required_argument, NULL, 'P'}, {NULL, 0, NULL, 0}};
	char cache_dir[PATH_MAX] = "", cache_size[64] = RFS_DEFAULT_CACHE_SIZE, fuse_opts[2048] = "";
	int foreground = 0, debug = 0, read_only = 0, c;
	int flush_ms = 1000, sync_ms = 1000, fetches = 0;
	long long checkpoint_every = 0, trash_seconds = 0;
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
		case 'T': {
			char *end;
			double days = strtod(optarg, &end);
			if (*end || days < 0)
				die("invalid --trash-days '%s': give days (0 turns the trash off), e.g. 1 or 0.5",
				    optarg);
			trash_seconds = days == 0 ? -1 : (long long)(days * 86400 + 0.5);
			if (trash_seconds == 0)
				trash_seconds = 1;
			break;
		}
		case 'P':
			fetches = parse_fetches(optarg);
			break;
		case 'K':
			checkpoint_every = atoll(optarg);
			if (checkpoint_every <= 0)
				die("invalid --checkpoint-every '%s': give a number of log records, e.g. 2000", optarg);
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
				sizeof(cache_size), &read_only, &fetches);
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
	/* a second daemon stacked on a live mount would hide the first, which then outlives its
	 * own unmount */
	if (is_roamfs_mount(d.mountpoint) == 1 && access("/proc/self/mounts", R_OK) == 0)
		die("'%s' is already a roamfs mount; unmount it first ('roamfs umount %s') or use another "
		    "mount point",
		    d.mountpoint, d.mountpoint);
	uint64_t csize;
	if (rfs_parse_size(cache_size, &csize) < 0 || csize < (1u << 20))
		die("invalid cache size '%s': give bytes with an optional K/M/G/T suffix, at least 1M", cache_size);
	if (!strncmp(store, "file://", 7) || !strstr(store, "://")) {
		char p[PATH_MAX];
		snprintf(p, sizeof(p), "%s", !strncmp(store, "file://", 7) ? store + 7 : store);
		char *query = strchr(p, '?');
		if (query)
			*query++ = 0;
		char real[PATH_MAX];
		if (!realpath(p, real))
			die("store directory '%s' is not usable: %s (create it and run 'roamfs format' first)", p,
			    strerror(errno));
		snprintf(d.store, sizeof(d.store), "file://%s%s%s", real, query ? "?" : "", query ? query : "");
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
	snprintf(d.socket, sizeof(d.socket), "%s/control.sock", d.cache_dir);
	if (strlen(d.socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		/* too long for a unix socket address: keep it next to the registry entry */
		snprintf(d.socket, sizeof(d.socket), "%.*s.sock", (int)(strlen(d.registry) - 6), d.registry);
	}

	rfs_log_level = debug ? LOG_DEBUG : LOG_INFO;
	char logp[PATH_MAX + 32];
	snprintf(logp, sizeof(logp), "%s/roamfs.log", d.cache_dir);
	rfs_log_open(logp, 1, 0);

	/* Fork before anything is opened: the daemon must own its SQLite locks (POSIX locks are
	 * not inherited, and a parent exiting drops them: another reader of meta.db would then
	 * delete the WAL under the daemon). */
	int ready_fd = foreground ? -1 : daemon_fork();
	struct rfs_fs_config cfg = {.store_url = d.store,
				    .cache_dir = d.cache_dir,
				    .cache_size = csize,
				    .flush_interval_ms = flush_ms,
				    .sync_interval_ms = sync_ms,
				    .read_only = read_only,
				    .snapshot_every = checkpoint_every,
				    .trash_seconds = trash_seconds,
				    .fetch_threads = fetches};
	char err[1024] = "";
	int rc = rfs_fs_open(&cfg, &d.fs, err, sizeof(err));
	if (rc < 0)
		die("%s", err[0] ? err : strerror(-rc));
	/* From here on show the store as the store prints itself: secrets in the URL are masked
	 * (it ends up in /proc/mounts, the registry and the log) */
	snprintf(d.store, sizeof(d.store), "%s", rfs_fs_store_url(d.fs));
	char fsname[PATH_MAX + 16];
	snprintf(fsname, sizeof(fsname), "roamfs:%s", d.store);
	for (char *p = fsname; *p; p++)
		if (*p == ',')
			*p = '_'; /* a comma would split the -o list */
	struct rfs_mount_opts mo = {.mountpoint = d.mountpoint,
				    .fsname = fsname,
				    .fuse_opts = fuse_opts,
				    .ready_fd = ready_fd,
				    .fuse_debug = 0,
				    .attr_timeout = 10.0,
				    .max_threads = 16};
	rc = rfs_fuse_run(d.fs, &mo, daemon_started, &d, err, sizeof(err));
	if (rc < 0) {
		rfs_fs_close(d.fs);
		die("%s", err);
	}
	RFS_LOG(LOG_NOTICE, "unmounted %s; uploading what is left", d.mountpoint);
	rfs_control_stop(d.control);
	int crc = rfs_fs_close(d.fs);
	char path[PATH_MAX + 32];
	snprintf(path, sizeof(path), "%s/last-exit", d.cache_dir);
	const char *status =
	    crc == 0 ? "clean\n" : "pending: some data or metadata could not be uploaded; see roamfs.log\n";
	if (rfs_write_file_atomic(path, status, strlen(status), 0644) < 0)
		RFS_LOG(LOG_ERR, "cannot record the unmount outcome in '%s'", path);
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

/* Whether /proc/self/mounts lists mp as a roamfs mount (mount escapes spaces as \040). */
static int is_roamfs_mount(const char *mp)
{
	FILE *f = fopen("/proc/self/mounts", "re");
	if (!f)
		return 1; /* cannot tell: let the unmount itself decide */
	char line[8192];
	int found = 0;
	while (!found && fgets(line, sizeof(line), f)) {
		char dev[4096], dir[4096], type[256];
		if (sscanf(line, "%4095s %4095s %255s", dev, dir, type) != 3)
			continue;
		char un[4096];
		size_t j = 0;
		for (size_t i = 0; dir[i] && j < sizeof(un) - 1; i++) {
			if (dir[i] == '\\' && dir[i + 1] >= '0' && dir[i + 1] <= '7' && dir[i + 2] && dir[i + 3]) {
				un[j++] = (char)((dir[i + 1] - '0') * 64 + (dir[i + 2] - '0') * 8 + (dir[i + 3] - '0'));
				i += 3;
			} else {
				un[j++] = dir[i];
			}
		}
		un[j] = 0;
		found = !strcmp(un, mp) && !strcmp(type, "fuse.roamfs");
	}
	fclose(f);
	return found;
}

/* Alive and not a zombie waiting for its (re)parent to reap it. */
static int process_alive(int pid)
{
	if (kill(pid, 0) < 0)
		return 0;
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *p = strrchr(buf, ')');
	return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
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
	if (!is_roamfs_mount(mp))
		die("'%s' is not a mounted roamfs file system (see 'mount -t fuse.roamfs')", mp);
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
	while (process_alive(pid)) {
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
	if (rfs_read_file(path, &status, NULL) < 0) {
		fprintf(stderr,
			"roamfs: error: unmounted '%s', but its daemon exited without reporting whether "
			"everything was uploaded; see %s/roamfs.log, and mount again with the same cache dir to "
			"finish any pending uploads\n",
			mp, cache);
		return 1;
	}
	if (strncmp(status, "clean", 5)) {
		fprintf(stderr, "roamfs: error: unmounted '%s', but %s", mp, status);
		free(status);
		return 1;
	}
	free(status);
	printf("unmounted %s; everything is in the store\n", mp);
	return 0;
}

/* ---------- talking to running mounts ---------- */

struct mount_ref {
	char mountpoint[PATH_MAX];
	char socket[PATH_MAX];
	int pid;
};

static int parse_registry(const char *path, struct mount_ref *m)
{
	char *body;
	if (rfs_read_file(path, &body, NULL) < 0)
		return -ENOENT;
	memset(m, 0, sizeof(*m));
	char *save = NULL;
	for (char *line = strtok_r(body, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "pid=", 4))
			m->pid = atoi(line + 4);
		else if (!strncmp(line, "mountpoint=", 11))
			snprintf(m->mountpoint, sizeof(m->mountpoint), "%s", line + 11);
		else if (!strncmp(line, "socket=", 7))
			snprintf(m->socket, sizeof(m->socket), "%s", line + 7);
	}
	free(body);
	return m->pid > 0 && m->socket[0] && kill(m->pid, 0) == 0 ? 0 : -ESRCH;
}

/* Mounts to act on: the one at mp_arg, or every live one. Returns the count (die()s on none). */
static int find_mounts(const char *mp_arg, struct mount_ref **out)
{
	struct mount_ref *list = NULL;
	int n = 0;
	if (mp_arg) {
		char mp[PATH_MAX], path[PATH_MAX];
		if (!realpath(mp_arg, mp))
			die("'%s' is not usable: %s", mp_arg, strerror(errno));
		registry_path(mp, path, sizeof(path));
		list = calloc(1, sizeof(*list));
		if (!list)
			die("out of memory");
		if (parse_registry(path, list) < 0)
			die("no running roamfs mount at '%s' (mount it with 'roamfs mount STORE %s')", mp, mp_arg);
		n = 1;
	} else {
		char dir[PATH_MAX];
		registry_dir(dir, sizeof(dir));
		DIR *d = opendir(dir);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			size_t l = strlen(de->d_name);
			if (l < 7 || strcmp(de->d_name + l - 6, ".mount"))
				continue;
			struct mount_ref m = {0};
			char path[PATH_MAX];
			snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
			if (parse_registry(path, &m) == -ESRCH && m.pid > 0 && kill(m.pid, 0) < 0 && errno == ESRCH) {
				unlink(path); /* left by a daemon that was killed: nobody serves it */
				continue;
			}
			if (m.pid <= 0 || !m.socket[0] || kill(m.pid, 0) < 0)
				continue;
			struct mount_ref *nl = realloc(list, (size_t)(n + 1) * sizeof(*nl));
			if (!nl)
				die("out of memory");
			list = nl;
			list[n++] = m;
		}
		if (d)
			closedir(d);
		if (!n)
			die("no running roamfs mounts found (in %s)", dir);
	}
	*out = list;
	return n;
}

/* Sends one command; returns the reply (malloc'd, NUL-terminated) or NULL with errno set. */
static char *ctl_request(const char *sock, const char *cmd, int timeout_ms)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		errno = e;
		return NULL;
	}
	char line[256];
	int n = snprintf(line, sizeof(line), "%s\n", cmd);
	if (write(fd, line, (size_t)n) != n) {
		close(fd);
		return NULL;
	}
	struct rfs_buf b = {0};
	b.cap_limit = 4 << 20;
	int64_t deadline = timeout_ms > 0 ? rfs_monotonic_ms() + timeout_ms : 0;
	for (;;) {
		struct pollfd p = {fd, POLLIN, 0};
		int wait = deadline ? (int)(deadline - rfs_monotonic_ms()) : -1;
		if (deadline && wait <= 0) {
			errno = ETIMEDOUT;
			break;
		}
		if (poll(&p, 1, wait) <= 0) {
			if (errno == EINTR)
				continue;
			errno = ETIMEDOUT;
			break;
		}
		char chunk[4096];
		ssize_t r = read(fd, chunk, sizeof(chunk));
		if (r <= 0) {
			close(fd);
			if (rfs_buf_append(&b, "", 1) < 0) {
				rfs_buf_free(&b);
				return NULL;
			}
			return (char *)b.data;
		}
		if (rfs_buf_append(&b, chunk, (size_t)r) < 0)
			break;
	}
	close(fd);
	rfs_buf_free(&b);
	return NULL;
}

/* Value of "key=" in a status reply (points into a static copy; empty if missing). */
static const char *kv(const char *reply, const char *key)
{
	static char val[2048];
	size_t kl = strlen(key);
	for (const char *p = reply; p && *p;) {
		const char *e = strchr(p, '\n');
		size_t ll = e ? (size_t)(e - p) : strlen(p);
		if (ll > kl && !strncmp(p, key, kl) && p[kl] == '=') {
			size_t vl = ll - kl - 1 < sizeof(val) - 1 ? ll - kl - 1 : sizeof(val) - 1;
			memcpy(val, p + kl + 1, vl);
			val[vl] = 0;
			return val;
		}
		p = e ? e + 1 : NULL;
	}
	val[0] = 0;
	return val;
}

static long long kvi(const char *reply, const char *key)
{
	return atoll(kv(reply, key));
}

static void human_bytes(double v, char *buf, size_t len)
{
	const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int i = 0;
	while (v >= 1024 && i < 4) {
		v /= 1024;
		i++;
	}
	snprintf(buf, len, i ? "%.1f %s" : "%.0f %s", v, u[i]);
}

enum { STATE_SYNCED = 0, STATE_PENDING = 1, STATE_ERROR = 2 };

static int mount_state(const char *r)
{
	if (kv(r, "last_error")[0] || kvi(r, "head_seq") < 0)
		return STATE_ERROR;
	if (kvi(r, "pending_changes") || kvi(r, "dirty_bytes") || kvi(r, "dirty_files") ||
	    kvi(r, "head_seq") != kvi(r, "applied_seq"))
		return STATE_PENDING;
	return STATE_SYNCED;
}

/* Public list prices of AWS S3 Standard (us-east-1): PUT/LIST $0.005 per 1,000,
 * GET/HEAD $0.0004 per 1,000. An estimate; OSS/OBS prices are of the same order. */
static double cost_estimate(const char *r)
{
	if (!strncmp(kv(r, "store"), "file://", 7))
		return 0;
	return (kvi(r, "req_put") + kvi(r, "req_list")) * 0.005 / 1000 +
	       (kvi(r, "req_get") + kvi(r, "req_head")) * 0.0004 / 1000;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static const char *const json_strings[] = {"mountpoint", "store", "host_id", "cache_dir", "last_error", NULL};
static const char *const json_numbers[] = {
    "pid",          "read_only",   "block_size",     "applied_seq",   "head_seq",   "pending_changes",
    "dirty_files",  "dirty_bytes", "oldest_dirty_s", "last_commit_s", "cache_used", "cache_limit",
    "cache_blocks", "cache_hits",  "cache_misses",   "req_get",       "req_put",    "req_list",
    "req_head",     "req_delete",  "bytes_in",       "bytes_out",     "conflicts",  NULL};

static void print_json(const char *r, int state)
{
	static const char *const names[] = {"synced", "pending", "error"};
	printf("    {\"state\": \"%s\"", names[state]);
	for (int i = 0; json_strings[i]; i++) {
		printf(", \"%s\": ", json_strings[i]);
		json_str(kv(r, json_strings[i]));
	}
	for (int i = 0; json_numbers[i]; i++)
		printf(", \"%s\": %lld", json_numbers[i], kvi(r, json_numbers[i]));
	printf(", \"estimated_cost_usd\": %.6f", cost_estimate(r));
	printf(", \"hosts\": [");
	int first = 1;
	for (const char *p = r; p && *p;) {
		const char *e = strchr(p, '\n');
		if (!strncmp(p, "host=", 5)) {
			char line[4096];
			size_t ll = e ? (size_t)(e - p) : strlen(p);
			snprintf(line, sizeof(line), "%.*s", (int)(ll - 5), p + 5);
			printf("%s", first ? "" : ", ");
			json_str(line);
			first = 0;
		}
		p = e ? e + 1 : NULL;
	}
	printf("], \"recent_conflicts\": [");
	first = 1;
	for (const char *p = r; p && *p;) {
		const char *e = strchr(p, '\n');
		if (!strncmp(p, "conflict=", 9)) {
			char line[4096];
			size_t ll = e ? (size_t)(e - p) : strlen(p);
			snprintf(line, sizeof(line), "%.*s", (int)(ll - 9), p + 9);
			printf("%s", first ? "" : ", ");
			json_str(line);
			first = 0;
		}
		p = e ? e + 1 : NULL;
	}
	printf("]}");
}

static void print_human(const char *r, int state)
{
	static const char *const names[] = {"all synced", "PENDING", "ERROR"};
	char b1[32], b2[32], b3[32], b4[32];
	printf("%s  [%s]\n", kv(r, "mountpoint"), names[state]);
	printf("  store     %.88s\n", kv(r, "store"));
	printf("  host      %-18s  log applied %lld / store head %lld  (lag %lld)\n", kv(r, "host_id"),
	       kvi(r, "applied_seq"), kvi(r, "head_seq"), kvi(r, "head_seq") - kvi(r, "applied_seq"));
	human_bytes((double)kvi(r, "dirty_bytes"), b1, sizeof(b1));
	long long lc = kvi(r, "last_commit_s");
	char when[32] = "none yet";
	if (lc >= 0)
		snprintf(when, sizeof(when), "%llds ago", lc);
	printf("  pending   %lld files, %s to upload (oldest %llds), %lld metadata changes; last commit %s\n",
	       kvi(r, "dirty_files"), b1, kvi(r, "oldest_dirty_s") < 0 ? 0 : kvi(r, "oldest_dirty_s"),
	       kvi(r, "pending_changes"), when);
	long long hits = kvi(r, "cache_hits"), misses = kvi(r, "cache_misses");
	human_bytes((double)kvi(r, "cache_used"), b1, sizeof(b1));
	human_bytes((double)kvi(r, "cache_limit"), b2, sizeof(b2));
	printf("  cache     %s of %s, %lld blocks, hit ratio %.0f%%\n", b1, b2, kvi(r, "cache_blocks"),
	       hits + misses ? 100.0 * (double)hits / (double)(hits + misses) : 0.0);
	human_bytes((double)kvi(r, "bytes_in"), b3, sizeof(b3));
	human_bytes((double)kvi(r, "bytes_out"), b4, sizeof(b4));
	printf("  requests  GET %lld  PUT %lld  LIST %lld  HEAD %lld  DELETE %lld; in %s, out %s\n", kvi(r, "req_get"),
	       kvi(r, "req_put"), kvi(r, "req_list"), kvi(r, "req_head"), kvi(r, "req_delete"), b3, b4);
	printf("  cost      ~$%.4f (estimate from AWS S3 Standard list prices)\n", cost_estimate(r));
	for (const char *p = r; p && *p;) {
		const char *e = strchr(p, '\n');
		size_t ll = e ? (size_t)(e - p) : strlen(p);
		if (!strncmp(p, "host=", 5))
			printf("  peer      %.*s\n", (int)(ll - 5 > 88 ? 88 : ll - 5), p + 5);
		p = e ? e + 1 : NULL;
	}
	if (kvi(r, "conflicts"))
		printf("  conflicts %lld this session (see --json for the latest)\n", kvi(r, "conflicts"));
	if (kv(r, "last_error")[0])
		printf("  error     %.88s\n", kv(r, "last_error"));
}

static const char usage_status[] =
    "usage: roamfs status [MOUNTPOINT] [--json]\n"
    "\n"
    "Shows, for each mount (or the one given): log position vs the store, data and metadata not\n"
    "yet uploaded, cache use, requests made, an estimated request cost, peers, conflicts, errors.\n"
    "Exit status: 0 all synced, 1 something pending, 2 an error (or a mount not answering).\n"
    "  --json                machine-readable output (documented in docs/cli.md)\n";

static int cmd_status(int argc, char **argv)
{
	if (wants_help(argc, argv)) {
		fputs(usage_status, stdout);
		return 0;
	}
	int json = 0;
	const char *mp = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!mp && argv[i][0] != '-')
			mp = argv[i];
		else {
			fputs(usage_status, stderr);
			return 2;
		}
	}
	struct mount_ref *m;
	int n = find_mounts(mp, &m);
	int worst = STATE_SYNCED;
	if (json)
		printf("{\"mounts\": [\n");
	for (int i = 0; i < n; i++) {
		char *r = ctl_request(m[i].socket, "status", 30000);
		int st;
		if (!r) {
			char msg[PATH_MAX + 128];
			snprintf(msg, sizeof(msg), "daemon pid %d does not answer on %s: %s", m[i].pid, m[i].socket,
				 strerror(errno));
			size_t need = strlen(msg) + strlen(m[i].mountpoint) + 64;
			r = malloc(need);
			if (!r)
				die("out of memory");
			snprintf(r, need, "mountpoint=%s\nlast_error=%s\nhead_seq=-1\n", m[i].mountpoint, msg);
		}
		st = mount_state(r);
		if (st > worst)
			worst = st;
		if (json) {
			print_json(r, st);
			printf("%s\n", i + 1 < n ? "," : "");
		} else {
			print_human(r, st);
		}
		free(r);
	}
	if (json)
		printf("]}\n");
	free(m);
	return worst;
}

static const char usage_sync[] =
    "usage: roamfs sync [MOUNTPOINT] [--wait] [--timeout SECONDS]\n"
    "\n"
    "Uploads every written file and commits all metadata now.\n"
    "  --wait                block until nothing is pending, with progress (default: start and return)\n"
    "  --timeout SECONDS     with --wait, give up after this long (exit 1); default: no limit\n";

static int cmd_sync(int argc, char **argv)
{
	if (wants_help(argc, argv)) {
		fputs(usage_sync, stdout);
		return 0;
	}
	int wait = 0;
	long timeout_s = 0;
	const char *mp = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--wait"))
			wait = 1;
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout_s = atol(argv[++i]);
		else if (!mp && argv[i][0] != '-')
			mp = argv[i];
		else {
			fputs(usage_sync, stderr);
			return 2;
		}
	}
	struct mount_ref *m;
	int n = find_mounts(mp, &m);
	int rc = 0;
	int tty = isatty(STDERR_FILENO);
	for (int i = 0; i < n; i++) {
		if (!wait) {
			char *r = ctl_request(m[i].socket, "kick", 10000);
			if (!r) {
				fprintf(stderr, "roamfs: error: %s does not answer: %s\n", m[i].mountpoint,
					strerror(errno));
				rc = 2;
				continue;
			}
			printf("%s: upload started ('roamfs status' shows progress)\n", m[i].mountpoint);
			free(r);
			continue;
		}
		/* The sync request blocks until done; a second connection reports progress. */
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", m[i].socket);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || write(fd, "sync\n", 5) != 5) {
			fprintf(stderr, "roamfs: error: %s does not answer: %s\n", m[i].mountpoint, strerror(errno));
			if (fd >= 0)
				close(fd);
			rc = 2;
			continue;
		}
		int64_t start = rfs_monotonic_ms();
		long long first_bytes = -1;
		char reply[512] = "";
		size_t got = 0;
		for (;;) {
			struct pollfd p = {fd, POLLIN, 0};
			int pr = poll(&p, 1, 500);
			if (pr > 0) {
				ssize_t r = read(fd, reply + got, sizeof(reply) - 1 - got);
				if (r > 0) {
					got += (size_t)r;
					continue;
				}
				break; /* EOF: the daemon answered */
			}
			double el = (double)(rfs_monotonic_ms() - start) / 1000.0;
			if (timeout_s && el >= (double)timeout_s) {
				fprintf(stderr, "%sroamfs: error: %s: still pending after %lds\n", tty ? "\n" : "",
					m[i].mountpoint, timeout_s);
				rc = rc > 1 ? rc : 1;
				break;
			}
			char *st = ctl_request(m[i].socket, "status", 5000);
			if (!st)
				continue;
			long long bytes = kvi(st, "dirty_bytes"), files = kvi(st, "dirty_files");
			if (first_bytes < 0)
				first_bytes = bytes;
			double rate = el > 0 ? (double)(first_bytes - bytes) / el : 0;
			char bb[32], rb[32];
			human_bytes((double)bytes, bb, sizeof(bb));
			human_bytes(rate > 0 ? rate : 0, rb, sizeof(rb));
			char eta[32] = "?";
			if (rate > 0)
				snprintf(eta, sizeof(eta), "%.0fs", (double)bytes / rate);
			if (tty) {
				int width = 30,
				    done = first_bytes > 0 ? (int)(width * (first_bytes - bytes) / first_bytes) : 0;
				fprintf(stderr, "\r[%.*s%*s] %s left, %lld files, %lld changes, %s/s, ETA %s   ", done,
					"##############################", width - done, "", bb, files,
					kvi(st, "pending_changes"), rb, eta);
			} else {
				fprintf(stderr, "sync %s: %s left, %lld files, %lld changes, %s/s\n", m[i].mountpoint,
					bb, files, kvi(st, "pending_changes"), rb);
			}
			free(st);
		}
		close(fd);
		reply[got] = 0;
		if (tty)
			fprintf(stderr, "\n");
		if (!strncmp(reply, "ok", 2)) {
			printf("%s: everything is in the store (%.1fs)\n", m[i].mountpoint,
			       (double)(rfs_monotonic_ms() - start) / 1000.0);
		} else if (reply[0]) {
			fprintf(stderr, "roamfs: error: %s: sync failed: %s", m[i].mountpoint,
				strncmp(reply, "error=", 6) ? reply : reply + 6);
			rc = 2;
		} else if (rc == 0) {
			rc = 2;
		}
	}
	free(m);
	return rc;
}

static const char usage_warmup[] =
    "usage: roamfs warmup PATH... [--jobs N]\n"
    "\n"
    "Brings every block of the files under PATH into the local SSD cache, N fetches in parallel\n"
    "(default 16), with a progress bar. Blocks already cached cost nothing, so a second run is\n"
    "instant. Reports what did not fit in the cache. Exit 0 when everything is cached.\n";

struct ino_list {
	uint64_t *v;
	size_t n, cap;
	dev_t dev;
};

static struct ino_list warm_inos;

static int warm_visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (type != FTW_F || !S_ISREG(st->st_mode) || st->st_dev != warm_inos.dev)
		return 0;
	if (warm_inos.n == warm_inos.cap) {
		size_t nc = warm_inos.cap ? warm_inos.cap * 2 : 1024;
		uint64_t *nv = realloc(warm_inos.v, nc * sizeof(*nv));
		if (!nv)
			return 1;
		warm_inos.v = nv;
		warm_inos.cap = nc;
	}
	warm_inos.v[warm_inos.n++] = st->st_ino;
	return 0;
}

static int cmd_warmup(int argc, char **argv)
{
	if (wants_help(argc, argv)) {
		fputs(usage_warmup, stdout);
		return 0;
	}
	int jobs = 16;
	const char *paths[256];
	int np = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--jobs") && i + 1 < argc) {
			jobs = atoi(argv[++i]);
			if (jobs < 1 || jobs > 32)
				die("invalid --jobs '%s': give 1 to 32", argv[i]);
		} else if (argv[i][0] != '-' && np < 256) {
			paths[np++] = argv[i];
		} else {
			fputs(usage_warmup, stderr);
			return 2;
		}
	}
	if (!np) {
		fputs(usage_warmup, stderr);
		return 2;
	}
	struct mount_ref *all;
	int nm = find_mounts(NULL, &all);
	char real[PATH_MAX];
	if (!realpath(paths[0], real))
		die("'%s' is not usable: %s", paths[0], strerror(errno));
	struct mount_ref *m = NULL;
	size_t best = 0;
	for (int i = 0; i < nm; i++) {
		size_t l = strlen(all[i].mountpoint);
		if (!strncmp(real, all[i].mountpoint, l) && (real[l] == '/' || real[l] == 0) && l > best) {
			m = &all[i];
			best = l;
		}
	}
	if (!m)
		die("'%s' is not inside a running roamfs mount", paths[0]);
	struct stat mst;
	if (stat(m->mountpoint, &mst) < 0)
		die("cannot stat '%s': %s", m->mountpoint, strerror(errno));
	warm_inos.dev = mst.st_dev;
	for (int i = 0; i < np; i++)
		if (nftw(paths[i], warm_visit, 64, FTW_PHYS) < 0)
			die("cannot walk '%s': %s", paths[i], strerror(errno));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", m->socket);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		die("the daemon of '%s' does not answer: %s", m->mountpoint, strerror(errno));
	FILE *w = fdopen(dup(fd), "w");
	if (!w)
		die("out of memory");
	fprintf(w, "warmup %d\n", jobs);
	for (size_t i = 0; i < warm_inos.n; i++)
		fprintf(w, "%llu\n", (unsigned long long)warm_inos.v[i]);
	fprintf(w, ".\n");
	fclose(w);
	int tty = isatty(STDERR_FILENO);
	int64_t start = rfs_monotonic_ms();
	FILE *r = fdopen(fd, "r");
	char line[512], final[512] = "";
	while (r && fgets(line, sizeof(line), r)) {
		unsigned long long db, tb, dbytes, tbytes;
		if (sscanf(line, "progress=%llu %llu %llu %llu", &db, &tb, &dbytes, &tbytes) == 4) {
			double el = (double)(rfs_monotonic_ms() - start) / 1000.0;
			char a[32], b[32], c[32];
			human_bytes((double)dbytes, a, sizeof(a));
			human_bytes((double)tbytes, b, sizeof(b));
			human_bytes(el > 0 ? (double)dbytes / el : 0, c, sizeof(c));
			int width = 30, done = tb ? (int)(width * db / tb) : width;
			if (tty)
				fprintf(stderr, "\r[%.*s%*s] %s of %s, %llu/%llu blocks, %s/s   ", done,
					"##############################", width - done, "", a, b, db, tb, c);
			else
				fprintf(stderr, "warmup: %s of %s, %llu/%llu blocks\n", a, b, db, tb);
		} else {
			snprintf(final, sizeof(final), "%s", line);
		}
	}
	if (r)
		fclose(r);
	if (tty)
		fputc('\n', stderr);
	free(all);
	unsigned long long blocks, bytes, cached, fetched, notfit, failed;
	if (sscanf(final,
		   "ok blocks=%llu bytes=%llu already_cached=%llu fetched=%llu not_fitting_bytes=%llu failed=%llu",
		   &blocks, &bytes, &cached, &fetched, &notfit, &failed) != 6)
		die("warmup failed: %s", final[0] ? final : "the daemon closed the connection");
	char b1[32], b2[32];
	human_bytes((double)bytes, b1, sizeof(b1));
	printf("warmup: %zu files, %llu blocks (%s): %llu were cached already, %llu fetched in %.1fs\n", warm_inos.n,
	       blocks, b1, cached, fetched, (double)(rfs_monotonic_ms() - start) / 1000.0);
	free(warm_inos.v);
	if (notfit) {
		human_bytes((double)notfit, b2, sizeof(b2));
		printf("warmup: %s did not fit in the cache; raise --cache-size to keep all of it\n", b2);
		return 1;
	}
	if (failed) {
		printf("warmup: %llu blocks could not be fetched (see roamfs.log)\n", failed);
		return 1;
	}
	return 0;
}

/* mount(8) runs "/sbin/mount.roamfs STORE MOUNTPOINT [-sfnv] [-o OPTIONS]" for
 * `mount -t roamfs` and fstab lines; translate it to `roamfs mount`. */
static int mount_helper(int argc, char **argv)
{
	const char *store = NULL, *mp = NULL, *opts = NULL;
	int fake = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-o") && i + 1 < argc)
			opts = argv[++i];
		else if (argv[i][0] == '-')
			fake |= strchr(argv[i] + 1, 'f') != NULL; /* -s (sloppy), -n (no mtab), -v: nothing */
		else if (!store)
			store = argv[i];
		else if (!mp)
			mp = argv[i];
	}
	if (!store || !mp) {
		fprintf(stderr,
			"usage: mount.roamfs STORE MOUNTPOINT [-o cache-dir=DIR,cache-size=SIZE,allow_other,...]\n");
		return 2;
	}
	if (fake)
		return 0; /* mount -f: everything but the mount itself, and there is nothing else */
	char *nargv[8];
	int n = 0;
	nargv[n++] = "mount";
	nargv[n++] = (char *)store;
	nargv[n++] = (char *)mp;
	if (opts) {
		nargv[n++] = "-o";
		nargv[n++] = (char *)opts;
	}
	nargv[n] = NULL;
	return cmd_mount(n, nargv);
}

int main(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	if (!strcmp(base, "mount.roamfs") || !strcmp(base, "mount.fuse.roamfs"))
		return mount_helper(argc, argv);
	if (argc >= 3 && !strcmp(argv[1], "help") && !strcmp(argv[2], "--all")) {
		/* every command's --help, in order: docs/cli-reference.md is generated from this */
		static const char *const cmds[] = {"format", "mount",  "umount", "status",
						   "sync",   "warmup", "fsck",   "gc"};
		fputs(usage_main, stdout);
		for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
			char *hargv[] = {(char *)cmds[i], "--help", NULL};
			printf("\n## roamfs %s\n\n", cmds[i]);
			fflush(stdout);
			if (!strcmp(cmds[i], "format"))
				cmd_format(2, hargv);
			else if (!strcmp(cmds[i], "mount"))
				cmd_mount(2, hargv);
			else if (!strcmp(cmds[i], "umount"))
				cmd_umount(2, hargv);
			else if (!strcmp(cmds[i], "status"))
				cmd_status(2, hargv);
			else if (!strcmp(cmds[i], "sync"))
				cmd_sync(2, hargv);
			else if (!strcmp(cmds[i], "warmup"))
				cmd_warmup(2, hargv);
			else if (!strcmp(cmds[i], "fsck"))
				rfs_cmd_fsck(2, hargv);
			else
				rfs_cmd_gc(2, hargv);
			fflush(stdout);
		}
		return 0;
	}
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
	if (!strcmp(cmd, "status"))
		return cmd_status(argc - 1, argv + 1);
	if (!strcmp(cmd, "sync"))
		return cmd_sync(argc - 1, argv + 1);
	if (!strcmp(cmd, "warmup"))
		return cmd_warmup(argc - 1, argv + 1);
	if (!strcmp(cmd, "fsck"))
		return rfs_cmd_fsck(argc - 1, argv + 1);
	if (!strcmp(cmd, "gc"))
		return rfs_cmd_gc(argc - 1, argv + 1);
	if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
		printf("roamfs %s\n", RFS_VERSION);
		return 0;
	}
	fprintf(stderr, "roamfs: error: unknown command '%s'\n\n%s", cmd, usage_main);
	return 2;
}
