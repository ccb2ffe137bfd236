#include "fs/acl.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#define ACL_VERSION 2u
#define TAG_USER_OBJ 0x01
#define TAG_USER 0x02
#define TAG_GROUP_OBJ 0x04
#define TAG_GROUP 0x08
#define TAG_MASK 0x10
#define TAG_OTHER 0x20

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

int rfs_acl_name(const char *name)
{
	return !strcmp(name, RFS_ACL_ACCESS) || !strcmp(name, RFS_ACL_DEFAULT);
}

/* The rules of the kernel's posix_acl_valid(): one owner, owning group and other entry, a
 * mask when there are named entries, named entries sorted and unique, perms within rwx. */
static int acl_valid(const struct rfs_acl *acl)
{
	int user_obj = 0, group_obj = 0, other = 0, mask = 0, named = 0;
	for (size_t i = 0; i < acl->n; i++) {
		const struct rfs_acl_entry *e = &acl->e[i];
		if (e->perm & ~7u)
			return -EINVAL;
		if (i && (e->tag < acl->e[i - 1].tag || (e->tag == acl->e[i - 1].tag && e->id <= acl->e[i - 1].id)))
			return -EINVAL;
		switch (e->tag) {
		case TAG_USER_OBJ:
			user_obj++;
			break;
		case TAG_GROUP_OBJ:
			group_obj++;
			break;
		case TAG_OTHER:
			other++;
			break;
		case TAG_MASK:
			mask++;
			break;
		case TAG_USER:
		case TAG_GROUP:
			named++;
			break;
		default:
			return -EINVAL;
		}
	}
	if (user_obj != 1 || group_obj != 1 || other != 1 || mask > 1 || (named && !mask))
		return -EINVAL;
	return 0;
}

int rfs_acl_parse(const void *buf, size_t len, struct rfs_acl *acl)
{
	const uint8_t *p = buf;
	if (len < 4 || (len - 4) % 8 || get_le32(p) != ACL_VERSION)
		return -EINVAL;
	size_t n = (len - 4) / 8;
	if (n > RFS_ACL_MAX)
		return -E2BIG;
	acl->n = n;
	for (size_t i = 0; i < n; i++) {
		const uint8_t *q = p + 4 + 8 * i;
		acl->e[i].tag = (uint16_t)(q[0] | q[1] << 8);
		acl->e[i].perm = (uint16_t)(q[2] | q[3] << 8);
		acl->e[i].id = get_le32(q + 4);
	}
	return acl_valid(acl);
}

size_t rfs_acl_size(const struct rfs_acl *acl)
{
	return 4 + 8 * acl->n;
}

void rfs_acl_write(const struct rfs_acl *acl, void *buf)
{
	uint8_t *p = buf;
	put_le32(p, ACL_VERSION);
	for (size_t i = 0; i < acl->n; i++) {
		uint8_t *q = p + 4 + 8 * i;
		q[0] = (uint8_t)acl->e[i].tag;
		q[1] = (uint8_t)(acl->e[i].tag >> 8);
		q[2] = (uint8_t)acl->e[i].perm;
		q[3] = (uint8_t)(acl->e[i].perm >> 8);
		put_le32(q + 4, acl->e[i].id);
	}
}

int rfs_acl_equiv_mode(const struct rfs_acl *acl, uint32_t *mode)
{
	uint32_t m = 0;
	int extended = 0;
	for (size_t i = 0; i < acl->n; i++) {
		const struct rfs_acl_entry *e = &acl->e[i];
		switch (e->tag) {
		case TAG_USER_OBJ:
			m |= (e->perm & 7u) << 6;
			break;
		case TAG_GROUP_OBJ:
			m |= (e->perm & 7u) << 3;
			break;
		case TAG_OTHER:
			m |= e->perm & 7u;
			break;
		case TAG_MASK:
			/* with a mask, the group class bits are the mask's (it sorts after the
			 * owning group, so it overrides it) */
			m = (m & ~(7u << 3)) | (e->perm & 7u) << 3;
			extended = 1;
			break;
		default:
			extended = 1;
			break;
		}
	}
	*mode = (*mode & ~0777u) | m;
	return extended;
}

void rfs_acl_chmod(struct rfs_acl *acl, uint32_t mode)
{
	struct rfs_acl_entry *group_obj = NULL, *mask = NULL;
	for (size_t i = 0; i < acl->n; i++) {
		struct rfs_acl_entry *e = &acl->e[i];
		if (e->tag == TAG_USER_OBJ)
			e->perm = (uint16_t)((mode >> 6) & 7u);
		else if (e->tag == TAG_OTHER)
			e->perm = (uint16_t)(mode & 7u);
		else if (e->tag == TAG_GROUP_OBJ)
			group_obj = e;
		else if (e->tag == TAG_MASK)
			mask = e;
	}
	struct rfs_acl_entry *g = mask ? mask : group_obj;
	if (g)
		g->perm = (uint16_t)((mode >> 3) & 7u);
}

int rfs_acl_create_masq(struct rfs_acl *acl, uint32_t *mode)
{
	struct rfs_acl_entry *group_obj = NULL, *mask = NULL;
	uint32_t m = *mode;
	int extended = 0;
	for (size_t i = 0; i < acl->n; i++) {
		struct rfs_acl_entry *e = &acl->e[i];
		switch (e->tag) {
		case TAG_USER_OBJ:
			e->perm &= (uint16_t)((m >> 6) & 7u);
			m &= ((uint32_t)e->perm << 6) | ~(uint32_t)S_IRWXU;
			break;
		case TAG_USER:
		case TAG_GROUP:
			extended = 1;
			break;
		case TAG_GROUP_OBJ:
			group_obj = e;
			break;
		case TAG_MASK:
			mask = e;
			extended = 1;
			break;
		case TAG_OTHER:
			e->perm &= (uint16_t)(m & 7u);
			m &= (uint32_t)e->perm | ~(uint32_t)S_IRWXO;
			break;
		default:
			break;
		}
	}
	struct rfs_acl_entry *g = mask ? mask : group_obj;
	if (g) {
		g->perm &= (uint16_t)((m >> 3) & 7u);
		m &= ((uint32_t)g->perm << 3) | ~(uint32_t)S_IRWXG;
	}
	*mode = m;
	return extended;
}
