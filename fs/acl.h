/*
 * acl.h - POSIX access control lists in their xattr form (system.posix_acl_access and
 * system.posix_acl_default: a little-endian u32 version 2, then {u16 tag, u16 perm, u32 id}
 * entries sorted by tag and id).
 *
 * With FUSE_POSIX_ACL the kernel enforces and caches ACLs (one GETXATTR per inode instead of
 * one per `ls -l` entry); the file system stores them, keeps the mode's permission bits in
 * sync with them and gives new files their directory's default ACL. These are the pure
 * parts of that (fs/namespace.c calls them): parse/serialize, the mode an ACL implies, chmod and
 * the create-time masking, each as the kernel's own posix_acl.c does it.
 *
 * Errors: rfs_acl_parse returns -EINVAL for a malformed or invalid list, -E2BIG for more
 * than RFS_ACL_MAX entries. Everything else cannot fail.
 */
#ifndef RFS_ACL_H
#define RFS_ACL_H

#include <stddef.h>
#include <stdint.h>

#define RFS_ACL_ACCESS "system.posix_acl_access"
#define RFS_ACL_DEFAULT "system.posix_acl_default"
#define RFS_ACL_MAX 1024

struct rfs_acl_entry {
	uint16_t tag, perm;
	uint32_t id;
};

struct rfs_acl {
	size_t n;
	struct rfs_acl_entry e[RFS_ACL_MAX];
};

/* 1 for the two ACL names, 0 otherwise. */
int rfs_acl_name(const char *name);
int rfs_acl_parse(const void *buf, size_t len, struct rfs_acl *acl);
size_t rfs_acl_size(const struct rfs_acl *acl);
/* Writes rfs_acl_size(acl) bytes to buf. */
void rfs_acl_write(const struct rfs_acl *acl, void *buf);
/* Sets the permission bits of *mode from acl; returns 0 when the ACL says no more than the
 * mode (it need not be stored), 1 when it is extended (named users/groups, a mask). */
int rfs_acl_equiv_mode(const struct rfs_acl *acl, uint32_t *mode);
/* chmod on a file with an access ACL: owner, mask (or owning group) and other take the
 * new mode's bits. */
void rfs_acl_chmod(struct rfs_acl *acl, uint32_t mode);
/* A new node under a directory with a default ACL: acl (a copy of that default) is masked
 * by the requested mode and *mode by acl. Returns like rfs_acl_equiv_mode. */
int rfs_acl_create_masq(struct rfs_acl *acl, uint32_t *mode);

#endif
