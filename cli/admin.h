/*
 * admin.h - the store maintenance commands of the `roamfs` CLI: fsck and gc.
 *
 * Each takes argc/argv with argv[0] the command name ("fsck", "gc"), prints what it finds on
 * stdout and failures on stderr, and returns the process exit status:
 *   fsck: 0 clean, 1 problems found (even when --repair fixed some), 2 could not run;
 *   gc:   0 done, 1 some deletes failed, 2 could not run.
 * The work itself is in sync/gc.c; this file parses options and prints.
 */
#ifndef RFS_CLI_ADMIN_H
#define RFS_CLI_ADMIN_H

int rfs_cmd_fsck(int argc, char **argv);
int rfs_cmd_gc(int argc, char **argv);

#endif
