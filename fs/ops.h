/*
 * ops.h - the FUSE front-end: the only module that speaks libfuse's low-level protocol.
 *
 * rfs_fuse_run() mounts the core filesystem at the mountpoint, calls started() (start
 * threads, write the pid file), then, with a ready_fd, detaches (stdio to /dev/null) and
 * writes one byte to ready_fd: 0 when the mount is live and started() succeeded, so the
 * waiting parent's exit status tells whether mounting worked. It serves requests on a
 * multithreaded session loop until the filesystem is unmounted or the daemon gets
 * SIGTERM/SIGINT/SIGHUP. Returns 0, or -errno with a message in err when mounting failed.
 * It does not fork: the caller forks before opening anything (cli/main.c, daemon_fork),
 * because a child does not inherit the parent's POSIX locks and SQLite's locks are those.
 */
#ifndef RFS_OPS_H
#define RFS_OPS_H

#include <stddef.h>

struct rfs_fs;

struct rfs_mount_opts {
	const char *mountpoint;
	const char *fsname;    /* shown in /proc/mounts */
	const char *fuse_opts; /* comma-separated -o options passed to the kernel/libfuse */
	int ready_fd;          /* -1 (foreground), or where to report readiness (see above) */
	int fuse_debug;
	double attr_timeout; /* seconds the kernel may cache attributes and entries */
	int max_threads;
};

int rfs_fuse_run(struct rfs_fs *fs, const struct rfs_mount_opts *o, int (*started)(void *arg), void *arg, char *err,
		 size_t errlen);

#endif
