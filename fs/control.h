/*
 * control.h - the daemon's control socket, how the `roamfs` CLI talks to a running mount.
 *
 * A unix stream socket CACHE/control.sock, mode 0600 (the mounting user or root only).
 * Protocol: the client sends one command line; the daemon answers with text lines and closes.
 *   "status"  -> "key=value" lines (see rfs_control_status_keys in control.c), then
 *                "host=<id> <heartbeat fields>" and "conflict=<ns> <text>" lines
 *   "sync"    -> flushes every dirty file and commits all metadata, then "ok" or "error=<msg>"
 *   "kick"    -> starts a flush and a commit without waiting, "ok"
 * Each connection is served on its own thread, so `status` answers while a `sync` runs.
 *
 * Calling sequence: rfs_control_start() after the mount is live and threads run;
 * rfs_control_stop() before rfs_fs_close() (it waits for connections in progress).
 */
#ifndef RFS_CONTROL_H
#define RFS_CONTROL_H

struct rfs_fs;
struct rfs_control;

int rfs_control_start(struct rfs_fs *fs, const char *sock_path, const char *mountpoint, struct rfs_control **out);
void rfs_control_stop(struct rfs_control *c);

#endif
